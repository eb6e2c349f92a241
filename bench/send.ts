/**
 * send: the whole outbound path. N replies are composed through the engine service
 * (`replyToConversation`: one transaction each — compose, raw MIME stored, message row,
 * events, pg-boss job enqueued on the same connection) and delivered by the pg-boss send
 * workers over the pooled SMTP transport to the capturing sink in a child process.
 *
 *   npm run bench -- send [messages=5000] [runs=3]     (BENCH_WARMUP=n replies first, default 1000)
 *
 * Reports msgs/s (first enqueue → last SENT) and queued-to-sent latency (message row
 * created → SENT recorded, from the database); baseline: the raw compose+SMTP rate of
 * send-core in the same process against the same sink, and the ratio. PostgreSQL is the
 * embedded one in a temp dir unless DATABASE_URL is set (then a scratch database on it).
 * The last line is the JSON result.
 */
import type { ChildProcess } from "node:child_process";
import { fork } from "node:child_process";
import { once } from "node:events";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { and, eq, inArray, sql } from "drizzle-orm";
import postgres from "postgres";
import { startSwitchboard } from "../src/app.js";
import { loadConfig } from "../src/config.js";
import { SmtpSender } from "../src/connectors/smtp-out.js";
import { rawClient } from "../src/db/client.js";
import { startEmbeddedPostgres } from "../src/db/embedded.js";
import { runMigrations } from "../src/db/migrate.js";
import {
  contact,
  conversation,
  emailAddress,
  mailAccount,
  message,
  queue,
  tenant,
} from "../src/db/schema/index.js";
import { createTenantWithAdmin } from "../src/engine/auth.js";
import { silentLogger } from "../src/engine/context.js";
import { compose } from "../src/engine/outbound/compose.js";
import { replyToConversation } from "../src/engine/outbound/service.js";
import { loadViewer } from "../src/engine/viewer.js";
import { freePort } from "./bench-db.js";
import { postgresCpuMs, postmasterPid, procCpuMs, threadCpuMs, threadCpuSince } from "./cpu.js";
import { pgssPrint, pgssReset, pgssSettings } from "./pgss.js";

const MESSAGES = Number(process.argv[2] ?? 5000);
const RUNS = Number(process.argv[3] ?? 3);
/** Agents replying at once (API requests in flight). */
const CLIENTS = Number(process.env.BENCH_CLIENTS ?? 16);

function percentile(sorted: number[], p: number): number {
  const idx = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1));
  return sorted[idx] as number;
}

async function startSinkProcess(): Promise<{ child: ChildProcess; port: number }> {
  const child = fork(fileURLToPath(new URL("./sink-process.ts", import.meta.url)), {
    execArgv: ["--import", "tsx"],
  });
  const [msg] = (await once(child, "message")) as [{ port: number }];
  return { child, port: msg.port };
}

async function ask<T>(child: ChildProcess, question: string): Promise<T> {
  const answer = once(child, "message");
  child.send(question);
  return (await answer)[0] as T;
}

// ---------------------------------------------------------------------------------------
// Database: embedded in a temp dir, or a scratch database on DATABASE_URL's server.

let dbUrl: string;
const cleanups: (() => Promise<void>)[] = [];
/** The embedded server's postmaster pid (its backends are its children); null on DATABASE_URL. */
let postmaster: number | null = null;

/** CPU of the embedded PostgreSQL in ms; NaN with DATABASE_URL (another machine's). */
const pgCpuMs = (): number => (postmaster === null ? Number.NaN : postgresCpuMs(postmaster));

/**
 * Replies composed and delivered before the measured runs (BENCH_WARMUP, default 1,000):
 * with 300 the first measured run still paid ~2 s of V8's first TurboFan compiles (its
 * helper threads ~0.7 ms per message against ~0.25 in the later runs), which a server
 * that has been up for minutes has long paid.
 */
const WARMUP = Number(process.env.BENCH_WARMUP ?? 1000);
/**
 * BENCH_STATEMENTS=1 counts the statements sent: the app's (postgres.js debug hook) and
 * pg-boss's own pool (node-postgres). Off by default: counting costs a little CPU.
 */
