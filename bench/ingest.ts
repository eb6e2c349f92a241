/**
 * ingest: the inbound pipeline end to end, in one server process (the app as `npm start`
 * builds it) over a real PostgreSQL:
 *
 * - SMTP: N typical messages (2–50 KB, ~20 % with an attachment) through the listener by
 *   4 concurrent senders on a pooled nodemailer transport (4 connections) in a child
 *   process (bench/smtp-client-process.ts), after an unmeasured warm-up of 300. Latency is
 *   per message, from sendMail to the 250 reply — which the listener sends only after commit.
 * - IMAP: an N-message Dovecot backlog drained by the IMAP connector (one poll).
 * - Event-loop lag p99 (perf_hooks.monitorEventLoopDelay, 10 ms resolution) in this
 *   process while one 40 MB message (built and sent by the child process) is received over
 *   SMTP, parsed and ingested.
 * - Baseline: single-row autocommit INSERTs into the same database at the same
 *   concurrency (4), so the figures can be read against what the disk/CPU allow.
 * - Where the CPU goes, per message: the server's main thread and its other threads (MIME
 *   parser workers, V8's compiler and GC helpers) from /proc/self/task, the embedded
 *   PostgreSQL's processes; with BENCH_STATEMENTS=1 also the SQL statements the server
 *   sent, per message and by statement (counting costs the main thread ~6 %: the hook is
 *   the driver's debug option, which captures a stack trace per query); with BENCH_PGSS=1 (or
 *   all) PostgreSQL's own time per statement (pg_stat_statements, bench/pgss.ts); with
 *   BENCH_EXPLAIN_MS=n the plan of every statement that took n ms or more (auto_explain,
 *   written to BENCH_EXPLAIN_LOG; bench/pgss.ts).
 *
 * - The machine's idle and stolen CPU shares during each measured phase (/proc/stat): steal
 *   is time the hypervisor gave this VM's vCPUs to other guests; on a shared host it makes
 *   the same code slower, so runs are compared at similar steal.
 *
 * - The search indexer's catch-up (engine/search.ts): after each phase, unmeasured by it,
 *   the bench waits until the background indexer has indexed the phase's messages, and
 *   reports the messages indexed per second of that wait (the indexer's own pace: it
 *   pauses after each batch for as long as the batch took). During a phase it stands back,
 *   as it does during any burst shorter than SEARCH_MAX_LAG_MS.
 *
 * BENCH_SENDER=raw replaces the nodemailer senders by raw SMTP senders as a sending MTA works
 * (pipelined envelope, the mail dot-stuffed once, untimed; smtp-client-process.ts `sendRaw`):
 * the server's work per mail is the same, the senders' CPU on these two cores is not.
 * BENCH_WARMUP=n changes the unmeasured warm-up (default 300 messages). BENCH_PHASES=imap
 * (or a comma list of smtp, imap, lag, baseline) runs only those phases; default all.
 *   npm run bench -- ingest [messages=5000] [runs=3]
 *
 * DATABASE_URL is used when set (a scratch database is created on it); otherwise an
 * embedded PostgreSQL in a temp dir (throwaway: fsync off). Dovecot is needed for
 * the IMAP figure (skipped with a warning without it). The last line is the JSON result.
 */
import { fork } from "node:child_process";
import { once } from "node:events";
import { mkdtempSync, rmSync } from "node:fs";
import { loadavg, tmpdir } from "node:os";
import { join } from "node:path";
import { monitorEventLoopDelay } from "node:perf_hooks";
import { fileURLToPath } from "node:url";
import { count, eq } from "drizzle-orm";
import postgres from "postgres";
import { startSwitchboard } from "../src/app.js";
import { loadConfig } from "../src/config.js";
import { startEmbeddedPostgres } from "../src/db/embedded.js";
import { emailAddress, mailAccount, message, queue } from "../src/db/schema/index.js";
import { createTenantWithAdmin } from "../src/engine/auth.js";
import { silentLogger } from "../src/engine/context.js";
import { dovecotAvailable, startDovecot } from "../test/helpers/dovecot.js";
import {
  machineShares,
  machineTicks,
  postgresCpuMs,
  postmasterPid,
  threadCpuMs,
  threadCpuSince,
} from "./cpu.js";
import { typicalMail } from "./ingest-mail.js";
import { EXPLAIN_LOG, pgssPrint, pgssReset, pgssSettings } from "./pgss.js";

