import { sql } from "drizzle-orm";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { IngestResult } from "../../src/engine/ingest/ingest.js";
import { encodeId } from "../../src/schema/ids.js";
import { startTestApp, type TestApp } from "../helpers/app.js";
import { createQueueWithAddress, createUserWithKey } from "../helpers/fixtures.js";
import { ingestRaw } from "../helpers/ingest.js";
import { buildRawMail, type RawMailSpec } from "../helpers/raw-mail.js";

// Where mail goes when no queue is there to take it: an address without a routing target,
// a rule's or the spam queue archived, a finished conversation whose queue was archived.
let t: TestApp;
let seq = 0;

beforeAll(async () => {
  t = await startTestApp();
});
afterAll(async () => {
  await t?.stop();
});

async function ingest(addressId: string, spec: RawMailSpec = {}): Promise<IngestResult> {
  seq += 1;
  const raw = buildRawMail({
    subject: `Mail ${seq}`,
    messageId: `unrouted-${seq}@customer.example`,
    ...spec,
  });
  return ingestRaw(t.app.engine, { tenantId: t.tenantId, addressId }, raw, {
    source: { kind: "api", userId: t.adminId },
  });
}

function stored(r: IngestResult): { conversationId: string; queueId: string | null } {
  if (r.status !== "stored") throw new Error(`not stored: ${JSON.stringify(r)}`);
  return r;
}

async function conv(id: string) {
  const [c] = await t.db.db.execute<{
    queue_id: string | null;
    work_state: string;
    status: string;
    tags: string[];
  }>(sql`SELECT queue_id, work_state, status, tags FROM conversation WHERE id = ${id}`);
  return c!;
}

async function events(conversationId: string, type: string) {
  return t.db.db.execute<{ queue_id: string | null; payload: Record<string, unknown> }>(
    sql`SELECT queue_id, payload FROM event WHERE conversation_id = ${conversationId} AND type = ${type} ORDER BY id`,
  );
}

/** Archives a queue the way archiveQueue does, past its in-use guard (the state a race leaves). */
async function archive(queueId: string) {
  await t.db.db.execute(sql`UPDATE queue SET archived_at = now() WHERE id = ${queueId}`);
}

async function finish(conversationId: string) {
  await t.db.db.execute(sql`UPDATE conversation SET status = 'CLOSED', work_state = 'DONE', closed_at = now(),
    assignee_id = NULL, offered_to_id = NULL WHERE id = ${conversationId}`);
}

const LIST = `query($f: ConversationFilter) { conversations(first: 100, filter: $f) { edges { node { id } } } }`;
const listed = async (f: Record<string, unknown>, key?: string) =>
  (await t.ok(LIST, { f }, key)).conversations.edges.map((e: any) => e.node.id as string);

