import { sql } from "drizzle-orm";
import {
  boolean,
  index,
  integer,
  jsonb,
  pgTable,
  primaryKey,
  text,
  uniqueIndex,
  uuid,
} from "drizzle-orm/pg-core";
import type { Permission, Presence, Role } from "../../engine/domain.js";
import { id, timestamps, tstz } from "./common.js";

export const tenant = pgTable("tenant", {
  id: id(),
  name: text("name").notNull(),
  company: text("company").notNull().default(""),
  timeZone: text("time_zone").notNull().default("UTC"),
  emailEnabled: boolean("email_enabled").notNull().default(true),
  /** Above this many open conversations ingest pauses (SPEC §3); null = no limit. */
  processingLimit: integer("processing_limit"),
  appendTicketOnFirstReply: boolean("append_ticket_on_first_reply").notNull().default(false),
  agentsMayEditSubject: boolean("agents_may_edit_subject").notNull().default(false),
  /** Status timers in days, null = switched off (SPEC §4). */
  activeToPausedDays: integer("active_to_paused_days").default(30),
  pausedToClosedDays: integer("paused_to_closed_days").default(60),
  resolvedToClosedDays: integer("resolved_to_closed_days").default(30),
  reopenEnabled: boolean("reopen_enabled").notNull().default(true),
  reopenWindowDays: integer("reopen_window_days").notNull().default(30),
  /** Days after which closed conversations are purged; null = keep forever. */
  retentionDays: integer("retention_days"),
  autoReplyLimitPerSender: integer("auto_reply_limit_per_sender").notNull().default(5),
  autoReplyLimitWindowMinutes: integer("auto_reply_limit_window_minutes").notNull().default(120),
  defaultSlaPolicyId: uuid("default_sla_policy_id"),
  /** Domain for our own Message-IDs; defaults to a tenant-specific placeholder domain. */
  messageIdDomain: text("message_id_domain"),
  rolePermissions: jsonb("role_permissions")
    .$type<Record<Role, Permission[]>>()
    .notNull()
    .default({
      ADMIN: [
        "REPLY_INBOUND",
        "START_OUTBOUND",
        "FORWARD",
        "EDIT_SUBJECT",
        "CHANGE_FROM",
        "SEE_BCC",
        "TRANSFER",
      ],
      SUPERVISOR: [
        "REPLY_INBOUND",
        "START_OUTBOUND",
        "FORWARD",
        "EDIT_SUBJECT",
        "CHANGE_FROM",
        "SEE_BCC",
        "TRANSFER",
      ],
      AGENT: ["REPLY_INBOUND", "START_OUTBOUND", "FORWARD", "TRANSFER"],
    }),
  ...timestamps(),
});

export const team = pgTable(
  "team",
  {
    id: id(),
    tenantId: uuid("tenant_id")
      .notNull()
      .references(() => tenant.id, { onDelete: "cascade" }),
    name: text("name").notNull(),
    description: text("description").notNull().default(""),
    /** Default inbox limit for members; null with inboxLimitOff=false means the system default. */
    inboxLimit: integer("inbox_limit"),
    /** OFF: no automatic delivery to members unless an agent overrides with a number. */
    inboxLimitOff: boolean("inbox_limit_off").notNull().default(false),
    archivedAt: tstz("archived_at"),
    ...timestamps(),
  },
  (t) => [
    uniqueIndex("team_tenant_name_uq").on(t.tenantId, sql`lower(${t.name})`).where(sql`archived_at IS NULL`),
  ],
);

export const accessProfile = pgTable(
  "access_profile",
  {
    id: id(),
    tenantId: uuid("tenant_id")
      .notNull()
      .references(() => tenant.id, { onDelete: "cascade" }),
    name: text("name").notNull(),
    /** true: every queue of the tenant; false: only the queues in access_profile_queue. */
    allQueues: boolean("all_queues").notNull().default(false),
    archivedAt: tstz("archived_at"),
    ...timestamps(),
  },
  (t) => [
    uniqueIndex("access_profile_tenant_name_uq")
      .on(t.tenantId, sql`lower(${t.name})`)
      .where(sql`archived_at IS NULL`),
  ],
);

export const user = pgTable(
  "user",
  {
    id: id(),
    tenantId: uuid("tenant_id")
      .notNull()
      .references(() => tenant.id, { onDelete: "cascade" }),
    email: text("email").notNull(),
    name: text("name").notNull(),
    /** Name shown to customers in signatures, if not the real name. */
    alias: text("alias"),
    role: text("role").$type<Role>().notNull(),
    teamId: uuid("team_id").references(() => team.id, { onDelete: "set null" }),
    accessProfileId: uuid("access_profile_id").references(() => accessProfile.id, { onDelete: "set null" }),
    /** Agent override of the team's inbox limit; null = inherit. */
    inboxLimit: integer("inbox_limit"),
    inboxLimitOff: boolean("inbox_limit_off").notNull().default(false),
    presence: text("presence").$type<Presence>().notNull().default("OFFLINE"),
    presenceReason: text("presence_reason"),
    presenceChangedAt: tstz("presence_changed_at"),
    loggedIn: boolean("logged_in").notNull().default(false),
    archivedAt: tstz("archived_at"),
    ...timestamps(),
  },
  (t) => [
    uniqueIndex("user_tenant_email_uq").on(t.tenantId, sql`lower(${t.email})`),
    index("user_team_idx").on(t.teamId),
  ],
);

export const apiKey = pgTable(
  "api_key",
  {
    id: id(),
    tenantId: uuid("tenant_id")
      .notNull()
      .references(() => tenant.id, { onDelete: "cascade" }),
    userId: uuid("user_id")
      .notNull()
      .references(() => user.id, { onDelete: "cascade" }),
    name: text("name").notNull(),
    /** Public lookup part of the key; the secret part is only stored as a SHA-256 hash. */
    prefix: text("prefix").notNull(),
    secretHash: text("secret_hash").notNull(),
    lastUsedAt: tstz("last_used_at"),
    revokedAt: tstz("revoked_at"),
    ...timestamps(),
  },
  (t) => [uniqueIndex("api_key_prefix_uq").on(t.prefix), index("api_key_user_idx").on(t.userId)],
);

export const skill = pgTable(
  "skill",
  {
    id: id(),
    tenantId: uuid("tenant_id")
      .notNull()
      .references(() => tenant.id, { onDelete: "cascade" }),
    name: text("name").notNull(),
    description: text("description").notNull().default(""),
    archivedAt: tstz("archived_at"),
    ...timestamps(),
  },
  (t) => [uniqueIndex("skill_tenant_name_uq").on(t.tenantId, sql`lower(${t.name})`)],
);

export const agentSkill = pgTable(
  "agent_skill",
  {
    tenantId: uuid("tenant_id")
      .notNull()
      .references(() => tenant.id, { onDelete: "cascade" }),
    userId: uuid("user_id")
      .notNull()
      .references(() => user.id, { onDelete: "cascade" }),
    skillId: uuid("skill_id")
      .notNull()
      .references(() => skill.id, { onDelete: "cascade" }),
    /** 1 (novice) … 10 (expert); higher is better. */
    proficiency: integer("proficiency").notNull(),
    ...timestamps(),
  },
  (t) => [
    primaryKey({ name: "agent_skill_pk", columns: [t.userId, t.skillId] }),
    index("agent_skill_skill_idx").on(t.skillId),
  ],
);
