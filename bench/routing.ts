import { performance } from "node:perf_hooks";
import { decodeGlobalID } from "@pothos/plugin-relay";
import { createClient } from "graphql-ws";
import WebSocket from "ws";
import { startSwitchboard } from "../src/app.js";
import { loadConfig } from "../src/config.js";
import { rawClient } from "../src/db/client.js";
import { createTenantWithAdmin } from "../src/engine/auth.js";
import { silentLogger } from "../src/engine/context.js";
import { generateApiKey } from "../src/engine/crypto.js";
import { benchDatabase, intArg } from "./bench-db.js";

/** `--agents N --queues N --waiting N --runs N` scale it down for profiling; defaults are the load. */
const AGENTS = intArg("agents", 1_000);
const QUEUES = intArg("queues", 50);
const WAITING = intArg("waiting", 20_000);
const INBOX_LIMIT = 20;
const SUBSCRIBED_AGENTS = Math.min(20, AGENTS);
const RUNS = intArg("runs", 3);

const pct = (xs: number[], p: number) => {
  if (xs.length === 0) return 0;
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))]!;
};
const median = (xs: number[]) => pct(xs, 50);
const round = (x: number, d = 2) => Math.round(x * 10 ** d) / 10 ** d;

const bench = await benchDatabase("routing");
const url = bench.url;
const config = loadConfig({
  NODE_ENV: "production",
  DATABASE_URL: url,
  PORT: "0",
  HOST: "127.0.0.1",
  SMTP_ENABLED: "false",
  BOOTSTRAP: "false",
  SECRET_KEY: "22".repeat(32),
  LOG_LEVEL: "silent",
});
const app = await startSwitchboard(config, { log: silentLogger });
const db = app.engine.db;
const sql = rawClient(db);

const { tenantId } = await createTenantWithAdmin(db, {
  tenantName: `Bench ${Date.now()}`,
  adminEmail: `admin${Date.now()}@bench.test`,
});
console.log(`seeding ${AGENTS} agents, ${QUEUES} queues, ${WAITING} conversations…`);
const agentIds = (
  await sql<{ id: string }[]>`
    INSERT INTO "user" (tenant_id, email, name, role, presence, logged_in, inbox_limit)
    SELECT ${tenantId}, 'agent' || g || '@bench.test', 'Agent ' || g, 'AGENT', 'AVAILABLE', true, ${INBOX_LIMIT}
    FROM generate_series(1, ${AGENTS}) g RETURNING id`
).map((r) => r.id);
const queueIds = (
  await sql<{ id: string }[]>`
    INSERT INTO queue (tenant_id, name, auto_parking, auto_park_spacing_seconds)
    SELECT ${tenantId}, 'Queue ' || g, true, 0 FROM generate_series(1, ${QUEUES}) g RETURNING id`
).map((r) => r.id);
await sql`
  INSERT INTO queue_member (tenant_id, queue_id, user_id)
  SELECT ${tenantId}, (${queueIds}::uuid[])[1 + (i - 1) % ${QUEUES}], (${agentIds}::uuid[])[i]
  FROM generate_series(1, ${AGENTS}) i`;
const [ct] = await sql<{ id: string }[]>`
  INSERT INTO contact (tenant_id, email) VALUES (${tenantId}, 'load@bench.test') RETURNING id`;
await sql`
  INSERT INTO conversation (tenant_id, ticket_number, contact_id, queue_id, priority, work_state, enqueued_at,
                            received_at, last_activity_at, status_changed_at)
  SELECT ${tenantId}, g, ${ct!.id}, (${queueIds}::uuid[])[1 + (g - 1) % ${QUEUES}], g % 3, 'WAITING',
         now() - (g || ' seconds')::interval, now(), now(), now()
  FROM generate_series(1, ${WAITING}) g`;
await sql`ANALYZE`;

// Subscribers: real graphql-ws clients on myInbox of the first agents of the first queues.
const subscribed = agentIds.slice(0, SUBSCRIBED_AGENTS);
const keys: string[] = [];
for (const id of subscribed) {
  const k = generateApiKey();
  await sql`INSERT INTO api_key (tenant_id, user_id, name, prefix, secret_hash)
            VALUES (${tenantId}, ${id}, 'bench', ${k.prefix}, ${k.secretHash})`;
  keys.push(k.key);
}
/** Latest commit time per queue id, so a received event is matched with its pass. */
const commits = new Map<string, number[]>();
let decisionSamples: number[] = [];
let delivered = 0;
app.routing.onPass = (r) => {
  const n = r.delivered + r.offered;
  if (n === 0) return;
  delivered += n;
  for (let i = 0; i < n; i++) decisionSamples.push(r.decisionMs);
  passSamples.push(r.decisionMs * n);
  const list = commits.get(r.queueId) ?? [];
  list.push(r.committedAt);
  commits.set(r.queueId, list);
};
let subscriberSamples: number[] = [];
/** Where the time went, per received event: commit → hub read, hub read → client receipt. */
let readSamples: number[] = [];
let deliverSamples: number[] = [];
let passSamples: number[] = [];
const readAt = new Map<number, number>();
const hub = app.engine.hub;
const readPage = hub.readPage.bind(hub);
let readMs: number[] = [];
hub.readPage = async (...a: Parameters<typeof readPage>) => {
  const t = performance.now();
  const r = await readPage(...a);
  readMs.push(performance.now() - t);
  const at = Date.now();
  for (const e of r.rows) if (e.type === "routing.assigned") readAt.set(e.id, at);
  return r;
};
const clients = keys.map((key) =>
  createClient({
    url: app.http.wsUrl,
    webSocketImpl: WebSocket,
    connectionParams: { authorization: `Bearer ${key}` },
  }),
);
type InboxMessage = {
  myInbox: { event: { id: string; type: string; queueId: string }; conversation: { id: string } | null };
};
await Promise.all(
  clients.map(
    (client) =>
      new Promise<void>((ready) => {
        client.subscribe<InboxMessage>(
          {
            // What an agent desktop needs to update its inbox list: the event and the conversation row.
            query: `subscription { myInbox(after: "0.0") {
              event { id type queueId }
              conversation { id workState subject priority assignedAt } } }`,
          },
          {
            next: (m) => {
              const at = Date.now();
              const e = m.data?.myInbox.event;
              if (e?.type !== "routing.assigned") return;
              const queueId = decodeGlobalID(e.queueId).id;
              const list = commits.get(queueId) ?? [];
              // The pass that produced it: the latest commit not after receipt.
              let best = -1;
              for (const c of list) if (c <= at && c > best) best = c;
              if (best > 0) {
                subscriberSamples.push(at - best);
                const read = readAt.get(Number(e.id));
                if (read !== undefined) {
                  readSamples.push(read - best);
                  deliverSamples.push(at - read);
                }
              }
            },
            error: (err) => console.error("subscription error", err),
            complete: () => {},
          },
        );
        setTimeout(ready, 200);
      }),
  ),
);

