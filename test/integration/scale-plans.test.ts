/**
 * Statements whose cost grew with a tenant's history (the scale probe of session 17: a
 * tenant of 100k conversations and 510k messages beside a small one). Each is run here as
 * the product runs it, over a tenant whose finished work far outweighs its open work, and
 * its plan (EXPLAIN of the very statement and parameters sent, captured from the driver)
 * must find its rows by index, not by reading the tenant's — or every tenant's — history:
 * - the routing pass's open work per agent (50× slower at that size: finished work keeps
 *   its owner, and the assignee index held all of it);
 * - the queue figures' load per member (a scan of every tenant's conversations per member,
 *   written as coalesce(assignee, offered_to)) and the queue's unfinished work;
 * - the routing sweep's overdue offers (every 30 s, across tenants);
 * - a deep page of the conversation list (every row before the cursor read and dropped);
 * - retention's delete of raw messages (the foreign keys' ON DELETE SET NULL had no index:
 *   each deleted raw row read every message of every tenant, 190× slower purges).
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { rawClient } from "../../src/db/client.js";
import { createTenantWithAdmin } from "../../src/engine/auth.js";
import { routeQueueOnce } from "../../src/engine/routing/service.js";
import { sweepRouting } from "../../src/engine/routing/sweep.js";
import { encodeId } from "../../src/schema/ids.js";
import { startTestApp, type TestApp } from "../helpers/app.js";
import { createQueueWithAddress, createUserWithKey } from "../helpers/fixtures.js";
import { ingestRaw } from "../helpers/ingest.js";
import { buildRawMail } from "../helpers/raw-mail.js";

let t: TestApp;
let queueId: string;
let addressId: string;
let narrowContact: string;
const sent: { query: string; params: readonly unknown[] }[] = [];
let recording = false;

const AGENTS = 10;
const FINISHED = 30_000;

beforeAll(async () => {
  t = await startTestApp({ onQuery: (query, params) => void (recording && sent.push({ query, params })) });
  ({ queueId, addressId } = await createQueueWithAddress(t.db.db, t.tenantId));
  const agents: string[] = [];
  for (let i = 0; i < AGENTS; i++) agents.push((await createUserWithKey(t.db.db, t.tenantId, "AGENT")).id);
  const sql = rawClient(t.db.db);
  await sql`INSERT INTO queue_member (tenant_id, queue_id, user_id)
            SELECT ${t.tenantId}, ${queueId}, u FROM unnest(${agents}::uuid[]) u`;
  await sql`UPDATE "user" SET presence = 'AVAILABLE', logged_in = true WHERE id = ANY(${agents}::uuid[])`;
  const [c] = await sql<{ id: string }[]>`
    INSERT INTO contact (tenant_id, email) VALUES (${t.tenantId}, 'history@customer.example') RETURNING id`;
  // A year of finished work, owned by the agents (finished work keeps its owner), and a
  // little open work: one waiting conversation, so that a routing pass reads the agents.
  await sql`
    INSERT INTO conversation (tenant_id, ticket_number, contact_id, queue_id, subject, status, work_state,
                              assignee_id, offered_to_id, received_at, last_activity_at, status_changed_at, closed_at)
    SELECT ${t.tenantId}, i, ${c!.id}, ${queueId}, 'old ' || i, 'CLOSED', 'DONE',
           (${agents}::uuid[])[1 + i % ${AGENTS}], (${agents}::uuid[])[1 + i % ${AGENTS}], now() - interval '400 days' + i * interval '1 minute',
           now() - interval '400 days' + i * interval '1 minute', now() - interval '300 days',
           now() - interval '300 days'
      FROM generate_series(1, ${FINISHED}) i`;
  await sql`
    INSERT INTO conversation (tenant_id, ticket_number, contact_id, queue_id, subject, work_state, enqueued_at,
                              received_at, last_activity_at, status_changed_at)
    VALUES (${t.tenantId}, ${FINISHED + 1}, ${c!.id}, ${queueId}, 'new', 'WAITING', now(), now(), now(), now())`;
  // Messages with their raw bytes, for retention's delete.
  await sql`
    WITH raw AS (
      INSERT INTO raw_message (tenant_id, sha256, size_bytes, data)
      SELECT ${t.tenantId}, md5(i::text), 3, '\\x616263'::bytea FROM generate_series(1, 20000) i RETURNING id)
    INSERT INTO message (tenant_id, conversation_id, direction, received_at, raw_message_id)
    SELECT ${t.tenantId}, (SELECT id FROM conversation WHERE ticket_number = 1 AND tenant_id = ${t.tenantId}),
           'INBOUND', now(), raw.id FROM raw`;
  await sql`
    INSERT INTO rejected_message (tenant_id, reason, size_bytes, received_at, raw_message_id)
    SELECT ${t.tenantId}, 'spam_dropped', 3, now(), id FROM raw_message WHERE tenant_id = ${t.tenantId} LIMIT 5000`;
  // A neighbour tenant whose 20,000 messages all have the word searched for; ours has one.
  const other = await createTenantWithAdmin(t.db.db, {
    tenantName: "Neighbour",
    adminEmail: "a@neighbour.test",
  });
  await sql`
    WITH c AS (INSERT INTO contact (tenant_id, email) VALUES (${other.tenantId}, 'n@customer.example') RETURNING id),
    v AS (INSERT INTO conversation (tenant_id, ticket_number, contact_id, received_at, last_activity_at, status_changed_at)
          SELECT ${other.tenantId}, 1, c.id, now(), now(), now() FROM c RETURNING id),
    m AS (INSERT INTO message (tenant_id, conversation_id, direction, received_at)
          SELECT ${other.tenantId}, v.id, 'INBOUND', now() FROM v, generate_series(1, 20000) RETURNING id, conversation_id)
    INSERT INTO message_search (message_id, tenant_id, conversation_id, document)
    SELECT m.id, ${other.tenantId}, m.conversation_id, to_tsvector('simple', 'order widget') FROM m`;
  await sql`
    WITH m AS (INSERT INTO message (tenant_id, conversation_id, direction, received_at)
               SELECT ${t.tenantId}, id, 'INBOUND', now() FROM conversation
                WHERE tenant_id = ${t.tenantId} AND work_state = 'WAITING' RETURNING id, conversation_id)
    INSERT INTO message_search (message_id, tenant_id, conversation_id, document)
    SELECT m.id, ${t.tenantId}, m.conversation_id, to_tsvector('simple', 'my order') FROM m`;
  // A word in 1,500 of our conversations (more than the search's capped read), ten of them a
  // second customer's.
  await sql`
    WITH m AS (INSERT INTO message (tenant_id, conversation_id, direction, received_at)
               SELECT ${t.tenantId}, id, 'INBOUND', now() FROM conversation
                WHERE tenant_id = ${t.tenantId} AND ticket_number BETWEEN 2 AND 1501 RETURNING id, conversation_id)
    INSERT INTO message_search (message_id, tenant_id, conversation_id, document)
    SELECT m.id, ${t.tenantId}, m.conversation_id, to_tsvector('simple', 'invoice attached') FROM m`;
  const [narrow] = await sql<{ id: string }[]>`
    INSERT INTO contact (tenant_id, email) VALUES (${t.tenantId}, 'narrow@customer.example') RETURNING id`;
  narrowContact = narrow!.id;
  await sql`UPDATE conversation SET contact_id = ${narrowContact}
             WHERE tenant_id = ${t.tenantId} AND ticket_number BETWEEN 2 AND 11`;
  await sql`ANALYZE message_search`;
  await sql`ANALYZE conversation`;
  await sql`ANALYZE message`;
  await sql`ANALYZE rejected_message`;
}, 120_000);
afterAll(async () => {
  await t?.stop();
});

interface PlanNode {
  "Node Type": string;
  "Relation Name"?: string;
  "Index Name"?: string;
  "Index Cond"?: string;
  "Actual Loops"?: number;
  Plans?: PlanNode[];
}

function nodes(plan: PlanNode): PlanNode[] {
  return [plan, ...(plan.Plans ?? []).flatMap(nodes)];
}

async function planOf(query: string, params: readonly unknown[]): Promise<PlanNode[]> {
  const [row] = await t.db.sql.unsafe(`EXPLAIN (FORMAT JSON) ${query}`, params as never[]);
  return nodes((row!["QUERY PLAN"] as { Plan: PlanNode }[])[0]!.Plan);
}

/** The statements `run` sends that read `table`, with their plans. */
async function plansOf(table: string, run: () => Promise<unknown>) {
  sent.length = 0;
  recording = true;
  try {
    await run();
  } finally {
    recording = false;
  }
  const reading = sent.filter(
    (s) =>
      new RegExp(`\\b(FROM|JOIN)\\s+"?${table}"?\\b`, "i").test(s.query) &&
      /^\s*\(?\s*(WITH|SELECT)/i.test(s.query),
  );
  expect(reading.length).toBeGreaterThan(0);
  return Promise.all(reading.map(async (s) => ({ query: s.query, plan: await planOf(s.query, s.params) })));
}

/** Indexes that hold finished work too (an agent's or a queue's whole history). */
const historyIndexes = (plan: PlanNode[]) =>
  plan
    .map((n) => n["Index Name"])
    .filter((i) => i === "conversation_assignee_idx" || i === "conversation_offered_to_idx");

const seqScansOf = (plan: PlanNode[], table: string) =>
  plan.filter((n) => n["Node Type"] === "Seq Scan" && n["Relation Name"] === table);

describe("plans that do not grow with the tenant's history", () => {
  it("a routing pass reads each agent's open work, not its history", async () => {
    const plans = await plansOf("conversation", () => routeQueueOnce(t.app.engine, t.tenantId, queueId));
    const agents = plans.filter((p) => p.query.includes("agent_skill"));
    expect(agents).toHaveLength(1);
    for (const p of plans) {
      expect(seqScansOf(p.plan, "conversation")).toEqual([]);
      expect(historyIndexes(p.plan)).toEqual([]);
    }
  });

  it("the queue figures read the members' open work and the queue's unfinished work", async () => {
    const plans = await plansOf("conversation", async () => {
      const r = await t.ok(
        `query($q: ID!) { queueStats(queueId: $q) { ... on QueueStats { waiting agentsAvailable } } }`,
        {
          q: encodeId("Queue", queueId),
        },
      );
      expect(r.queueStats.agentsAvailable).toBeGreaterThanOrEqual(0);
    });
    for (const p of plans) {
      expect(seqScansOf(p.plan, "conversation")).toEqual([]);
      expect(historyIndexes(p.plan)).toEqual([]);
    }
  });

  it("the routing sweep finds overdue offers without reading every conversation", async () => {
    const plans = await plansOf("conversation", () => sweepRouting(t.app.engine));
    for (const p of plans) expect(seqScansOf(p.plan, "conversation")).toEqual([]);
  });

  it("a deep page of the conversation list starts at its cursor", async () => {
    const Q = `query($after: String) { conversations(first: 20, after: $after) {
      edges { node { id } } pageInfo { endCursor } } }`;
    let after: string | null = null;
    // Far in: the cursor of the 20th row of the first page is enough to show the bound.
    after = (await t.ok(Q, { after })).conversations.pageInfo.endCursor;
    const plans = await plansOf("conversation", () => t.ok(Q, { after }));
    const list = plans.filter((p) => /ORDER BY/i.test(p.query) && /last_activity_at/.test(p.query));
    expect(list.length).toBeGreaterThan(0);
    for (const p of list) {
      const scans = p.plan.filter((n) => n["Relation Name"] === "conversation");
      expect(scans.map((n) => n["Node Type"])).not.toContain("Seq Scan");
      const [row] = await t.db.sql.unsafe(
        `EXPLAIN (FORMAT JSON) ${p.query}`,
        sent.find((s) => s.query === p.query)!.params as never[],
      );
      const text = JSON.stringify(row);
      // The cursor bounds the index range: an Index Cond on last_activity_at, not a filter.
      expect(text).toMatch(/"Index Cond":"[^"]*last_activity_at <=/);
    }
  });

  // At this size reading the table is cheap and the planner rightly does; what matters is
  // that the index can narrow to the tenant at all (before: its key was the document alone,
  // and the tenant a filter on every tenant's matching rows).
  it("a search can read the tenant's documents only: the tenant is a key of the text index", async () => {
    const plans = await plansOf("message_search", async () => {
      const r = await t.ok(
        `{ conversations(first: 20, filter: { text: "order" }) { edges { node { subject } } } }`,
      );
      expect(r.conversations.edges.map((e: { node: { subject: string } }) => e.node.subject)).toEqual([
        "new",
      ]);
    });
    const indexed = plans.filter((p) => /FROM message_search s\s+WHERE s.tenant_id/.test(p.query));
    expect(indexed).toHaveLength(1);
    const sql = await t.db.sql.reserve();
    try {
      await sql`SET enable_seqscan = off`;
      const { query } = indexed[0]!;
      const [row] = await sql.unsafe(
        `EXPLAIN (FORMAT JSON) ${query}`,
        sent.find((s) => s.query === query)!.params as never[],
      );
      const plan = nodes((row!["QUERY PLAN"] as { Plan: PlanNode }[])[0]!.Plan);
      const scan = plan.find((n) => n["Index Name"] === "message_search_document_idx");
      expect(scan?.["Index Cond"]).toMatch(/tenant_id = /);
    } finally {
      sql.release();
    }
  });

  // A common word within a narrow filter (one customer's conversations): the newest
  // conversations passing the filter were probed, fewer than a page matched, and the list
  // went on to compare each of them against every match in the tenant (477-813 ms for one
  // contact in a tenant of 510k messages). The probe saw them all: its matches are all.
  it("a common word within one customer's conversations is answered from the probe", async () => {
    const plans = await plansOf("message_search", async () => {
      const r = await t.ok(
        `query($c: ID!) { conversations(first: 20, filter: { text: "invoice", contactId: $c }) {
          edges { node { ticketNumber } } } }`,
        { c: encodeId("Contact", narrowContact) },
      );
      expect(
        r.conversations.edges.map((e: { node: { ticketNumber: number } }) => e.node.ticketNumber),
      ).toEqual(Array.from({ length: 10 }, (_, i) => 11 - i));
    });
    // Every read of the tenant's matches is capped; none reads them all.
    for (const p of plans.filter((p) => /FROM message_search s\s+WHERE s.tenant_id/.test(p.query))) {
      expect(p.query).toMatch(/LIMIT \$\d+\)\s*$/);
    }
  });

  // Threading's membership rule read every message of each candidate conversation for its
  // participants: 56-106 ms for a reply into a conversation of 10,000 messages. The
  // customer's own reply (the sender is the conversation's contact) needs none of it.
  it("a customer's reply into a long conversation does not read its messages for the membership rule", async () => {
    const plans = await plansOf("message", async () => {
      const r = await ingestRaw(
        t.app.engine,
        { tenantId: t.tenantId, addressId },
        buildRawMail({
          from: "history@customer.example",
          subject: "Re: old 1 [#1]",
          messageId: "long-reply@customer.example",
        }),
      );
      expect(r.status).toBe("stored");
    });
    const members = plans.filter((p) => p.query.includes("jsonb_array_elements(m.to)"));
    expect(members).toHaveLength(1);
    const { query } = members[0]!;
    const [row] = await t.db.sql.unsafe(
      `EXPLAIN (ANALYZE, FORMAT JSON) ${query}`,
      sent.find((s) => s.query === query)!.params as never[],
    );
    const plan = nodes((row!["QUERY PLAN"] as { Plan: PlanNode }[])[0]!.Plan);
    const reads = plan.filter((n) => n["Relation Name"] === "message");
    expect(reads.length).toBeGreaterThan(0);
    for (const n of reads) expect(n["Actual Loops"]).toBe(0);
  });

  it("deleting a raw message finds the rows that point at it by index (the foreign keys' SET NULL)", async () => {
    // The statement PostgreSQL's ON DELETE SET NULL runs, as a generic plan (it is cached).
    const sql = await t.db.sql.reserve();
    try {
      await sql`SET plan_cache_mode = force_generic_plan`;
      for (const table of ["message", "rejected_message"]) {
        await sql.unsafe(
          `PREPARE fk_${table} (uuid) AS UPDATE ONLY "public"."${table}" SET "raw_message_id" = NULL WHERE $1 OPERATOR(pg_catalog.=) "raw_message_id"`,
        );
        const [row] = await sql.unsafe(
          `EXPLAIN (FORMAT JSON) EXECUTE fk_${table}('00000000-0000-4000-8000-000000000000')`,
        );
        const plan = nodes((row!["QUERY PLAN"] as { Plan: PlanNode }[])[0]!.Plan);
        expect(seqScansOf(plan, table)).toEqual([]);
        expect(plan.map((n) => n["Index Name"])).toContain(`${table}_raw_message_idx`);
      }
    } finally {
      sql.release();
    }
  });
});
