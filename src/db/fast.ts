import { type Column, getTableColumns, getTableName, type Table } from "drizzle-orm";
import type postgres from "postgres";

/**
 * Statements for hot paths without the query builder (docs/architecture.md, "Hot paths").
 *
 * Drizzle builds every query afresh — walking the table's columns, checking entity kinds,
 * joining SQL chunks — 0.5–1 ms of CPU for one insert into or select from a wide table.
 * On the ingest path that was a quarter of the CPU a message cost. These helpers do what
 * drizzle does for the same rows, from the same table definitions: column names from the
 * schema, values through each column's own driver mapping (`mapToDriverValue` /
 * `mapFromDriverValue`), sent with `unsafe(text, params, { prepare: true })` exactly as
 * drizzle's postgres-js session sends them — so the statements are prepared once per
 * connection and the rows come out as drizzle would return them.
 */

interface TableInfo {
  name: string;
  /** [field name, column] in declaration order. */
  columns: [string, Column][];
  byField: Map<string, Column>;
}

const infos = new WeakMap<Table, TableInfo>();

function info(table: Table): TableInfo {
  let i = infos.get(table);
  if (!i) {
    const columns = Object.entries(getTableColumns(table)) as [string, Column][];
    i = { name: getTableName(table), columns, byField: new Map(columns) };
    infos.set(table, i);
  }
  return i;
}

const quote = (ident: string) => `"${ident.replaceAll('"', '""')}"`;

/**
 * Decodes rows of hand-written SQL (postgres.js on the drizzle client) into the shape a
 * drizzle select of `columns` returns: keys by property name, values through each column's
 * own decoder — the client leaves timestamps as text for drizzle (its parsers are replaced
 * in drizzle's postgres-js driver), so `Date`s, bigint modes and jsonb come out exactly as
 * from the query builder.
 *
 * `T` is the drizzle shape of `columns` (`typeof table.$inferSelect`, or a `Pick` of it).
 * A column missing from the row is a programming error in the SQL, not a NULL: it throws.
 */
export function rowDecoder<T>(columns: Record<string, Column>): (row: Record<string, unknown>) => T {
  const list = Object.entries(columns).map(([key, col]) => [key, col.name, col] as const);
  return (row) => {
    const out: Record<string, unknown> = {};
    for (const [key, name, col] of list) {
      if (!(name in row)) throw new Error(`row has no column ${name}`);
      const v = row[name];
      out[key] = v === null || v === undefined ? null : col.mapFromDriverValue(v);
    }
    return out as T;
  };
}

const tableDecoders = new WeakMap<Table, (row: Record<string, unknown>) => unknown>();

/**
 * A row read as JSON (`row_to_json(t)` / `json_agg(t)`) → the object drizzle's
 * `select().from(table)` returns for it. Lets one statement read several tables' rows.
 */
export function rowFromJson<T extends Table>(table: T, json: Record<string, unknown>): T["$inferSelect"] {
  let decode = tableDecoders.get(table);
  if (!decode) {
    decode = rowDecoder(getTableColumns(table));
    tableDecoders.set(table, decode);
  }
  return decode(json) as T["$inferSelect"];
}

/**
 * `INSERT INTO table (…) VALUES (…), …` for rows given as drizzle insert values (field
 * names, JS values); fields left out (or undefined) take the column's database default, as
 * with drizzle. Every row must name the same fields. The statement is returned unsent:
 * await it, or put it in a `Promise.all` to pipeline it with others on a transaction's
 * connection. `returning` is raw SQL (e.g. `"id"`).
 */
export function insertRows<T extends Table>(
  sql: postgres.Sql,
  table: T,
  rows: T["$inferInsert"][],
  returning?: string,
): postgres.PendingQuery<postgres.Row[]> {
  const t = info(table);
  const first = rows[0] as Record<string, unknown> | undefined;
  if (!first) throw new Error("insertRows: no rows");
  const fields = Object.keys(first).filter((f) => first[f] !== undefined);
  const cols = fields.map((f) => {
    const c = t.byField.get(f);
    if (!c) throw new Error(`insertRows: ${t.name} has no field ${f}`);
    return c;
  });
  const params: postgres.ParameterOrJSON<never>[] = [];
  const tuples = rows.map((row) => {
    const r = row as Record<string, unknown>;
    const placeholders = cols.map((c, i) => {
      const v = r[fields[i]!];
      params.push((v === null || v === undefined ? null : c.mapToDriverValue(v)) as never);
      return `$${params.length}`;
    });
    return `(${placeholders.join(", ")})`;
  });
  const text =
    `INSERT INTO ${quote(t.name)} (${cols.map((c) => quote(c.name)).join(", ")}) VALUES ${tuples.join(", ")}` +
    (returning ? ` RETURNING ${returning}` : "");
  return sql.unsafe(text, params, { prepare: true });
}