async function reset(): Promise<void> {
  await sql`UPDATE conversation SET work_state = 'WAITING', assignee_id = NULL, active_since = NULL,
            assigned_at = NULL, offered_to_id = NULL, offer_expires_at = NULL WHERE tenant_id = ${tenantId}`;
  await sql`UPDATE agent_state SET last_assigned_at = NULL, last_auto_delivered_at = NULL
            WHERE tenant_id = ${tenantId}`;
  await sql`DELETE FROM agent_queue_daily WHERE tenant_id = ${tenantId}`;
  await sql`VACUUM ANALYZE conversation`;
}

async function baseline(): Promise<number> {
  const ids = (
    await sql<{ id: string }[]>`SELECT id FROM conversation WHERE tenant_id = ${tenantId} LIMIT 2000`
  ).map((r) => r.id);
  const t0 = performance.now();
  for (const id of ids) await sql`UPDATE conversation SET priority = priority WHERE id = ${id}`;
  return ids.length / ((performance.now() - t0) / 1000);
}

const runs: { rate: number; p50: number; p99: number; s50: number; s99: number; base: number }[] = [];
for (let run = 1; run <= RUNS; run++) {
  await reset();
  decisionSamples = [];
  subscriberSamples = [];
  readSamples = [];
  deliverSamples = [];
  passSamples = [];
  readAt.clear();
  readMs = [];
  commits.clear();
  delivered = 0;
  const t0 = performance.now();
  for (const q of queueIds) app.engine.signals.routeQueue(tenantId, q);
  await app.routing.idle();
  const seconds = (performance.now() - t0) / 1000;
  // Let the last events reach the subscribers.
  await new Promise((r) => setTimeout(r, 1_000));
  const base = await baseline();
  const r = {
    rate: delivered / seconds,
    p50: pct(decisionSamples, 50),
    p99: pct(decisionSamples, 99),
    s50: pct(subscriberSamples, 50),
    s99: pct(subscriberSamples, 99),
    base,
  };
  runs.push(r);
  const passes = passSamples.length;
  console.log(
    `run ${run}: ${delivered} assignments in ${round(seconds)} s = ${round(r.rate, 0)}/s; decision p50 ${round(r.p50)} ms p99 ${round(r.p99)} ms; ` +
      `subscriber p50 ${round(r.s50)} ms p99 ${round(r.s99)} ms (${subscriberSamples.length} events); baseline ${round(base, 0)} single-row UPDATEs/s (ratio ${round(r.rate / base)})`,
  );
  console.log(
    `  where the time went: ${passes} passes, pass p50 ${round(pct(passSamples, 50))} ms p99 ${round(pct(passSamples, 99))} ms; ` +
      `commit → hub read p50 ${round(pct(readSamples, 50))} ms p99 ${round(pct(readSamples, 99))} ms; ` +
      `hub read → client p50 ${round(pct(deliverSamples, 50))} ms p99 ${round(pct(deliverSamples, 99))} ms; ` +
      `${readMs.length} hub reads, p50 ${round(pct(readMs, 50))} ms p99 ${round(pct(readMs, 99))} ms`,
  );
}

for (const c of clients) await c.dispose();
await app.stop();
await bench.stop();

const metrics = {
  assignments_per_s: round(median(runs.map((r) => r.rate)), 1),
  decision_p50_ms: round(median(runs.map((r) => r.p50)), 3),
  decision_p99_ms: round(median(runs.map((r) => r.p99)), 3),
  subscriber_p50_ms: round(median(runs.map((r) => r.s50)), 1),
  subscriber_p99_ms: round(median(runs.map((r) => r.s99)), 1),
  baseline_updates_per_s: round(median(runs.map((r) => r.base)), 1),
  ratio_to_baseline: round(median(runs.map((r) => r.rate / r.base)), 2),
};
console.log(JSON.stringify({ bench: "routing", metrics }));
process.exit(0);
