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
  opts: {
    max?: number;
    /** Every statement sent, with its parameters (tests: query counts, plans). */
    onQuery?: (query: string, params: readonly unknown[]) => void;
    /** PostgreSQL's lock_timeout for every session of the pool, in ms (0: wait for ever). */
    lockTimeoutMs?: number;
  } = {},
): Database {
  const sql = postgres(url, {
    max: opts.max ?? 10,
    ...(opts.onQuery
      ? { debug: (_conn: number, query: string, params: unknown[]) => opts.onQuery!(query, params) }
      : {}),
    onnotice: () => {},
    // bigint columns are declared mode "number"; int8 as JS number is safe below 2^53.
    types: { bigint: postgres.BigInt },
    connection: {
      application_name: "switchboard",
      ...(opts.lockTimeoutMs ? { lock_timeout: opts.lockTimeoutMs } : {}),
    },
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
 * `db.transaction` without the round trip of its BEGIN: BEGIN goes out unawaited in front
 * of the body's first statements (postgres.js sends what is queued on a connection in one
 * write; PostgreSQL runs it in order). `db.transaction` (postgres.js `begin`) waits for
 * BEGIN before the body runs — one round trip per transaction that carries no work, a
 * third of a reply's (docs/benchmarks.md "send"). If BEGIN fails, so do the statements
 * after it. COMMIT is sent once the body resolved, as usual: sending it earlier, with the
 * last writes, is not safe here — a write issued after an I/O wait (pg-boss creates a
 * queue it has not seen before it inserts the job) would land after COMMIT, outside the
 * transaction. A body that throws is rolled back. No nested transactions (savepoints).
 */
export async function pipelinedTransaction<T>(db: Db, body: (tx: Tx) => Promise<T>): Promise<T> {
  const conn = await rawClient(db).reserve();
  const outer = db as unknown as DrizzleInternals;
  const session = new PostgresJsSession(conn, outer.dialect, outer.session.schema, outer.session.options);
  const tx = new PostgresJsTransaction(
    outer.dialect,
    session as unknown as ConstructorParameters<typeof PostgresJsTransaction>[1],
    outer.session.schema,
  ) as unknown as Tx;
  let done = false;
  // Not awaited: it goes out in front of the body's first statements.
  conn`BEGIN`.catch(() => {});
  try {
    const result = await body(tx);
    done = true;
    await conn`COMMIT`;
    return result;
  } catch (err) {
    if (!done) await conn`ROLLBACK`.catch(() => {});
    throw err;
  } finally {
    conn.release();
  }
}
