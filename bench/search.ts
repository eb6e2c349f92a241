/**
 * Conversation search benchmark: the conversation list (`listConversations`, what the
 * GraphQL `conversations` field runs) over a large tenant, with and without filters.
 *
 * Seeds two tenants of `--conversations N` conversations (default 20,000) with
 * `--messages M` messages each on average (default 3), bodies of 100–600 words drawn
 * log-uniformly from a 5,000-word vocabulary (a few words very common, most rare), and a
 * rare word in three messages of the measured tenant. Then it measures
 *   - the search indexer: queued messages indexed per second (engine/search.ts);
 *   - each query's wall time, median of `--runs` (default 5): the first page unfiltered
 *     (the baseline in the same process), by status, tag and contact, and by text — a
 *     common word, a rare word, two words, a word nowhere;
 *   - the rare-word search with `--pending P` (default 500) of the tenant's messages queued
 *     again, i.e. built at query time as while the indexer catches up after a burst;
 *   - the search as it was before the index (a document built per message at query time),
 *     once, on at most `--legacy-max N` conversations' worth of messages (default 2,000 —
 *     it grows linearly and takes seconds per thousand conversations).
 *
 * Run: npm run bench -- search [--conversations N]. Human lines, then one JSON line.
 */
import { performance } from "node:perf_hooks";
import { connect } from "../src/db/client.js";
import { createTenantWithAdmin } from "../src/engine/auth.js";
import type { EngineContext } from "../src/engine/context.js";
import { type ConversationFilter, listConversations } from "../src/engine/conversations.js";
import { indexQueuedMessages } from "../src/engine/search.js";
import type { Viewer } from "../src/engine/viewer.js";
import { benchDatabase, intArg } from "./bench-db.js";

const CONVERSATIONS = intArg("conversations", 20_000);
const MESSAGES = intArg("messages", 3);
const RUNS = intArg("runs", 5);
const PENDING = intArg("pending", 500);
const LEGACY_MAX = intArg("legacy-max", 2_000);

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] ?? 0;
const round = (x: number, d = 2) => Math.round(x * 10 ** d) / 10 ** d;

const bench = await benchDatabase("search");
const database = connect(bench.url, { max: 4 });
const { db, sql } = database;
const ctx = { db } as EngineContext;

/** One tenant's conversations and messages, all in SQL. */
async function seed(tenantId: string, rare: boolean): Promise<{ contactId: string }> {
  await sql`
    INSERT INTO contact (tenant_id, email)
    SELECT ${tenantId}, 'customer' || g || '@bench.test' FROM generate_series(1, 1000) g`;
  const contacts = (await sql<{ id: string }[]>`SELECT id FROM contact WHERE tenant_id = ${tenantId}`).map(
    (r) => r.id,
  );
  await sql`
    INSERT INTO conversation (tenant_id, ticket_number, subject, status, contact_id, tags,
                              received_at, last_activity_at, status_changed_at)
    SELECT ${tenantId}, g, 'Question about order ' || g,
           (ARRAY['NEW','ACTIVE','ACTIVE','PAUSED','CLOSED','CLOSED','CLOSED','CLOSED'])[1 + g % 8],
           (${contacts}::uuid[])[1 + g % 1000],
           CASE WHEN g % 50 = 0 THEN ARRAY['vip'] ELSE '{}'::text[] END,
           now() - (g || ' minutes')::interval, now() - (g || ' minutes')::interval, now()
      FROM generate_series(1, ${CONVERSATIONS}) g`;
  // Message bodies: 100–600 words, word i of the vocabulary with probability ~ 1/i.
  await sql`
    INSERT INTO message (tenant_id, conversation_id, direction, subject, text, received_at, size_bytes)
    SELECT c.tenant_id, c.id, CASE WHEN k % 2 = 1 THEN 'INBOUND' ELSE 'OUTBOUND' END, c.subject,
           (SELECT string_agg('lex' || floor(exp(random() * ln(5000)))::int, ' ')
              FROM generate_series(1, 100 + (random() * 500)::int + k * 0)),
           c.received_at + (k || ' minutes')::interval, 0
      FROM conversation c, generate_series(1, ${MESSAGES}) k
     WHERE c.tenant_id = ${tenantId}`;
  if (rare) {
    await sql`
      UPDATE message SET text = text || ' zebracorn'
       WHERE id IN (SELECT id FROM message WHERE tenant_id = ${tenantId} ORDER BY random() LIMIT 3)`;
  }
  return { contactId: contacts[1]! };
}

const a = await createTenantWithAdmin(db, { tenantName: "Search A", adminEmail: "a@bench.test" });
const b = await createTenantWithAdmin(db, { tenantName: "Search B", adminEmail: "b@bench.test" });
console.log(`seeding 2 tenants × ${CONVERSATIONS} conversations × ${MESSAGES} messages…`);
let t0 = performance.now();
const { contactId } = await seed(a.tenantId, true);
await seed(b.tenantId, false);
const [{ n: messages } = { n: 0 }] = await sql<{ n: number }[]>`SELECT count(*)::int AS n FROM message`;
const [{ kb } = { kb: 0 }] = await sql<
  { kb: number }[]
