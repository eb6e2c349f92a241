/**
 * event-replay: how long a subscription's replay from `0.0` takes to read one
 * conversation's or one agent's events out of a large tenant log — `conversationEvents`
 * and `myInbox` with `after: "0.0"` (or an old cursor) — and what the agent index costs
 * every insert of an event that names an agent.
 *
 * A tenant log of `--events N` (default 500,000) events over 10,000 conversations; 30 % of
 * them name one of 200 agents (as routing events do), and one conversation has one event
 * per 10,000 of the log. Timed, alternated `--runs` times (default 5): each replay as it
 * reads now (the conversation's events by event_conversation_idx, the agent's by
 * event_agent_idx) and the way it read before 2026-11-23 (the tenant's whole log page by
 * page, filtered in the process), both through `EventHub.readPage` with its page size of
 * 500. Then 3,000 single-row inserts of an agent's event, alternated with and without
 * event_agent_idx.
 *   npm run bench -- event-replay [--events N] [--runs R]
 */
import { randomUUID } from "node:crypto";
import postgres from "postgres";
import { silentLogger } from "../src/engine/context.js";
import { EventHub } from "../src/engine/event-hub.js";
import { benchDatabase, intArg } from "./bench-db.js";

const EVENTS = intArg("events", 500_000);
const RUNS = intArg("runs", 5);
const PAGE = 500;
const AGENTS = 200;

const db = await benchDatabase("event-replay");
const sql = postgres(db.url, { max: 2, onnotice: () => {} });
const [t] = await sql<{ id: string }[]>`INSERT INTO tenant (name) VALUES ('Replay') RETURNING id`;
const tenantId = t!.id;
const conversation = randomUUID();
const agentOf = (n: number) => `00000000-0000-4000-9000-${String(n).padStart(12, "0")}`;
const agent = agentOf(1);
// The log, in transactions of 10,000 events, each with one event of the conversation.
const perTx = 10_000;
for (let done = 0; done < EVENTS; done += perTx) {
  const n = Math.min(perTx, EVENTS - done);
  await sql.begin(async (tx) => {
    await tx`
      INSERT INTO event (tenant_id, type, conversation_id, agent_id, payload, occurred_at)
      SELECT ${tenantId}::uuid, 'routing.offered',
             ('00000000-0000-4000-8000-' || lpad((g % 10000)::text, 12, '0'))::uuid,
             CASE WHEN g % 10 < 3
                  THEN ('00000000-0000-4000-9000-' || lpad((g % ${AGENTS})::text, 12, '0'))::uuid END,
             '{"n":1}'::jsonb, now()
      FROM generate_series(1, ${n}) g`;
    await tx`
      INSERT INTO event (tenant_id, type, conversation_id, payload, occurred_at)
      VALUES (${tenantId}::uuid, 'conversation.note', ${conversation}::uuid, '{}'::jsonb, now())`;
  });
}
await sql`VACUUM ANALYZE event`;
const [counted] = await sql<{ conv: number; agent: number }[]>`
  SELECT count(*) FILTER (WHERE conversation_id = ${conversation}::uuid)::int AS conv,
         count(*) FILTER (WHERE agent_id = ${agent}::uuid)::int AS agent
  FROM event`;
console.log(
  `log: ${EVENTS} events; ${counted!.conv} of the replayed conversation, ${counted!.agent} of the replayed agent`,
);

const hub = new EventHub(sql, silentLogger);
type Scope = { conversationId?: string; agentId?: string };
async function replay(scope: Scope, scoped: boolean): Promise<{ ms: number; pages: number; found: number }> {
  let from = { txId: 0n, id: 0 };
  let pages = 0;
  let found = 0;
  const t0 = performance.now();
  for (;;) {
    const { rows } = await hub.readPage(from, tenantId, PAGE, scoped ? scope : {});
    pages++;
    for (const r of rows) {
      if (scope.conversationId ? r.conversationId === scope.conversationId : r.agentId === scope.agentId)
        found++;
    }
    const tail = rows.at(-1);
    if (rows.length < PAGE || !tail) break;
    from = { txId: BigInt(tail.txId), id: tail.id };
  }
  return { ms: performance.now() - t0, pages, found };
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor((xs.length - 1) / 2)]!;
const round = (x: number) => Math.round(x * 10) / 10;
const times: Record<string, number[]> = { conv: [], convScan: [], agent: [], agentScan: [] };
for (let run = 1; run <= RUNS; run++) {
  const line: string[] = [];
  for (const [key, scope, expected] of [
    ["conv", { conversationId: conversation }, counted!.conv],
    ["agent", { agentId: agent }, counted!.agent],
  ] as const) {
    const a = await replay(scope, true);
    const b = await replay(scope, false);
    if (a.found !== expected || b.found !== expected)
      throw new Error(`${key}: found ${a.found} / ${b.found} of ${expected}`);
    times[key]!.push(a.ms);
    times[`${key}Scan`]!.push(b.ms);
    line.push(
      `${key} ${round(a.ms)} ms (${a.pages} pages) vs tenant log ${round(b.ms)} ms (${b.pages} pages)`,
    );
  }
  console.log(`run ${run}: ${line.join("; ")}`);
}

// What the agent index costs an insert: single-row autocommit inserts of an agent's event.
async function inserts(n: number): Promise<number> {
  const t0 = performance.now();
  for (let i = 0; i < n; i++) {
    await sql`
      INSERT INTO event (tenant_id, type, conversation_id, agent_id, payload, occurred_at)
      VALUES (${tenantId}::uuid, 'routing.offered', ${conversation}::uuid, ${agentOf(i % AGENTS)}::uuid,
              '{"n":1}'::jsonb, now())`;
  }
  return ((performance.now() - t0) * 1000) / n;
}
const withIndex: number[] = [];
const withoutIndex: number[] = [];
for (let run = 1; run <= RUNS; run++) {
  withIndex.push(await inserts(3000));
  await sql`DROP INDEX event_agent_idx`;
  withoutIndex.push(await inserts(3000));
  await sql`CREATE INDEX event_agent_idx ON event (agent_id, tx_id, id) WHERE agent_id IS NOT NULL`;
  console.log(
    `inserts run ${run}: ${round(withIndex.at(-1)!)} µs with the agent index, ${round(withoutIndex.at(-1)!)} µs without`,
  );
}
await sql.end();
await db.stop();
const metrics = {
  events: EVENTS,
  conversation_replay_ms: round(median(times.conv!)),
  conversation_tenant_scan_ms: round(median(times.convScan!)),
  agent_replay_ms: round(median(times.agent!)),
  agent_tenant_scan_ms: round(median(times.agentScan!)),
  insert_us_with_agent_index: round(median(withIndex)),
  insert_us_without_agent_index: round(median(withoutIndex)),
};
console.log(JSON.stringify({ bench: "event-replay", metrics }));
