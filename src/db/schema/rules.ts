import { sql } from "drizzle-orm";
import { boolean, check, index, integer, jsonb, pgTable, text, uuid } from "drizzle-orm/pg-core";
import type { StoredAction, StoredCondition } from "../../engine/rules/stored.js";
import type { RuleMatchMode } from "../../engine/rules/types.js";
import { emailAddress } from "./channel.js";
import { id, timestamps } from "./common.js";
import { tenant } from "./tenancy.js";

/**
 * Routing rules (SPEC §7). One table for both rule sets: `address_id` null is the
 * tenant-wide set, otherwise the set of that point of contact. Ingest runs the
 * address's rules first, then the tenant's, as one ordered list (so an address rule
 * with STOP shields the tenant rules). Conditions and actions are stored as the
 * engine's JSON shapes, with calendars by id (resolved when the set is compiled).
 */
export const rule = pgTable(
  "rule",
  {
    id: id(),
    tenantId: uuid("tenant_id")
      .notNull()
      .references(() => tenant.id, { onDelete: "cascade" }),
    addressId: uuid("address_id").references(() => emailAddress.id, { onDelete: "cascade" }),
    name: text("name").notNull(),
    position: integer("position").notNull(),
    enabled: boolean("enabled").notNull().default(true),
    match: text("match").$type<RuleMatchMode>().notNull().default("ALL"),
    conditions: jsonb("conditions").$type<StoredCondition[]>().notNull().default([]),
    actions: jsonb("actions").$type<StoredAction[]>().notNull().default([]),
    ...timestamps(),
  },
  (t) => [
    index("rule_tenant_address_position_idx").on(t.tenantId, t.addressId, t.position),
    check("rule_match_chk", sql`${t.match} IN ('ALL', 'ANY')`),
  ],
);
