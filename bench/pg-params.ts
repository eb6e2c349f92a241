/**
 * pg-params: what postgres.js costs this process to send a message-sized row — a
 * typical mail's raw bytes (bytea, bound in binary) and its text body (text) — against a
 * one-row insert of a few bytes, at concurrency 4 over the same connections, into an
 * embedded PostgreSQL (throwaway). The ingest path sends rows like these for every mail;
 * what this measures is the driver's copying, allocation and the garbage it leaves for
 * V8's collector, not PostgreSQL.
 *
 *   npm run bench -- pg-params [rows=3000] [runs=5]
 *
 * Reports, per row, this process's CPU (user + system, all threads: the main thread and
 * V8's GC and compiler helpers) for both shapes, alternated within each run, and the
 * medians; the ratio big/small is the figure that survives a noisy host. The last line is
 * the JSON result.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { loadavg, tmpdir } from "node:os";
import { join } from "node:path";
import postgres from "postgres";
import { startEmbeddedPostgres } from "../src/db/embedded.js";

const N = Number(process.argv[2] ?? 3000);
const RUNS = Number(process.argv[3] ?? 5);
const CONCURRENCY = 4;

const dir = mkdtempSync(join(tmpdir(), "sb-bench-pgparams-"));
const pg = await startEmbeddedPostgres({
  dataDir: dir,
  port: 20000 + Math.floor(Math.random() * 20000),
  persistent: false,
  database: "postgres",
});
const sql = postgres(pg.url, { max: CONCURRENCY, onnotice: () => {} });
await sql`CREATE TABLE big (id bigserial PRIMARY KEY, raw bytea NOT NULL, body text NOT NULL)`;
await sql`ALTER TABLE big ALTER COLUMN raw SET STORAGE EXTERNAL`;
await sql`CREATE TABLE small (id bigserial PRIMARY KEY, v text NOT NULL)`;

// The ingest bench's mean mail: ~56 KB raw, ~26 KB of text.
const raws = Array.from({ length: 16 }, (_, i) => Buffer.alloc(40_000 + i * 2_000, 65 + i));
const bodies = raws.map((r) => r.subarray(0, 26_000).toString("latin1"));

async function measure(f: (i: number) => Promise<unknown>): Promise<number> {
  const c0 = process.cpuUsage();
  let next = 0;
  await Promise.all(
    Array.from({ length: CONCURRENCY }, async () => {
      for (let i = next++; i < N; i = next++) await f(i);
    }),
  );
  const c = process.cpuUsage(c0);
  return (c.user + c.system) / N;
}

const big = (i: number) => sql`INSERT INTO big (raw, body) VALUES (${raws[i % 16]!}, ${bodies[i % 16]!})`;
const small = (i: number) => sql`INSERT INTO small (v) VALUES (${`row ${i}`})`;

await measure(big);
await measure(small);
const bigUs: number[] = [];
const smallUs: number[] = [];
for (let r = 1; r <= RUNS; r++) {
  bigUs.push(await measure(big));
  smallUs.push(await measure(small));
  await sql`TRUNCATE big`;
  console.log(
    `run ${r}: message-sized row ${bigUs.at(-1)!.toFixed(0)} µs CPU, small row ${smallUs.at(-1)!.toFixed(0)} µs CPU; load ${loadavg()
      .map((l) => l.toFixed(2))
      .join(" ")}`,
  );
}
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor((xs.length - 1) / 2)]!;
await sql.end();
await pg.stop();
rmSync(dir, { recursive: true, force: true });
const metrics = {
  big_row_cpu_us: Math.round(median(bigUs)),
  small_row_cpu_us: Math.round(median(smallUs)),
  big_over_small: Math.round((median(bigUs) / median(smallUs)) * 100) / 100,
};
console.log(JSON.stringify({ bench: "pg-params", metrics }));
