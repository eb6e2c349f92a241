import { sql } from "drizzle-orm";
import { timestamp, uuid } from "drizzle-orm/pg-core";

/** Primary key: random UUIDs, so IDs leak no counts and never collide across tenants. */
export const id = () => uuid("id").primaryKey().defaultRandom();

export const timestamps = () => ({
  createdAt: timestamp("created_at", { withTimezone: true, mode: "date" }).notNull().defaultNow(),
  updatedAt: timestamp("updated_at", { withTimezone: true, mode: "date" })
    .notNull()
    .defaultNow()
    .$onUpdate(() => new Date()),
});

export const tstz = (name: string) => timestamp(name, { withTimezone: true, mode: "date" });

export const emptyTextArray = sql`'{}'::text[]`;
export const emptyUuidArray = sql`'{}'::uuid[]`;