const COUNT = process.env.BENCH_STATEMENTS === "1";
/** BENCH_PGSS=1|all: pg_stat_statements per measured run (bench/pgss.ts). */
const statements = new Map<string, number>();
function countStatement(text: string): void {
  const key = text.replace(/\s+/g, " ").trim().slice(0, 90);
  statements.set(key, (statements.get(key) ?? 0) + 1);
}
if (process.env.DATABASE_URL) {
  const admin = new URL(process.env.DATABASE_URL);
  admin.pathname = "/postgres";
  const name = `sb_bench_send_${process.pid}`;
  const a = postgres(admin.toString(), { max: 1, onnotice: () => {} });
  await a.unsafe(`CREATE DATABASE ${name}`);
  await a.end();
  const u = new URL(admin);
  u.pathname = `/${name}`;
  dbUrl = u.toString();
  cleanups.push(async () => {
    const b = postgres(admin.toString(), { max: 1, onnotice: () => {} });
    await b.unsafe(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
    await b.end();
  });
} else {
  const dir = mkdtempSync(join(tmpdir(), "sb-bench-send-"));
  const pg = await startEmbeddedPostgres({
    dataDir: dir,
    port: await freePort(),
    persistent: false,
    ...pgssSettings(),
  });
  dbUrl = pg.url;
  postmaster = postmasterPid(join(dir, "pg"));
  cleanups.push(async () => {
    await pg.stop();
    rmSync(dir, { recursive: true, force: true });
  });
}
await runMigrations(dbUrl);

const sink = await startSinkProcess();
const app = await startSwitchboard(
  loadConfig({
    NODE_ENV: "test",
    DATABASE_URL: dbUrl,
    PORT: "0",
    HOST: "127.0.0.1",
    SMTP_ENABLED: "false",
    BOOTSTRAP: "false",
    SECRET_KEY: "22".repeat(32),
    LOG_LEVEL: "silent",
    SEND_WORKERS: process.env.SEND_WORKERS ?? "4",
    SEND_BATCH_SIZE: process.env.SEND_BATCH_SIZE ?? "100",
    SEND_POLL_MS: process.env.SEND_POLL_MS ?? "500",
    SEND_SMTP_CONNECTIONS: process.env.SEND_SMTP_CONNECTIONS ?? "16",
  }),
  { log: silentLogger, ...(COUNT ? { onQuery: countStatement } : {}) },
);
const { engine } = app;
if (COUNT) {
  // pg-boss's own pool: every statement it sends goes through its Db's executeSql.
  const bossDb = app.jobs.boss.getDb() as { executeSql(text: string, values?: unknown[]): Promise<unknown> };
  const executeSql = bossDb.executeSql.bind(bossDb);
  bossDb.executeSql = (text, values) => {
    countStatement(`[boss] ${text}`);
    return executeSql(text, values);
  };
}
const db = app.database.db;

const owner = await createTenantWithAdmin(db, { tenantName: "Bench", adminEmail: "admin@bench.example" });
await db
  .update(tenant)
  .set({ company: "ACME Corp", timeZone: "Europe/Berlin", messageIdDomain: "mail.bench.example" })
  .where(eq(tenant.id, owner.tenantId));
const [acct] = await db
  .insert(mailAccount)
  .values({
    tenantId: owner.tenantId,
    name: "sink",
    smtpHost: "127.0.0.1",
    smtpPort: sink.port,
    smtpTlsMode: "NONE",
  })
  .returning();
const [q] = await db.insert(queue).values({ tenantId: owner.tenantId, name: "Support" }).returning();
const [addr] = await db
  .insert(emailAddress)
  .values({
    tenantId: owner.tenantId,
    address: "support@bench.example",
    name: "Support",
    displayName: "ACME Support",
    replyTo: "desk@bench.example",
    bcc: ["audit@bench.example"],
    accountId: acct!.id,
    queueId: q!.id,
  })
  .returning();
const [tn] = await db.select().from(tenant).where(eq(tenant.id, owner.tenantId));
const viewer = (await loadViewer(db, owner.userId, tn!.rolePermissions))!;

/** N conversations with one inbound message each, written in bulk (setup, not measured). */
async function seedConversations(n: number, run: number): Promise<string[]> {
  const ids: string[] = [];
  for (let start = 0; start < n; start += 500) {
    const size = Math.min(500, n - start);
    const contacts = await db
      .insert(contact)
      .values(
        Array.from({ length: size }, (_, i) => ({
          tenantId: owner.tenantId,
          email: `c${run}-${start + i}@customer.example`,
          name: `Carla ${start + i}`,
        })),
      )
      .returning({ id: contact.id, email: contact.email });
    const now = new Date();
    const convs = await db
      .insert(conversation)
      .values(
        contacts.map((c, i) => ({
          tenantId: owner.tenantId,
          ticketNumber: run * 1_000_000 + start + i + 1,
          subject: "My order has not arrived",
          status: "ACTIVE" as const,
          contactId: c.id,
          addressId: addr!.id,
          queueId: q!.id,
          receivedAt: now,
          lastActivityAt: now,
          statusChangedAt: now,
        })),
      )
      .returning({ id: conversation.id });
    await db.insert(message).values(
      convs.map((c, i) => ({
        tenantId: owner.tenantId,
        conversationId: c.id,
        direction: "INBOUND" as const,
        messageIdHeader: `in-${run}-${start + i}@customer.example`,
        from: { address: contacts[i]!.email, name: `Carla ${start + i}` },
        to: [{ address: "support@bench.example", name: "" }],
        subject: "My order has not arrived",
        text: "Hello,\nmy order #4711 has not arrived yet. Can you check?\nCarla",
        html: "<p>Hello,</p><p>my order <b>#4711</b> has not arrived yet. Can you check?</p><p>Carla</p>",
        receivedAt: now,
      })),
    );
    ids.push(...convs.map((c) => c.id));
  }
  return ids;
}

interface RunResult {
  msgsPerS: number;
  enqueuePerS: number;
  p50: number;
  p99: number;
  /** CPU of this process (user + system, all threads) per message: reply and delivery. */
  cpuMsPerMsg: number;
  /** CPU of the embedded PostgreSQL per message (NaN on DATABASE_URL). */
  pgCpuMsPerMsg: number;
  /** CPU of the SMTP sink process per message. */
  sinkCpuMsPerMsg: number;
  /** Of cpuMsPerMsg: the main thread, and the other threads (V8 helpers, libuv pool). */
  mainCpuMsPerMsg: number;
  otherCpuMsPerMsg: number;
  /** Transactions committed in the database per message (pg_stat_database). */
  commitsPerMsg: number;
}

async function commits(): Promise<number> {
  const [r] = await db.execute<{ n: string }>(
    sql`SELECT xact_commit::text AS n FROM pg_stat_database WHERE datname = current_database()`,
  );
  return Number(r!.n);
}

async function runService(run: number, n: number): Promise<RunResult> {
  const convIds = await seedConversations(n, run);
  // Fresh statistics, as autovacuum keeps them in a running system. Without this the
  // pooled connections' cached generic plans stay the ones built in the warm-up on nearly
  // empty tables while the bulk seeding grows them 20-fold within a minute; a reply's lock
  // statement then read ~1,000 pages instead of ~10 (2026-11-22, docs/benchmarks.md).
  await db.execute(sql`ANALYZE`);
  let next = 0;
  const sunk0 = (await ask<{ count: number }>(sink.child, "count")).count;
  statements.clear();
  await pgssReset(rawClient(db));
  const commits0 = await commits();
  const threads0 = threadCpuMs();
  const cpu0 = process.cpuUsage();
  const pg0 = pgCpuMs();
  const sink0 = procCpuMs(sink.child.pid!);
  const started = performance.now();
  const queued: string[] = [];
  async function client() {
    while (next < convIds.length) {
      const id = convIds[next++]!;
      const m = await replyToConversation(engine, viewer, id, {
        html: `<p>Hi Carla,</p><p>your parcel left our warehouse today (reply ${next}).</p>`,
      });
      queued.push(m.id);
    }
  }
  await Promise.all(Array.from({ length: CLIENTS }, client));
  const enqueueS = (performance.now() - started) / 1000;
  // Delivery is watched through the sink's count (an IPC question, no database work);
  // the rows' status is read once the sink has them all, and once a second meanwhile to
  // notice failures. Polling the message table for all N ids every 50 ms cost PostgreSQL
  // and this process ≈ 0.2 ms per message each, counted as if the send path spent it.
  for (let polls = 0; ; polls++) {
    const { count } = await ask<{ count: number }>(sink.child, "count");
    if (count - sunk0 < n && polls % 20 !== 19) {
      await new Promise((r) => setTimeout(r, 50));
      continue;
    }
    const [row] = await db
      .select({
        sent: sql<number>`count(*) FILTER (WHERE ${message.outboundStatus} = 'SENT')::int`,
        failed: sql<number>`count(*) FILTER (WHERE ${message.outboundStatus} = 'FAILED')::int`,
      })
      .from(message)
      .where(inArray(message.id, queued));
    if (row!.failed > 0) throw new Error(`${row!.failed} messages FAILED`);
    if (row!.sent === n) break;
    await new Promise((r) => setTimeout(r, 50));
  }
  const elapsed = (performance.now() - started) / 1000;
  const cpu = process.cpuUsage(cpu0);
  const threads = threadCpuSince(threads0);
  // pg_stat_database is updated when a backend reports (at most every second, and at idle).
  await new Promise((r) => setTimeout(r, 1100));
  const commitCount = (await commits()) - commits0;
  if (run > 0) await pgssPrint(rawClient(db), n);
  if (COUNT) {
    const rows = [...statements].sort((a, b) => b[1] - a[1]);
    const total = rows.reduce((s, [, c]) => s + c, 0);
    console.log(`statements: ${(total / n).toFixed(2)} per message (${total} in all)`);
    for (const [text, c] of rows) if (c / n >= 0.01) console.log(`  ${(c / n).toFixed(2)}  ${text}`);
  }
  const pgCpu = pgCpuMs() - pg0;
  const sinkCpu = procCpuMs(sink.child.pid!) - sink0;
  const lat = await db
    .select({ ms: sql<number>`extract(epoch from (${message.sentAt} - ${message.createdAt})) * 1000` })
    .from(message)
    .where(and(inArray(message.id, queued), eq(message.outboundStatus, "SENT")));
  const sorted = lat.map((r) => Number(r.ms)).sort((a, b) => a - b);
  return {
    msgsPerS: n / elapsed,
    enqueuePerS: n / enqueueS,
    p50: percentile(sorted, 50),
    p99: percentile(sorted, 99),
    cpuMsPerMsg: (cpu.user + cpu.system) / 1000 / n,
    pgCpuMsPerMsg: pgCpu / n,
    sinkCpuMsPerMsg: sinkCpu / n,
    mainCpuMsPerMsg: threads.main / n,
    otherCpuMsPerMsg: threads.others.reduce((a, b) => a + b, 0) / n,
    commitsPerMsg: commitCount / n,
  };
}

/** Baseline in the same process: compose + SMTP only (send-core), 32 in flight. */
async function runBaseline(n: number): Promise<number> {
  const sender = new SmtpSender({ maxConnections: 8, maxMessages: 1000 });
  const settings = { host: "127.0.0.1", port: sink.port, tlsMode: "NONE" as const };
  let next = 0;
  const started = performance.now();
  async function worker() {
    while (next < n) {
      const i = next++;
      const r = await sender.send(
        settings,
        compose({
          kind: "REPLY",
          address: {
            displayName: "ACME Support",
            fromAddress: "support@bench.example",
            replyTo: ["desk@bench.example"],
            bcc: ["audit@bench.example"],
            ticketFormat: { placement: "END", delimiter: "SQUARE" },
            signaturePolicy: "ALL",
            historyPolicy: "ALWAYS",
            templateHtml: null,
          },
          subjectOptions: { appendTicketOnFirstReply: false, agentsMayEditSubject: false },
          conversation: {
            ticketNumber: 100000 + i,
            subject: "My order has not arrived",
            isFirstReply: true,
            messages: [
              {
                messageId: `<b${i}@customer.example>`,
                from: { name: "Carla", address: `b${i}@customer.example` },
                date: new Date(),
                text: "Hello,\nmy order #4711 has not arrived yet. Can you check?\nCarla",
                html: "<p>Hello,</p><p>my order <b>#4711</b> has not arrived yet. Can you check?</p><p>Carla</p>",
              },
            ],
          },
          agent: { name: "Admin", alias: null, email: "admin@bench.example" },
          companyName: "ACME Corp",
          signature: null,
          body: { html: `<p>Hi Carla,</p><p>your parcel left our warehouse today (reply ${i}).</p>` },
          messageIdDomain: "mail.bench.example",
          now: new Date(),
          timeZone: "Europe/Berlin",
        }),
      );
      if (!r.ok) throw new Error(`baseline send failed: ${r.message}`);
    }
  }
  await Promise.all(Array.from({ length: 32 }, worker));
  const rate = n / ((performance.now() - started) / 1000);
  await sender.close();
  return rate;
}

const round = (n: number) => Math.round(n * 100) / 100;
const medianOf = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
try {
  // Warm-up (JIT, pools, pg-boss queues), not measured.
  await runService(0, WARMUP);
  await runBaseline(300);
  const results: RunResult[] = [];
  const baselines: number[] = [];
  for (let r = 1; r <= RUNS; r++) {
    const res = await runService(r, MESSAGES);
    const base = await runBaseline(MESSAGES);
    results.push(res);
    baselines.push(base);
    console.log(
      `run ${r}: ${res.msgsPerS.toFixed(0)} msgs/s end-to-end (enqueue ${res.enqueuePerS.toFixed(0)}/s), ` +
        `queued→sent p50 ${res.p50.toFixed(0)} ms, p99 ${res.p99.toFixed(0)} ms, ` +
        `CPU per msg: ${res.cpuMsPerMsg.toFixed(2)} ms here (main ${res.mainCpuMsPerMsg.toFixed(2)}, ` +
        `other threads ${res.otherCpuMsPerMsg.toFixed(2)}), ${res.pgCpuMsPerMsg.toFixed(2)} ms PostgreSQL, ` +
        `${res.sinkCpuMsPerMsg.toFixed(2)} ms sink; ${res.commitsPerMsg.toFixed(2)} commits/msg; ` +
        `baseline compose+SMTP ${base.toFixed(0)} msgs/s, ratio ${(res.msgsPerS / base).toFixed(2)}`,
    );
  }
  const median = [...results].sort((a, b) => a.msgsPerS - b.msgsPerS)[Math.floor(RUNS / 2)]!;
  const baseline = [...baselines].sort((a, b) => a - b)[Math.floor(RUNS / 2)]!;
  console.log(
    `median: ${median.msgsPerS.toFixed(0)} msgs/s, p50 ${median.p50.toFixed(0)} ms, p99 ${median.p99.toFixed(0)} ms; ` +
      `baseline ${baseline.toFixed(0)} msgs/s; ratio ${(median.msgsPerS / baseline).toFixed(2)}`,
  );
  const { count } = await ask<{ count: number }>(sink.child, "count");
  console.log(`sink received ${count} messages`);
  console.log(
    JSON.stringify({
      bench: "send",
      metrics: {
        msgs_per_s: round(median.msgsPerS),
        queued_to_sent_p50_ms: round(median.p50),
        queued_to_sent_p99_ms: round(median.p99),
        baseline_msgs_per_s: round(baseline),
        ratio: round(median.msgsPerS / baseline),
        cpu_ms_per_msg: round(medianOf(results.map((r) => r.cpuMsPerMsg))),
        pg_cpu_ms_per_msg: round(medianOf(results.map((r) => r.pgCpuMsPerMsg))),
        sink_cpu_ms_per_msg: round(medianOf(results.map((r) => r.sinkCpuMsPerMsg))),
        main_thread_cpu_ms_per_msg: round(medianOf(results.map((r) => r.mainCpuMsPerMsg))),
        other_threads_cpu_ms_per_msg: round(medianOf(results.map((r) => r.otherCpuMsPerMsg))),
        commits_per_msg: round(medianOf(results.map((r) => r.commitsPerMsg))),
      },
    }),
  );
} finally {
  await app.stop();
  const exited = once(sink.child, "exit");
  sink.child.send("close");
  await exited;
  for (const c of cleanups) await c();
}
