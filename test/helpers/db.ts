import { randomBytes } from "node:crypto";
import { sql } from "drizzle-orm";
import postgres from "postgres";
import { inject } from "vitest";
import { connect, type Database } from "../../src/db/client.js";

export interface TestDatabase extends Database {
  name: string;
  /** Drops the database (after closing this client). */
  drop(): Promise<void>;
}

/** A fresh, migrated database cloned from the run's template; isolated per test file. */
export async function createTestDatabase(opts: { max?: number } = {}): Promise<TestDatabase> {
  const adminUrl = inject("pgAdminUrl");
  const template = inject("pgTemplate");
  const name = `sb_test_${randomBytes(6).toString("hex")}`;
  const admin = postgres(adminUrl, { max: 1, onnotice: () => {} });
  // Cloning needs no other session on the template: retry briefly if a parallel clone holds it.
  for (let attempt = 0; ; attempt++) {
    try {
      await admin.unsafe(`CREATE DATABASE ${name} TEMPLATE ${template}`);
      break;
    } catch (err) {
      if ((err as { code?: string }).code !== "55006" || attempt > 50) throw err;
      await new Promise((r) => setTimeout(r, 50));
    }
  }
  await admin.end();
  const url = new URL(adminUrl);
  url.pathname = `/${name}`;
  const database = connect(url.toString(), { max: opts.max ?? 10 });
  return {
    ...database,
    name,
    async drop() {
      await database.close();
      const a = postgres(adminUrl, { max: 1, onnotice: () => {} });
      await a.unsafe(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
      await a.end();
    },
  };
}

/**
 * Makes the database refuse to insert any `message` whose subject is a key of `refusals`,
 * with that SQLSTATE (e.g. '22021' for a value PostgreSQL cannot store, '40001' for a
 * passing serialization failure, 'P0001' for a plain raised error): a stand-in for
 * whatever a real mail might trigger. Returns the function that removes the trap.
 */
export async function refuseMessageInserts(
  db: Database["db"],
  refusals: Record<string, string>,
  /** Or the rejected records (`rejected_message`, whose subject may be null). */
  table: "message" | "rejected_message" = "message",
): Promise<() => Promise<void>> {
  const name = `test_refuse_${randomBytes(4).toString("hex")}`;
  const branches = Object.entries(refusals)
    .map(
      ([subject, code]) =>
        `IF NEW.subject = ${quoteLiteral(subject)} THEN RAISE EXCEPTION 'refused by test' USING ERRCODE = ${quoteLiteral(code)}; END IF;`,
    )
    .join("\n");
  await db.execute(
    sql.raw(
      `CREATE FUNCTION ${name}() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN ${branches} RETURN NEW; END $$`,
    ),
  );
  await db.execute(
    sql.raw(`CREATE TRIGGER ${name} BEFORE INSERT ON ${table} FOR EACH ROW EXECUTE FUNCTION ${name}()`),
  );
  return async () => {
    await db.execute(sql.raw(`DROP TRIGGER ${name} ON ${table}`));
    await db.execute(sql.raw(`DROP FUNCTION ${name}()`));
  };
}

const quoteLiteral = (s: string) => `'${s.replaceAll("'", "''")}'`;
