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

// An admin retiring a queue (route the address elsewhere, then archiveQueue) while a mail
// for it is in its ingest transaction (config probe, session 17). The ingest read the queue
// as live without a lock: the archive went through, and the mail was committed WAITING into
// the archived queue, where routing never offers it. The ingest's transaction is held here
// on the customer's contact row, after it has read the address's queues.
describe("archiveQueue racing an ingest", () => {
  const ARCHIVE = `mutation($id: ID!) { archiveQueue(id: $id) {
    __typename ... on ConflictError { code message } } }`;

  async function waiters(): Promise<number> {
    const [r] = await t.db.db.execute<{ n: number }>(sql`SELECT count(*)::int AS n FROM pg_stat_activity
      WHERE wait_event_type = 'Lock' AND datname = current_database()`);
    return r!.n;
  }

  async function until(what: string, ok: () => Promise<boolean>, done?: Promise<unknown>) {
    let finished = false;
    void done?.then(() => (finished = true));
    for (let i = 0; i < 500 && !finished; i++) {
      if (await ok()) return;
      await new Promise((r) => setTimeout(r, 10));
    }
    if (!finished) throw new Error(`timed out waiting for ${what}`);
  }

  it.each([
    ["a new mail", false],
    ["a customer's reply to finished work", true],
  ])(
    "%s: the archive waits for it and is refused; the conversation waits in the live queue",
    async (_l, reply) => {
      const old = await createQueueWithAddress(t.db.db, t.tenantId);
      const next = await createQueueWithAddress(t.db.db, t.tenantId);
      const from = `retire-${seq}@customer.example`;
      const firstId = `retire-${seq}@customer.example`;
      const first = stored(await ingest(old.addressId, { from, messageId: firstId }));
      await finish(first.conversationId);
      const holder = await t.db.sql.reserve();
      try {
        await holder`BEGIN`;
        await holder`SELECT 1 FROM contact WHERE email = ${from} FOR UPDATE`;
        const ingesting = ingest(old.addressId, {
          from,
          ...(reply ? { headers: { "In-Reply-To": `<${firstId}>` } } : {}),
        });
        await until("the ingest to wait on the contact row", async () => (await waiters()) >= 1);
        const moved = await t.ok(
          `mutation($id: ID!, $q: ID!) { updateEmailAddress(id: $id, input: { queueId: $q }) { __typename } }`,
          { id: encodeId("EmailAddress", old.addressId), q: encodeId("Queue", next.queueId) },
        );
        expect(moved.updateEmailAddress.__typename).toBe("EmailAddress");
        const archiving = t.ok(ARCHIVE, { id: encodeId("Queue", old.queueId) });
        // Waits on the queue row the ingest holds (before the fix it did not wait: it archived).
        await until("the archive to wait", async () => (await waiters()) >= 2, archiving);
        await holder`COMMIT`;
        const r = stored(await ingesting);
        const archived = await archiving;
        expect(archived.archiveQueue).toMatchObject({ __typename: "ConflictError", code: "QUEUE_IN_USE" });
        expect(archived.archiveQueue.message).toContain("1 conversation(s) are waiting in it");
        expect(r.queueId).toBe(old.queueId);
        // The reply joined its conversation (put back in its queue); the new mail opened one.
        expect(r.conversationId === first.conversationId).toBe(reply);
        expect(await conv(r.conversationId)).toMatchObject({ queue_id: old.queueId, work_state: "WAITING" });
        const [q] = await t.db.db.execute<{ archived_at: Date | null }>(
          sql`SELECT archived_at FROM queue WHERE id = ${old.queueId}`,
        );
        expect(q!.archived_at).toBeNull();
      } finally {
        holder.release();
      }
    },
  );

  // Re-probe of the above: archive refused only while work was WAITING, so an offer
  // rejected, an offer expired or work returned by its agent went back to WAITING in the
  // archived queue; a transfer read its target as live without a lock; and a finished
  // conversation reopened by an agent went back WAITING into its archived queue.
  it.each(["OFFERED", "ACTIVE", "PARKED"])(
    "refuses while conversations in the queue are %s",
    async (state) => {
      const q = await createQueueWithAddress(t.db.db, t.tenantId);
      const agent = await createUserWithKey(t.db.db, t.tenantId, "AGENT");
      const r = stored(await ingest(q.addressId));
      await t.db.db.execute(sql`UPDATE email_address SET queue_id = NULL WHERE id = ${q.addressId}`);
      await t.db.db.execute(
        state === "OFFERED"
          ? sql`UPDATE conversation SET work_state = 'OFFERED', offered_to_id = ${agent.id},
                offer_expires_at = now() + interval '1 hour' WHERE id = ${r.conversationId}`
          : sql`UPDATE conversation SET work_state = ${state}, assignee_id = ${agent.id} WHERE id = ${r.conversationId}`,
      );
      const archived = await t.ok(ARCHIVE, { id: encodeId("Queue", q.queueId) });
      expect(archived.archiveQueue).toMatchObject({ __typename: "ConflictError", code: "QUEUE_IN_USE" });
      expect(archived.archiveQueue.message).toContain(
        "1 conversation(s) in it are offered to or worked on by agents",
      );
    },
  );

  it("a transfer into a queue being archived waits for the archive and is refused", async () => {
    const from = await createQueueWithAddress(t.db.db, t.tenantId);
    const target = await createQueueWithAddress(t.db.db, t.tenantId, { addressFields: { queueId: null } });
    const r = stored(await ingest(from.addressId));
    const holder = await t.db.sql.reserve();
    try {
      // archiveQueue's own steps, with a pause between its lock and its count.
      await holder`BEGIN`;
      await holder`SELECT id FROM queue WHERE id = ${target.queueId} FOR UPDATE`;
      const transfer = t.ok(
        `mutation($id: ID!, $q: ID!) { transferConversation(conversationId: $id, queueId: $q) {
          __typename ... on NotFoundError { entity } } }`,
        { id: encodeId("Conversation", r.conversationId), q: encodeId("Queue", target.queueId) },
      );
      await until("the transfer to wait on the queue row", async () => (await waiters()) >= 1, transfer);
      const [use] = await holder<{ n: number }[]>`SELECT count(*)::int AS n FROM conversation
        WHERE queue_id = ${target.queueId} AND work_state <> 'DONE'`;
      expect(use!.n).toBe(0);
      await holder`UPDATE queue SET archived_at = now() WHERE id = ${target.queueId}`;
      await holder`COMMIT`;
      expect((await transfer).transferConversation).toEqual({ __typename: "NotFoundError", entity: "Queue" });
      expect(await conv(r.conversationId)).toMatchObject({ queue_id: from.queueId, work_state: "WAITING" });
    } finally {
      holder.release();
    }
  });

  it("a new outbound conversation into a queue being archived waits for the archive and is refused", async () => {
    const q = await createQueueWithAddress(t.db.db, t.tenantId);
    // A sending account (nothing is sent: the start is refused).
    await t.db.db.execute(sql`WITH a AS (
      INSERT INTO mail_account (tenant_id, name, kind, smtp_host, smtp_port, smtp_tls_mode)
      VALUES (${t.tenantId}, 'out', 'OUTBOUND_ONLY', '127.0.0.1', 1, 'NONE') RETURNING id)
      UPDATE email_address SET account_id = (SELECT id FROM a) WHERE id = ${q.addressId}`);
    const holder = await t.db.sql.reserve();
    try {
      // archiveQueue's own steps, with a pause between its lock and its count.
      await holder`BEGIN`;
      await holder`SELECT id FROM queue WHERE id = ${q.queueId} FOR UPDATE`;
      const starting = t.ok(
        `mutation($i: StartConversationInput!) { startConversation(input: $i) {
          __typename ... on NotFoundError { entity } } }`,
        {
          i: {
            fromAddressId: encodeId("EmailAddress", q.addressId),
            queueId: encodeId("Queue", q.queueId),
            subject: "Started while archived",
            text: "Hello",
            to: [{ address: "start@customer.example" }],
          },
        },
      );
      await until("the start to wait on the queue row", async () => (await waiters()) >= 1, starting);
      await holder`UPDATE queue SET archived_at = now() WHERE id = ${q.queueId}`;
      await holder`COMMIT`;
      expect((await starting).startConversation).toEqual({ __typename: "NotFoundError", entity: "Queue" });
      const [n] = await t.db.db.execute<{ n: number }>(
        sql`SELECT count(*)::int AS n FROM conversation WHERE queue_id = ${q.queueId}`,
      );
      expect(n!.n).toBe(0);
    } finally {
      holder.release();
    }
  });

  it("a finished conversation reopened after its queue was archived goes to its address's live queue", async () => {
    const q = await createQueueWithAddress(t.db.db, t.tenantId);
    const live = await createQueueWithAddress(t.db.db, t.tenantId, { addressFields: { queueId: null } });
    const r = stored(await ingest(q.addressId));
    await t.db.db.execute(sql`UPDATE conversation SET status = 'RESOLVED', work_state = 'DONE', resolved_at = now()
      WHERE id = ${r.conversationId}`);
    await t.db.db.execute(sql`UPDATE email_address SET queue_id = ${live.queueId} WHERE id = ${q.addressId}`);
    expect((await t.ok(ARCHIVE, { id: encodeId("Queue", q.queueId) })).archiveQueue.__typename).toBe("Queue");
    await t.ok(
      `mutation($id: ID!) { setConversationStatus(conversationId: $id, status: ACTIVE) { __typename } }`,
      {
        id: encodeId("Conversation", r.conversationId),
      },
    );
    expect(await conv(r.conversationId)).toMatchObject({ queue_id: live.queueId, work_state: "WAITING" });
    const queued = await events(r.conversationId, "conversation.queued");
    expect(queued.at(-1)).toMatchObject({
      queue_id: live.queueId,
      payload: { reason: "reopened", previousQueueId: q.queueId, previousQueue: "archived" },
    });
    expect(await events(r.conversationId, "conversation.unrouted")).toHaveLength(0);
  });

  it("a finished conversation reopened by an agent after its queue was archived with no live queue for its address waits unrouted", async () => {
    const q = await createQueueWithAddress(t.db.db, t.tenantId);
    const r = stored(await ingest(q.addressId));
    await t.db.db.execute(sql`UPDATE conversation SET status = 'RESOLVED', work_state = 'DONE', resolved_at = now()
      WHERE id = ${r.conversationId}`);
    await t.db.db.execute(sql`UPDATE email_address SET queue_id = NULL WHERE id = ${q.addressId}`);
    expect((await t.ok(ARCHIVE, { id: encodeId("Queue", q.queueId) })).archiveQueue.__typename).toBe("Queue");
    const reopened = await t.ok(
      `mutation($id: ID!) { setConversationStatus(conversationId: $id, status: ACTIVE) { __typename } }`,
      { id: encodeId("Conversation", r.conversationId) },
    );
    expect(reopened.setConversationStatus.__typename).toBe("Conversation");
    expect(await conv(r.conversationId)).toMatchObject({ queue_id: null, work_state: "WAITING" });
    const [ev] = await events(r.conversationId, "conversation.unrouted");
    expect(ev!.payload).toEqual({ reason: "queue_archived", requestedQueueId: q.queueId });
    expect(await listed({ unrouted: true })).toContain(encodeId("Conversation", r.conversationId));
  });
});
