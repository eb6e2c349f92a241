import type { Column } from "drizzle-orm";

/**
 * Decodes rows of hand-written SQL (postgres.js on the drizzle client) into the shape a
 * drizzle select of `columns` returns: keys by property name, values through each column's
 * own decoder — the client leaves timestamps as text for drizzle (its parsers are replaced
 * in drizzle's postgres-js driver), so `Date`s, bigint modes and jsonb come out exactly as
 * from the query builder. Hot paths use it to skip building the query on every call
 * (0.5–1 ms of CPU for a wide table, docs/benchmarks.md "send").
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
