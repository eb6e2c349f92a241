/**
 * pg_stat_statements for the benches (embedded server only): `BENCH_PGSS=1` tracks the
 * top-level statements, `BENCH_PGSS=all` also nested ones (foreign-key checks, trigger
 * bodies; printed as "nested"). Times are per measured message: execution + planning, wall
 * time of the backend (inflated by preemption on a busy machine).
 */
import type postgres from "postgres";

export const PGSS_MODE: "top" | "all" | null =
  process.env.BENCH_PGSS === "all" ? "all" : process.env.BENCH_PGSS === "1" ? "top" : null;

/** Settings for `startEmbeddedPostgres` (none when BENCH_PGSS is unset). */
export function pgssSettings(): { settings?: Record<string, string> } {
  if (!PGSS_MODE) return {};
  return {
    settings: {
      shared_preload_libraries: "pg_stat_statements",
      "pg_stat_statements.track_planning": "on",
      ...(PGSS_MODE === "all" ? { "pg_stat_statements.track": "all" } : {}),
    },
  };
}

/** Creates the extension (once) and clears its counters: call before a measured phase. */
export async function pgssReset(sql: postgres.Sql): Promise<void> {
  if (!PGSS_MODE) return;
  await sql`CREATE EXTENSION IF NOT EXISTS pg_stat_statements`;
  await sql`SELECT pg_stat_statements_reset()`;
}

/** Prints the `limit` statements with the most server time, per message of the phase. */
export async function pgssPrint(
  sql: postgres.Sql,
  messages: number,
  indent = "  ",
  limit = 25,
): Promise<void> {
  if (!PGSS_MODE) return;
  const rows = await sql<{ calls: string; ms: string; plan: string; q: string; nested: string }[]>`
    SELECT calls::text, round((total_exec_time + total_plan_time)::numeric / ${messages}, 4)::text AS ms,
           round(total_plan_time::numeric / ${messages}, 4)::text AS plan,
           left(regexp_replace(query, '\\s+', ' ', 'g'), 80) AS q,
           CASE WHEN toplevel THEN '' ELSE 'nested ' END AS nested
    FROM pg_stat_statements ORDER BY total_exec_time + total_plan_time DESC LIMIT ${limit}`;
  for (const r of rows)
    console.log(`${indent}pgss ${r.ms} ms/msg (plan ${r.plan}) calls ${r.calls}  ${r.nested}${r.q}`);
}