/** Bytea values above this size are sent in parts (`fillLargeBytea`). */
export const LARGE_BYTEA_BYTES = 1024 * 1024;
const BYTEA_PART_BYTES = 512 * 1024;

/**
 * Writes a large bytea value into the row `id` of `table` (inserted before with an empty
 * value) in 512 KB parts, with the event loop free between them. postgres.js sends a bytea
 * parameter as one hex string built synchronously: for a 40 MB mail that held the event
 * loop for ~300 ms (hex-encoding, then copying 80 MB into the socket buffer). The parts go
 * to a session-local temp table (emptied at commit or rollback) and are joined on the
 * server. Call inside a transaction.
 */
export async function fillLargeBytea<T extends Table>(
  sql: postgres.Sql,
  table: T,
  field: keyof T["$inferSelect"] & string,
  id: string,
  data: Buffer,
): Promise<void> {
  const t = info(table);
  const col = t.byField.get(field);
  if (!col) throw new Error(`fillLargeBytea: ${t.name} has no field ${field}`);
  await sql`CREATE TEMP TABLE IF NOT EXISTS sb_bytea_part (
    k uuid NOT NULL, seq int NOT NULL, data bytea NOT NULL) ON COMMIT DELETE ROWS`;
  for (let at = 0, seq = 0; at < data.length; at += BYTEA_PART_BYTES, seq++) {
    await sql`INSERT INTO sb_bytea_part (k, seq, data)
      VALUES (${id}::uuid, ${seq}, ${data.subarray(at, at + BYTEA_PART_BYTES)})`;
  }
  await sql.unsafe(
    `UPDATE ${quote(t.name)} SET ${quote(col.name)} =
       (SELECT string_agg(p.data, ''::bytea ORDER BY p.seq) FROM sb_bytea_part p WHERE p.k = $1)
     WHERE id = $1`,
    [id],
    { prepare: true },
  );
  await sql`DELETE FROM sb_bytea_part WHERE k = ${id}::uuid`;
}

/**
 * `insertRows` for rows that may hold bytea values over `LARGE_BYTEA_BYTES` (such rows need
 * their `id`): the insert goes out at once with those values empty, and the values follow
 * in parts (`fillLargeBytea`) once it is answered. `inParts` says whether statements still
 * follow the insert: a caller that pipelines without awaiting `done` must await it before
 * anything that has to come after them on the connection (its COMMIT).
 */
export function insertRowsInParts<T extends Table>(
  sql: postgres.Sql,
  table: T,
  rows: T["$inferInsert"][],
): { done: Promise<void>; inParts: boolean } {
  const parts: { id: string; field: string; data: Buffer }[] = [];
  const sent = rows.map((row) => {
    const r = row as Record<string, unknown>;
    const out: Record<string, unknown> = { ...r };
    for (const [field, v] of Object.entries(r)) {
      if (!Buffer.isBuffer(v) || v.length <= LARGE_BYTEA_BYTES) continue;
      if (typeof r.id !== "string")
        throw new Error(`insertRowsInParts: a ${info(table).name} row needs its id`);
      out[field] = Buffer.alloc(0);
      parts.push({ id: r.id, field, data: v });
    }
    return out as T["$inferInsert"];
  });
  const insert = insertRows(sql, table, sent).execute();
  if (parts.length === 0) return { done: insert.then(() => {}), inParts: false };
  const done = (async () => {
    await insert;
    for (const p of parts) {
      await fillLargeBytea(sql, table, p.field as keyof T["$inferSelect"] & string, p.id, p.data);
    }
  })();
  return { done, inParts: true };
}
