import { drizzle, type PostgresJsDatabase } from "drizzle-orm/postgres-js";
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