describe("mail no queue takes", () => {
  it("waits outside every queue with a conversation.unrouted event, listed by the unrouted filter, and a reply after the address is routed joins its queue", async () => {
    const addr = await createQueueWithAddress(t.db.db, t.tenantId, { addressFields: { queueId: null } });
    const r = stored(await ingest(addr.addressId, { messageId: "first-unrouted@customer.example" }));
    expect(r.queueId).toBeNull();
    expect(await conv(r.conversationId)).toMatchObject({ queue_id: null, work_state: "WAITING" });
    expect(await events(r.conversationId, "conversation.queued")).toHaveLength(0);
    const [ev] = await events(r.conversationId, "conversation.unrouted");
    expect(ev!.payload).toEqual({ reason: "no_routing_target" });

    const gid = encodeId("Conversation", r.conversationId);
    expect(await listed({ unrouted: true })).toContain(gid);
    expect(await listed({ unrouted: false })).not.toContain(gid);
    // An agent sees no conversation outside its queues.
    const agent = await createUserWithKey(t.db.db, t.tenantId, "AGENT");
    expect(await listed({ unrouted: true }, agent.key)).toEqual([]);

    // The admin gives the address a routing target; the customer writes again.
    await t.db.db.execute(
      sql`UPDATE email_address SET queue_id = ${addr.queueId} WHERE id = ${addr.addressId}`,
    );
    const reply = stored(
      await ingest(addr.addressId, { headers: { "In-Reply-To": "<first-unrouted@customer.example>" } }),
    );
    expect(reply.conversationId).toBe(r.conversationId);
    expect(reply.queueId).toBe(addr.queueId);
    expect(await conv(r.conversationId)).toMatchObject({ queue_id: addr.queueId, work_state: "WAITING" });
    const [queued] = await events(r.conversationId, "conversation.queued");
    expect(queued).toMatchObject({
      queue_id: addr.queueId,
      payload: { reason: "customer-reply", previousQueueId: null, previousQueue: "none" },
    });
    expect(await listed({ unrouted: true })).not.toContain(gid);
  });

  it("a rule's archived queue: the address's own queue takes the mail, and the event names the queue asked for", async () => {
    const addr = await createQueueWithAddress(t.db.db, t.tenantId);
    const target = await createQueueWithAddress(t.db.db, t.tenantId);
    const rule = await t.ok(
      `mutation($input: CreateRuleInput!) { createRule(input: $input) { __typename ... on Rule { id } } }`,
      {
        input: {
          addressId: encodeId("EmailAddress", addr.addressId),
          name: "To billing",
          conditions: [],
          actions: [{ type: "SET_QUEUE", queueId: encodeId("Queue", target.queueId) }],
        },
      },
    );
    expect(rule.createRule.__typename).toBe("Rule");
    expect(stored(await ingest(addr.addressId)).queueId).toBe(target.queueId);

    await archive(target.queueId);
    const r = stored(await ingest(addr.addressId));
    expect(r.queueId).toBe(addr.queueId);
    const [queued] = await events(r.conversationId, "conversation.queued");
    expect(queued).toMatchObject({
      queue_id: addr.queueId,
      payload: { reason: "new", requestedQueueId: target.queueId, requestedQueue: "archived" },
    });
    expect(await events(r.conversationId, "conversation.unrouted")).toHaveLength(0);
  });

  it("an archived spam queue: spam goes to the address's queue, still tagged", async () => {
    const spamQ = await createQueueWithAddress(t.db.db, t.tenantId);
    const addr = await createQueueWithAddress(t.db.db, t.tenantId, {
      addressFields: { spamRouting: "QUEUE", spamQueueId: spamQ.queueId },
    });
    const spam = { headers: { "X-Spam-Flag": "YES" } };
    expect(stored(await ingest(addr.addressId, spam)).queueId).toBe(spamQ.queueId);
    await archive(spamQ.queueId);
    const r = stored(await ingest(addr.addressId, spam));
    expect(r.queueId).toBe(addr.queueId);
    expect((await conv(r.conversationId)).tags).toContain("spam");
  });

  it("the address's own queue archived (a race with archiveQueue's guard): unrouted, with the queue it was meant for", async () => {
    const addr = await createQueueWithAddress(t.db.db, t.tenantId);
    await archive(addr.queueId);
    const r = stored(await ingest(addr.addressId));
    expect(r.queueId).toBeNull();
    const [ev] = await events(r.conversationId, "conversation.unrouted");
    expect(ev!.payload).toEqual({ reason: "queue_archived", requestedQueueId: addr.queueId });
  });

  it("a reply to finished work whose queue was archived goes to the address's queue, not back to the archived one", async () => {
    const old = await createQueueWithAddress(t.db.db, t.tenantId);
    const first = stored(await ingest(old.addressId, { messageId: "before-archive@customer.example" }));
    expect(first.queueId).toBe(old.queueId);
    await finish(first.conversationId);
    // The admin moves the address to a new queue and archives the old one (allowed: nothing waits in it).
    const next = await createQueueWithAddress(t.db.db, t.tenantId);
    await t.db.db.execute(
      sql`UPDATE email_address SET queue_id = ${next.queueId} WHERE id = ${old.addressId}`,
    );
    const archived = await t.gql(`mutation($id: ID!) { archiveQueue(id: $id) { __typename } }`, {
      id: encodeId("Queue", old.queueId),
    });
    expect(archived.data?.archiveQueue).toEqual({ __typename: "Queue" });

    const reply = stored(
      await ingest(old.addressId, { headers: { "In-Reply-To": "<before-archive@customer.example>" } }),
    );
    expect(reply.conversationId).toBe(first.conversationId);
    expect(reply.queueId).toBe(next.queueId);
    expect(await conv(first.conversationId)).toMatchObject({ queue_id: next.queueId, work_state: "WAITING" });
    const queued = await events(first.conversationId, "conversation.queued");
    expect(queued.at(-1)).toMatchObject({
      queue_id: next.queueId,
      payload: { reason: "customer-reply", previousQueueId: old.queueId, previousQueue: "archived" },
    });

    // Finished again, and the new queue archived too with nothing else to take it: unrouted.
    await finish(first.conversationId);
    await t.db.db.execute(sql`UPDATE email_address SET queue_id = NULL WHERE id = ${old.addressId}`);
    await archive(next.queueId);
    const again = stored(
      await ingest(old.addressId, { headers: { "In-Reply-To": "<before-archive@customer.example>" } }),
    );
    expect(again.queueId).toBeNull();
    const [ev] = await events(first.conversationId, "conversation.unrouted");
    expect(ev!.payload).toEqual({ reason: "queue_archived", requestedQueueId: next.queueId });
  });
});
