import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { pipelinedTransaction, rawClient } from "../../src/db/client.js";
import { createTestDatabase, type TestDatabase } from "../helpers/db.js";

/**
 * `pipelinedTransaction` sends BEGIN with the first statements and COMMIT with the last,
 * without waiting for either: it must still be all-or-nothing, and it must refuse a
 * statement that would land after COMMIT (outside the transaction).
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

describe("pipelinedTransaction", () => {
  it("commits the writes issued with commit(), including ones issued after microtask hops", async () => {
    const result = await pipelinedTransaction(t.db, async (tx, commit) => {
      const sql = rawClient(tx);
      const [{ n }] = (await sql`SELECT 41 + 1 AS n`) as unknown as [{ n: number }];
      const late = Promise.resolve()
        .then(() => Promise.resolve())
        .then(() => sql`INSERT INTO pipelined_t VALUES ('a-late', 2)`);
      await Promise.all([sql`INSERT INTO pipelined_t VALUES ('a-1', ${n})`, late, commit()]);
      return n;
    });
    expect(result).toBe(42);
    expect(await rows("a-")).toEqual(["a-1", "a-late"]);
  });

  it("is one transaction: another session sees nothing before COMMIT", async () => {
    await pipelinedTransaction(t.db, async (tx) => {
      await rawClient(tx)`INSERT INTO pipelined_t VALUES ('b-1', 1)`;
      expect(await rows("b-")).toEqual([]);
    });
    expect(await rows("b-")).toEqual(["b-1"]);
  });

  it("rolls everything back when a statement before COMMIT fails, and reports that statement's error", async () => {
    const err = await pipelinedTransaction(t.db, async (tx, commit) => {
      const sql = rawClient(tx);
      await Promise.all([
        sql`INSERT INTO pipelined_t VALUES ('c-1', 1)`,
        sql`INSERT INTO pipelined_t VALUES ('c-2', NULL)`,
        commit(),
      ]);
    }).catch((e: unknown) => e);
    expect((err as { code?: string }).code).toBe("23502");
    expect(await rows("c-")).toEqual([]);
    // The connection went back to the pool usable, outside any transaction.
    const [{ open }] = (await t.sql`SELECT count(*)::int AS open FROM pg_stat_activity
      WHERE datname = current_database() AND state LIKE 'idle in transaction%'`) as unknown as [
      { open: number },
    ];
    expect(open).toBe(0);
  });

  it("rolls back when the body throws before commit()", async () => {
    const err = await pipelinedTransaction(t.db, async (tx) => {
      await rawClient(tx)`INSERT INTO pipelined_t VALUES ('d-1', 1)`;
      throw new Error("no");
    }).catch((e: unknown) => e);
    expect((err as Error).message).toBe("no");
    expect(await rows("d-")).toEqual([]);
  });

  it("refuses a statement issued after COMMIT went out", async () => {
    let refused: unknown = null;
    await pipelinedTransaction(t.db, async (tx, commit) => {
      const sql = rawClient(tx);
      await Promise.all([sql`INSERT INTO pipelined_t VALUES ('e-1', 1)`, commit()]);
      try {
        await sql`INSERT INTO pipelined_t VALUES ('e-2', 1)`;
      } catch (e) {
        refused = e;
      }
    });
    expect(String(refused)).toMatch(/after COMMIT/);
    expect(await rows("e-")).toEqual(["e-1"]);
  });
});
