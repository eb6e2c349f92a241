/**
 * pg_stat_statements for the benches (embedded server only): `BENCH_PGSS=1` tracks the
 * top-level statements, `BENCH_PGSS=all` also nested ones (foreign-key checks, trigger
 * bodies; printed as "nested"). Times are per measured message: execution + planning, wall
 * time of the backend (inflated by preemption on a busy machine).
 *
 * `BENCH_EXPLAIN_MS=n` (with or without BENCH_PGSS): auto_explain logs the plan and
 * parameters of every statement that takes n ms or more to `BENCH_EXPLAIN_LOG` (default
 * bench-explain.log in the temp folder) — how the generic plan that read a whole tenant
 * per message was found (docs/benchmarks.md, session 9).
 */
import { appendFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type postgres from "postgres";

export const PGSS_MODE: "top" | "all" | null =
  process.env.BENCH_PGSS === "all" ? "all" : process.env.BENCH_PGSS === "1" ? "top" : null;

const EXPLAIN_MS = process.env.BENCH_EXPLAIN_MS;
export const EXPLAIN_LOG = process.env.BENCH_EXPLAIN_LOG ?? join(tmpdir(), "bench-explain.log");

/** Settings for `startEmbeddedPostgres` (none when BENCH_PGSS and BENCH_EXPLAIN_MS are unset). */
export function pgssSettings(): { settings?: Record<string, string>; onLog?: (text: string) => void } {
  if (!PGSS_MODE && !EXPLAIN_MS) return {};
  const libraries = [...(PGSS_MODE ? ["pg_stat_statements"] : []), ...(EXPLAIN_MS ? ["auto_explain"] : [])];
  if (EXPLAIN_MS) writeFileSync(EXPLAIN_LOG, "");
  return {
    settings: {
      shared_preload_libraries: libraries.join(","),
      ...(PGSS_MODE ? { "pg_stat_statements.track_planning": "on" } : {}),
      ...(PGSS_MODE === "all" ? { "pg_stat_statements.track": "all" } : {}),
      ...(EXPLAIN_MS ? { "auto_explain.log_min_duration": EXPLAIN_MS } : {}),
    },
    ...(EXPLAIN_MS
      ? { onLog: (text: string) => appendFileSync(EXPLAIN_LOG, text.endsWith("\n") ? text : `${text}\n`) }
      : {}),
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
