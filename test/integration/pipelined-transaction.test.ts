import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { pipelinedTransaction, rawClient } from "../../src/db/client.js";
import { createTestDatabase, type TestDatabase } from "../helpers/db.js";

/**
 * `pipelinedTransaction` sends BEGIN unawaited with the body's first statements: it must
 * still be one all-or-nothing transaction, and leave the connection clean either way.
 */
let t: TestDatabase;

beforeAll(async () => {
  t = await createTestDatabase({ max: 2 });
  await t.sql`CREATE TABLE pipelined_t (k text PRIMARY KEY, v int NOT NULL)`;
});
afterAll(async () => {
  await t?.drop();
});

const rows = async (prefix: string) =>
  (await t.sql<{ k: string }[]>`SELECT k FROM pipelined_t WHERE k LIKE ${`${prefix}%`} ORDER BY k`).map(
    (r) => r.k,
  );

const idleInTransaction = async () => {
  const [{ n }] = (await t.sql`SELECT count(*)::int AS n FROM pg_stat_activity
    WHERE datname = current_database() AND state LIKE 'idle in transaction%'`) as unknown as [{ n: number }];
  return n;
};

describe("pipelinedTransaction", () => {
  it("runs the body's first statements inside the transaction and commits after the body", async () => {
    const result = await pipelinedTransaction(t.db, async (tx) => {
      const sql = rawClient(tx);
      // The very first statement already runs in the transaction block BEGIN opened:
      // another session does not see its row before COMMIT.
      await sql`INSERT INTO pipelined_t VALUES ('a-1', 1)`;
      expect(await rows("a-")).toEqual([]);
      await sql`INSERT INTO pipelined_t VALUES ('a-2', 2)`;
      return "done";
    });
    expect(result).toBe("done");
    expect(await rows("a-")).toEqual(["a-1", "a-2"]);
  });

  it("rolls everything back when a statement fails, and reports that statement's error", async () => {
    const err = await pipelinedTransaction(t.db, async (tx) => {
      const sql = rawClient(tx);
      await Promise.all([
        sql`INSERT INTO pipelined_t VALUES ('c-1', 1)`,
        sql`INSERT INTO pipelined_t VALUES ('c-2', NULL)`,
      ]);
    }).catch((e: unknown) => e);
    expect((err as { code?: string }).code).toBe("23502");
    expect(await rows("c-")).toEqual([]);
    expect(await idleInTransaction()).toBe(0);
  });

  it("rolls back when the body throws", async () => {
    const err = await pipelinedTransaction(t.db, async (tx) => {
      await rawClient(tx)`INSERT INTO pipelined_t VALUES ('d-1', 1)`;
      throw new Error("no");
    }).catch((e: unknown) => e);
    expect((err as Error).message).toBe("no");
    expect(await rows("d-")).toEqual([]);
    expect(await idleInTransaction()).toBe(0);
  });
});
