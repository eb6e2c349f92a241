import type { PgDialect } from "drizzle-orm/pg-core";
import {
  drizzle,
  type PostgresJsDatabase,
  PostgresJsSession,
  PostgresJsTransaction,
} from "drizzle-orm/postgres-js";
import postgres from "postgres";
import * as schema from "./schema/index.js";

export type Schema = typeof schema;
export type Db = PostgresJsDatabase<Schema>;
/** A transaction handle; the engine accepts either, so callers decide the transaction scope. */
export type Tx = Parameters<Parameters<Db["transaction"]>[0]>[0];
export type DbOrTx = Db | Tx;

export interface Database {
  db: Db;
  sql: postgres.Sql;
  url: string;
  close(): Promise<void>;
}

export function connect(
  url: string,
  opts: { max?: number; onQuery?: (query: string) => void } = {},
): Database {
  const sql = postgres(url, {
    max: opts.max ?? 10,
    ...(opts.onQuery ? { debug: (_conn: number, query: string) => opts.onQuery!(query) } : {}),
    onnotice: () => {},
    // bigint columns are declared mode "number"; int8 as JS number is safe below 2^53.
    types: { bigint: postgres.BigInt },
    connection: { application_name: "switchboard" },
  });
  const db = drizzle(sql, { schema, casing: "snake_case" });
  return { db, sql, url, close: () => sql.end({ timeout: 5 }) };
}

/**
 * The postgres.js connection behind a drizzle handle (the transaction's own connection
 * inside a transaction), for libraries that take raw SQL on the caller's connection —
 * pg-boss enqueues jobs this way so a job exists if and only if the transaction commits.
 */
export function rawClient(handle: DbOrTx): postgres.Sql {
  const session = (handle as unknown as { session?: { client?: postgres.Sql } }).session;
  if (!session?.client) throw new Error("no postgres.js client behind this drizzle handle");
  return session.client;
}

type DrizzleInternals = {
  dialect: PgDialect;
  session: { schema: ConstructorParameters<typeof PostgresJsSession>[2]; options: object };
};

/**
 * A transaction that costs no round trips of its own: BEGIN goes out with the body's
 * first statements and COMMIT with its last ones. `db.transaction` (postgres.js `begin`)
 * waits for BEGIN before the body runs and for COMMIT after it, two round trips per
 * transaction that carry no work — a third of a reply's (docs/benchmarks.md "send").
 *
 * The body gets the transaction and `commit`, which sends COMMIT after every statement the
 * body has issued so far: it waits for the current macrotask's microtasks to run (so a
 * statement issued after a `then` hop, as pg-boss does, is still ahead of it), not for any
 * result. So the body must issue every write without waiting for I/O before it calls
 * `commit()` — `await Promise.all([...writes, commit()])`; a statement issued after
 * that point would run outside the transaction, so the connection refuses it instead.
 * If a statement before COMMIT failed, PostgreSQL ends the aborted transaction with a
 * rollback (command tag ROLLBACK), which is reported as an error here. A body that throws
 * before `commit()` is rolled back; one that never calls it is committed after it
 * returns. No nested transactions (savepoints) inside.
 */
export async function pipelinedTransaction<T>(
  db: Db,
  body: (tx: Tx, commit: () => Promise<void>) => Promise<T>,
): Promise<T> {
  const conn = await rawClient(db).reserve();
  let closed = false;
  // The connection as the body sees it: nothing goes out once COMMIT was sent.
  const guarded = new Proxy(conn, {
    apply(target, self, args) {
      if (closed) throw new Error("statement issued after COMMIT of a pipelined transaction");
      return Reflect.apply(target, self, args);
    },
    get(target, key, receiver) {
      if (key === "unsafe" && closed) {
        return () => {
          throw new Error("statement issued after COMMIT of a pipelined transaction");
        };
      }
      return Reflect.get(target, key, receiver);
    },
  });
  const outer = db as unknown as DrizzleInternals;
  const session = new PostgresJsSession(guarded, outer.dialect, outer.session.schema, outer.session.options);
  const tx = new PostgresJsTransaction(
    outer.dialect,
    session as unknown as ConstructorParameters<typeof PostgresJsTransaction>[1],
    outer.session.schema,
  ) as unknown as Tx;
  const end: { commit: Promise<void> | null } = { commit: null };
  const commit = (): Promise<void> => {
    end.commit ??= new Promise<void>((resolve) => setImmediate(resolve)).then(async () => {
      closed = true;
      const r = await conn`COMMIT`;
      if (r.command !== "COMMIT") throw new Error(`transaction not committed (${r.command})`);
    });
    return end.commit;
  };
  // Not awaited: it goes out in front of the body's first statements. If it fails, so do they.
  conn`BEGIN`.catch(() => {});
  try {
    const result = await body(tx, commit);
    await commit();
    return result;
  } catch (err) {
    if (end.commit) await end.commit.catch(() => {});
    else {
      closed = true;
      await conn`ROLLBACK`.catch(() => {});
    }
    throw err;
  } finally {
    conn.release();
  }
}