>`SELECT avg(length(text))::int / 1024.0 AS kb FROM message`;
console.log(
  `seeded ${messages} messages (avg ${round(Number(kb), 1)} KB of text) in ${round((performance.now() - t0) / 1000, 1)} s`,
);

// The indexer, as the app runs it but without pauses: how fast the queue drains.
t0 = performance.now();
let indexed = 0;
for (;;) {
  const n = await indexQueuedMessages(db, 200);
  if (n === 0) break;
  indexed += n;
}
const indexSeconds = (performance.now() - t0) / 1000;
const indexRate = indexed / indexSeconds;
console.log(`indexed ${indexed} messages in ${round(indexSeconds, 1)} s: ${round(indexRate, 0)} msgs/s`);
await sql`ANALYZE`;

const viewer: Viewer = {
  tenantId: a.tenantId,
  userId: a.userId,
  role: "ADMIN",
  permissions: new Set(),
  queueIds: null,
};
async function time(filter: ConversationFilter, runs = RUNS): Promise<{ ms: number; rows: number }> {
  const samples: number[] = [];
  let rows = 0;
  for (let i = 0; i < runs + 1; i++) {
    const s = performance.now();
    rows = (await listConversations(ctx, viewer, filter, { first: 50, after: null })).length;
    if (i > 0) samples.push(performance.now() - s); // the first run prepares the statement
  }
  return { ms: round(median(samples)), rows };
}

const cases: [string, ConversationFilter][] = [
  ["unfiltered", {}],
  ["status_active", { statuses: ["ACTIVE"] }],
  ["tag_vip", { tags: ["vip"] }],
  ["contact", { contactId }],
  ["text_common", { text: "lex1" }],
  ["text_two_words", { text: "lex2 lex40" }],
  ["text_rare", { text: "zebracorn" }],
  ["text_nowhere", { text: "nothingmatchesthis" }],
  // Subjects are "Question about order <n>": part of a word, in 11 subjects / in all of them.
  ["subject_part", { text: "rder 1234" }],
  ["subject_everywhere", { text: "bout ord" }],
];
const metrics: Record<string, number> = {
  conversations: CONVERSATIONS,
  messages,
  index_msgs_per_s: round(indexRate, 0),
};
for (const [name, filter] of cases) {
  const r = await time(filter);
  metrics[`${name}_ms`] = r.ms;
  console.log(`${name.padEnd(16)} ${String(r.ms).padStart(9)} ms  (${r.rows} rows)`);
}
const base = metrics.unfiltered_ms!;
for (const [name] of cases.slice(1))
  metrics[`${name}_per_unfiltered`] = round(metrics[`${name}_ms`]! / base, 1);

// Searching while the indexer is behind: PENDING of the tenant's messages queued again.
await sql`
  INSERT INTO message_search_queue (message_id, tenant_id)
  SELECT id, tenant_id FROM message WHERE tenant_id = ${a.tenantId} ORDER BY random() LIMIT ${PENDING}`;
const pending = await time({ text: "zebracorn" });
metrics.text_rare_pending_ms = pending.ms;
metrics.pending = PENDING;
console.log(`text_rare with ${PENDING} queued: ${pending.ms} ms (${pending.rows} rows)`);
await sql`DELETE FROM message_search_queue`;

// The search before the index, on a slice of the tenant (it is linear in the messages read).
const legacyConversations = Math.min(LEGACY_MAX, CONVERSATIONS);
await sql`SET statement_timeout = '300s'`;
const s = performance.now();
const legacy = await sql`
  SELECT c.id FROM conversation c
   WHERE c.tenant_id = ${a.tenantId} AND c.ticket_number <= ${legacyConversations}
     AND (c.subject ILIKE '%zebracorn%' OR EXISTS (SELECT 1 FROM message m WHERE m.conversation_id = c.id
          AND to_tsvector('simple', m.subject || ' ' || m.text) @@ plainto_tsquery('simple', 'zebracorn')))
   ORDER BY c.last_activity_at DESC, c.id DESC LIMIT 51`;
const legacyMs = performance.now() - s;
metrics.legacy_conversations = legacyConversations;
metrics.legacy_text_rare_ms = round(legacyMs, 0);
metrics.legacy_ms_per_1000_conversations = round((legacyMs / legacyConversations) * 1000, 0);
console.log(
  `before the index (documents built per message): ${round(legacyMs, 0)} ms over ${legacyConversations} conversations (${legacy.length} rows)`,
);

await database.close();
await bench.stop();
console.log(JSON.stringify({ bench: "search", metrics }));
