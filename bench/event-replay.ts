/**
 * event-replay: how long a subscription's replay from `0.0` takes to read one
 * conversation's events out of a large tenant log — `conversationEvents(after: "0.0")`.
 *
 * A tenant log of `--events N` (default 500,000) events over 10,000 conversations, plus one
 * conversation with one event per 10,000 of the log, spread through it. Timed, alternated `--runs` times (default
 * 5): the replay as it reads now (the conversation's events only, event_conversation_idx)
 * and the way it read before 2026-11-23 (the tenant's whole log page by page, filtered in
 * the process), both through `EventHub.readPage` with its page size of 500.
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

const db = await benchDatabase("event-replay");
const sql = postgres(db.url, { max: 2, onnotice: () => {} });
const [t] = await sql<{ id: string }[]>`INSERT INTO tenant (name) VALUES ('Replay') RETURNING id`;
const tenantId = t!.id;
const target = randomUUID();
// The log, in transactions of 10,000 events, each with one event of the target.
const perTx = 10_000;
for (let done = 0; done < EVENTS; done += perTx) {
  const n = Math.min(perTx, EVENTS - done);
  await sql.begin(async (tx) => {
    await tx`
      INSERT INTO event (tenant_id, type, conversation_id, payload, occurred_at)
      SELECT ${tenantId}::uuid, 'conversation.note',
             ('00000000-0000-4000-8000-' || lpad((g % 10000)::text, 12, '0'))::uuid,
             '{"n":1}'::jsonb, now()
      FROM generate_series(1, ${n}) g`;
    await tx`
        INSERT INTO event (tenant_id, type, conversation_id, payload, occurred_at)
        VALUES (${tenantId}::uuid, 'conversation.note', ${target}::uuid, '{}'::jsonb, now())`;
  });
}
await sql`VACUUM ANALYZE event`;
const [counted] = await sql<{ mine: number }[]>`
  SELECT count(*)::int AS mine FROM event WHERE conversation_id = ${target}::uuid`;
const mine = counted!.mine;
console.log(`log: ${EVENTS} events of 10,000 conversations, ${mine} of the replayed one`);

const hub = new EventHub(sql, silentLogger);
async function replay(scoped: boolean): Promise<{ ms: number; pages: number; found: number }> {
  let from = { txId: 0n, id: 0 };
  let pages = 0;
  let found = 0;
  const t0 = performance.now();
  for (;;) {
    const { rows } = await hub.readPage(from, tenantId, PAGE, scoped ? target : null);
    pages++;
    for (const r of rows) if (r.conversationId === target) found++;
    const tail = rows.at(-1);
    if (rows.length < PAGE || !tail) break;
    from = { txId: BigInt(tail.txId), id: tail.id };
  }
  return { ms: performance.now() - t0, pages, found };
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor((xs.length - 1) / 2)]!;
const scoped: number[] = [];
const tenantWide: number[] = [];
for (let run = 1; run <= RUNS; run++) {
  const a = await replay(true);
  const b = await replay(false);
  if (a.found !== mine || b.found !== mine) throw new Error(`found ${a.found} / ${b.found} of ${mine}`);
  scoped.push(a.ms);
  tenantWide.push(b.ms);
  console.log(
    `run ${run}: conversation's events ${a.ms.toFixed(1)} ms (${a.pages} page), ` +
      `tenant log filtered ${b.ms.toFixed(1)} ms (${b.pages} pages)`,
  );
}
await sql.end();
await db.stop();
const metrics = {
  events: EVENTS,
  replay_ms: Math.round(median(scoped) * 10) / 10,
  tenant_scan_ms: Math.round(median(tenantWide) * 10) / 10,
  speedup: Math.round((median(tenantWide) / median(scoped)) * 10) / 10,
};
console.log(JSON.stringify({ bench: "event-replay", metrics }));