const N = Number(process.argv[2] ?? 5000);
const RUNS = Number(process.argv[3] ?? 3);
const CONCURRENCY = 4;
/** BENCH_PHASES=imap (or e.g. smtp,lag): only these measured phases; the warm-up always runs. */
const PHASES = new Set(
  (process.env.BENCH_PHASES ?? "smtp,imap,lag,baseline").split(",").map((p) => p.trim()),
);

const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length === 0 ? 0 : s[Math.floor((s.length - 1) / 2)]!;
};
const pct = (xs: number[], p: number) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length === 0 ? 0 : s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))]!;
};
const round = (n: number, d = 1) => Math.round(n * 10 ** d) / 10 ** d;

async function database(): Promise<{ url: string; stop: () => Promise<void>; pgDir?: string }> {
  if (process.env.DATABASE_URL) {
    const name = `sb_bench_${process.pid}`;
    const admin = postgres(process.env.DATABASE_URL, { max: 1, onnotice: () => {} });
    await admin.unsafe(`CREATE DATABASE ${name}`);
    await admin.end();
    const u = new URL(process.env.DATABASE_URL);
    u.pathname = `/${name}`;
    return {
      url: u.toString(),
      stop: async () => {
        const a = postgres(process.env.DATABASE_URL!, { max: 1, onnotice: () => {} });
        await a.unsafe(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
        await a.end();
      },
    };
  }
  const dir = mkdtempSync(join(tmpdir(), "sb-bench-ingest-"));
  const port = 20000 + Math.floor(Math.random() * 20000);
  const pg = await startEmbeddedPostgres({
    dataDir: dir,
    port,
    persistent: false,
    database: "postgres",
    ...pgssSettings(),
  });
  return {
    url: pg.url,
    pgDir: join(dir, "pg"),
    stop: async () => {
      await pg.stop();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

const db = await database();
/** BENCH_PGSS=1|all: pg_stat_statements per measured phase (bench/pgss.ts). */
const pgss = postgres(db.url, { max: 1, onnotice: () => {} });

/** CPU time (ms) of the embedded PostgreSQL; null with DATABASE_URL (another machine's). */
function pgCpuMs(): number | null {
  const pid = db.pgDir ? postmasterPid(db.pgDir) : null;
  return pid === null ? null : postgresCpuMs(pid);
}

/** SQL statements the server sent, by their first 100 characters (onQuery hook; BENCH_STATEMENTS=1). */
const statements = new Map<string, number>();
const COUNT = Boolean(process.env.BENCH_STATEMENTS);

/** CPU ms per message of the server process (main thread and parser workers) and PostgreSQL. */
async function withCpu<T>(
  count: number,
  f: () => Promise<T>,
): Promise<T & { nodeCpuMs: number; pgCpuMs: number | null; idlePct: number; stealPct: number }> {
  const m0 = machineTicks();
  const c0 = process.cpuUsage();
  const p0 = pgCpuMs();
  const t0 = threadCpuMs();
  statements.clear();
  await pgssReset(pgss);
  const r = await f();
  const c = process.cpuUsage(c0);
  const shares = machineShares(m0);
  const p1 = pgCpuMs();
  const threads = threadCpuSince(t0);
  const main = threads.main / count;
  const others = threads.others.map((ms) => ms / count).filter((ms) => ms >= 0.05);
  let sent = 0;
  for (const n of statements.values()) sent += n;
  console.log(
    `  CPU/msg by thread: main ${round(main, 2)} ms, others ${others.map((x) => round(x, 2)).join(" + ")} ms` +
      (COUNT ? `; ${round(sent / count, 2)} SQL statements/msg` : "") +
      `; machine idle ${shares.idlePct} %, stolen ${shares.stealPct} %`,
  );
  if (COUNT) {
    for (const [k, n] of [...statements].sort((a, b) => b[1] - a[1]))
      console.log(`    ${round(n / count, 2)}  ${k.replace(/\s+/g, " ").trim().slice(0, 80)}`);
  }
  await pgssPrint(pgss, count, "    ", 20);
  return {
    ...r,
    ...shares,
    nodeCpuMs: (c.user + c.system) / 1000 / count,
    pgCpuMs: p0 === null || p1 === null ? null : (p1 - p0) / count,
  };
}
const app = await startSwitchboard(
  loadConfig({
    NODE_ENV: "test",
    DATABASE_URL: db.url,
    PORT: "0",
    SMTP_ENABLED: "true",
    SMTP_PORT: "0",
    IMAP_ENABLED: "false",
    BOOTSTRAP: "false",
    SECRET_KEY: "33".repeat(32),
    LOG_LEVEL: "silent",
    ...(process.env.PARSE_WORKERS ? { PARSE_WORKERS: process.env.PARSE_WORKERS } : {}),
    ...(process.env.IMAP_BATCH_SIZE ? { IMAP_BATCH_SIZE: process.env.IMAP_BATCH_SIZE } : {}),
    ...Object.fromEntries(Object.entries(process.env).filter(([k]) => k.startsWith("SEARCH_"))),
  }),
  {
    log: silentLogger,
    // Only on request: the hook is postgres.js's `debug` option, with which the driver
    // captures a stack trace (new Error()) for every query — ~6 % of the main thread.
    ...(COUNT
      ? {
          onQuery: (q: string) => {
            const k = q.slice(0, 100);
            statements.set(k, (statements.get(k) ?? 0) + 1);
          },
        }
      : {}),
  },
);
const dovecot = dovecotAvailable() ? await startDovecot() : null;
if (!dovecot) console.warn("!! Dovecot not installed: the IMAP figure is skipped");

const { tenantId } = await createTenantWithAdmin(app.database.db, {
  tenantName: "Bench",
  adminEmail: "admin@bench.test",
});
const [q] = await app.database.db.insert(queue).values({ tenantId, name: "Bench" }).returning();
const smtpTo = "support@bench.test";
await app.database.db.insert(emailAddress).values({ tenantId, address: smtpTo, name: "S", queueId: q!.id });

// The senders run in a child process (bench/smtp-client-process.ts), as real sending
// servers would: their MIME streaming does not share the server's event loop.
const clients = fork(fileURLToPath(new URL("./smtp-client-process.ts", import.meta.url)), {
  execArgv: ["--import", "tsx"],
});
await once(clients, "message");

/** BENCH_SENDER=raw: senders as a sending MTA, without nodemailer (smtp-client-process.ts `sendRaw`). */
const SENDER = process.env.BENCH_SENDER === "raw" ? "raw" : "nodemailer";

interface SmtpResult {
  perS: number;
  p50: number;
  p99: number;
  /** The sender process's CPU per message while sending (not building the mails). */
  senderCpuMs: number;
}

async function smtpRun(run: number, count = N): Promise<SmtpResult> {
  const answer = once(clients, "message");
  clients.send({ port: app.smtp!.port, to: smtpTo, count, concurrency: CONCURRENCY, run, sender: SENDER });
  const [{ secs, latencies, windowCpuMs }] = (await answer) as [
    { secs: number; latencies: number[]; windowCpuMs: number },
  ];
  return {
    perS: count / secs,
    p50: pct(latencies, 50),
    p99: pct(latencies, 99),
    senderCpuMs: windowCpuMs / count,
  };
}

interface Cpu {
  nodeCpuMs: number;
  pgCpuMs: number | null;
  /** The machine's idle and stolen shares (%) during the phase (bench/cpu.ts machineShares). */
  idlePct: number;
  stealPct: number;
}

async function imapRun(run: number): Promise<{ perS: number } & Cpu> {
  if (!dovecot) return { perS: 0, nodeCpuMs: 0, pgCpuMs: null, idlePct: 0, stealPct: 0 };
  const mailbox = `Bench${run}`;
  const to = `imap${run}@bench.test`;
  const [acc] = await app.database.db
    .insert(mailAccount)
    .values({
      tenantId,
      name: mailbox,
      imapHost: dovecot.host,
      imapPort: dovecot.port,
      imapTls: false,
      imapUser: dovecot.user,
      imapPasswordEnc: app.engine.secrets.encrypt(dovecot.password),
      imapMailbox: mailbox,
      imapAfterProcess: "SEEN",
    })
    .returning();
  await app.database.db
    .insert(emailAddress)
    .values({ tenantId, address: to, name: "I", queueId: q!.id, accountId: acc!.id });
  await dovecot.appendMessage(typicalMail(to, 0, run + 1000), mailbox);
  // Fill the backlog over 4 connections (untimed).
  let next = 1;
  await Promise.all(
    Array.from({ length: CONCURRENCY }, async () => {
      const c = dovecot.client();
      await c.connect();
      try {
        for (let i = next++; i < N; i = next++) await c.append(mailbox, typicalMail(to, i, run + 1000));
      } finally {
        await c.logout();
      }
    }),
  );
  console.log(`imap run ${run}: backlog of ${N} appended, draining`);
  const t0 = performance.now();
  const cpu = await withCpu(N, async () => ({ status: await app.imap.pollAccount(acc!.id) }));
  const secs = (performance.now() - t0) / 1000;
  const [r] = await app.database.db
    .select({ n: count() })
    .from(message)
    .where(eq(message.accountId, acc!.id));
  if (r?.n !== N) throw new Error(`IMAP drained ${r?.n} of ${N}`);
  return {
    perS: N / secs,
    nodeCpuMs: cpu.nodeCpuMs,
    pgCpuMs: cpu.pgCpuMs,
    idlePct: cpu.idlePct,
    stealPct: cpu.stealPct,
  };
}

async function lagRun(): Promise<number> {
  // Built and sent by the child process: the lag measured is the server's own.
  const built = once(clients, "message");
  clients.send({ port: app.smtp!.port, to: smtpTo, largeBytes: 39 * 1024 * 1024 });
  await built;
  const h = monitorEventLoopDelay({ resolution: 10 });
  const answer = once(clients, "message");
  h.enable();
  const [{ response }] = (await answer) as [{ response: string }];
  h.disable();
  if (!/^250/.test(response)) throw new Error(`40 MB mail not accepted: ${response}`);
  return h.percentile(99) / 1e6;
}

async function baselineRun(): Promise<number> {
  const sql = postgres(db.url, { max: CONCURRENCY, onnotice: () => {} });
  await sql`CREATE TABLE IF NOT EXISTS bench_insert (id bigserial PRIMARY KEY, payload text NOT NULL)`;
  let next = 0;
  const t0 = performance.now();
  await Promise.all(
    Array.from({ length: CONCURRENCY }, async () => {
      for (let i = next++; i < N; i = next++)
        await sql`INSERT INTO bench_insert (payload) VALUES (${`row ${i}`})`;
    }),
  );
  const secs = (performance.now() - t0) / 1000;
  await sql.end();
  return N / secs;
}

/** Waits until the search indexer has caught up; records its pace when it had work. */
const searchRates: number[] = [];
async function searchCatchUp(): Promise<void> {
  if (!app.search) return;
  const [q] = await app.database.sql<{ n: number }[]>`SELECT count(*)::int AS n FROM message_search_queue`;
  const t0 = performance.now();
  await app.search.idle();
  const secs = (performance.now() - t0) / 1000;
  if ((q?.n ?? 0) >= 100) searchRates.push(q!.n / secs);
}

// Warm-up, unmeasured: JIT, the parser worker, prepared statements, the tables' first pages.
const WARMUP = Number(process.env.BENCH_WARMUP ?? Math.min(300, N));
await smtpRun(0, WARMUP);
await searchCatchUp();
console.log(`warm-up: ${WARMUP} SMTP messages`);

const smtp: (SmtpResult & Cpu)[] = [];
const imap: ({ perS: number } & Cpu)[] = [];
const lag: number[] = [];
const base: number[] = [];
for (let run = 1; run <= RUNS; run++) {
  const skipped = {
    perS: 0,
    p50: 0,
    p99: 0,
    senderCpuMs: 0,
    nodeCpuMs: 0,
    pgCpuMs: null,
    idlePct: 0,
    stealPct: 0,
  };
  base.push(PHASES.has("baseline") ? await baselineRun() : 0);
  smtp.push(PHASES.has("smtp") ? await withCpu(N, () => smtpRun(run)) : skipped);
  await searchCatchUp();
  imap.push(PHASES.has("imap") ? await imapRun(run) : skipped);
  await searchCatchUp();
  lag.push(PHASES.has("lag") ? await lagRun() : 0);
  await searchCatchUp();
  const s = smtp.at(-1)!;
  const i = imap.at(-1)!;
  const cpu = (c: Cpu) =>
    `CPU/msg node ${round(c.nodeCpuMs, 2)} ms + pg ${c.pgCpuMs === null ? "?" : round(c.pgCpuMs, 2)} ms; ` +
    `idle ${c.idlePct} %, stolen ${c.stealPct} %`;
  console.log(
    `run ${run}: smtp ${round(s.perS)} msg/s (p50 ${round(s.p50)} ms, p99 ${round(s.p99)} ms; ${cpu(s)}; ` +
      `${SENDER} senders ${round(s.senderCpuMs, 2)} ms), ` +
      `imap ${round(i.perS)} msg/s (${cpu(i)}), lag p99 ${round(lag.at(-1)!)} ms (40 MB), ` +
      `baseline ${round(base.at(-1)!)} insert/s, search indexer ${round(searchRates.at(-1) ?? 0)} msg/s, load ${loadavg()
        .map((l) => round(l, 2))
        .join(" ")}`,
  );
}

const metrics = {
  smtp_msgs_per_s: round(median(smtp.map((s) => s.perS))),
  imap_msgs_per_s: round(median(imap.map((i) => i.perS))),
  latency_p50_ms: round(median(smtp.map((s) => s.p50))),
  latency_p99_ms: round(median(smtp.map((s) => s.p99))),
  lag_p99_ms_40mb: round(median(lag)),
  baseline_insert_per_s: round(median(base)),
  // CPU per message (server process incl. parser threads; embedded PostgreSQL): what the
  // machine's cores bound the rates at, whatever else runs on them.
  smtp_node_cpu_ms_per_msg: round(median(smtp.map((x) => x.nodeCpuMs)), 2),
  smtp_pg_cpu_ms_per_msg: round(median(smtp.map((x) => x.pgCpuMs ?? 0)), 2),
  imap_node_cpu_ms_per_msg: round(median(imap.map((x) => x.nodeCpuMs)), 2),
  imap_pg_cpu_ms_per_msg: round(median(imap.map((x) => x.pgCpuMs ?? 0)), 2),
  // The hypervisor's share of this VM's CPU time during the phases (median): runs with
  // much steal are slower for reasons outside this code.
  smtp_steal_pct: round(median(smtp.map((x) => x.stealPct))),
  imap_steal_pct: round(median(imap.map((x) => x.stealPct))),
  // The search indexer catching up after a phase (not part of the phases' figures).
  search_index_msgs_per_s: round(median(searchRates)),
};
console.log(
  `medians of ${RUNS} run(s), ${N} messages each, ${SENDER} senders; smtp/baseline ${round(metrics.smtp_msgs_per_s / metrics.baseline_insert_per_s, 3)}, ` +
    `imap/baseline ${round(metrics.imap_msgs_per_s / metrics.baseline_insert_per_s, 3)}; load average ${loadavg()
      .map((l) => round(l, 2))
      .join(" ")}`,
);

clients.send("close");
await dovecot?.stop();
await app.stop();
await pgss.end();
await db.stop();
if (process.env.BENCH_EXPLAIN_MS)
  console.log(`auto_explain plans (≥ ${process.env.BENCH_EXPLAIN_MS} ms): ${EXPLAIN_LOG}`);
console.log(JSON.stringify({ bench: "ingest", metrics }));
