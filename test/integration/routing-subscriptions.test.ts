import { eq, inArray } from "drizzle-orm";
import type { Client } from "graphql-ws";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { conversation, queue, slaPolicy } from "../../src/db/schema/index.js";
import { ManualClock, MINUTE } from "../../src/engine/clock.js";
import { appendEvents } from "../../src/engine/events.js";
import { ingestMessage } from "../../src/engine/ingest/ingest.js";
import { QUEUE_STATS_WINDOW_MS } from "../../src/engine/routing/stats.js";
import { runSlaCheck } from "../../src/engine/sla.js";
import { encodeId } from "../../src/schema/ids.js";
import { startTestApp, type TestApp } from "../helpers/app.js";
import { createQueueWithAddress, createUserWithKey } from "../helpers/fixtures.js";
import { buildRawMail } from "../helpers/raw-mail.js";
import { addConversation, route, routingSetup } from "./routing-helpers.js";

const clock = new ManualClock("2031-03-03T09:00:00Z");
let t: TestApp;
/** Conversation reads by id through the API (getConversation / conversationsByIds). */
let conversationReads = 0;

beforeAll(async () => {
  t = await startTestApp({
    clock,
    onQuery: (q) => {
      if (/from "conversation" where \("conversation"\."id" (=|in)/.test(q)) conversationReads++;
    },
  });
});
afterAll(async () => {
  await t?.stop();
});

interface Stream<T> {
  /** Resolves with the first `n` messages received (from the start of the stream). */
  take(n: number): Promise<T[]>;
  /** Resolves with every message so far once one satisfies `pred`. */
  until(pred: (m: T) => boolean): Promise<T[]>;
  /** Resolves once no message has arrived for `quietMs` (wall clock). */
  settled(quietMs: number): Promise<void>;
  /** Every message so far. */
  received: T[];
  stop(): void;
  errors: unknown[];
}

function stream<T>(client: Client, query: string, variables: Record<string, unknown> = {}): Stream<T> {
  const got: T[] = [];
  const errors: unknown[] = [];
  const waiters: { n: number; resolve: (v: T[]) => void }[] = [];
  const predicates: { pred: (m: T) => boolean; resolve: (v: T[]) => void }[] = [];
  const flush = () => {
    for (const w of [...waiters]) {
      if (got.length >= w.n) {
        waiters.splice(waiters.indexOf(w), 1);
        w.resolve(got.slice(0, w.n));
      }
    }
    for (const w of [...predicates]) {
      const i = got.findIndex(w.pred);
      if (i >= 0) {
        predicates.splice(predicates.indexOf(w), 1);
        w.resolve(got.slice(0, i + 1));
      }
    }
  };
  const stop = client.subscribe<T>(
    { query, variables },
    {
      next: (m) => {
        if (m.errors) errors.push(m.errors);
        if (m.data) got.push(m.data as T);
        flush();
      },
      error: (e) => errors.push(e),
      complete: () => {},
    },
  );
  return {
    errors,
    stop,
    take: (n) =>
      new Promise<T[]>((resolve, reject) => {
        waiters.push({ n, resolve });
        flush();
        setTimeout(
          () => reject(new Error(`timed out with ${got.length}/${n}: ${JSON.stringify(errors)}`)),
          10_000,
        );
      }),
    received: got,
    settled: (quietMs) =>
      new Promise<void>((resolve) => {
        let seen = got.length;
        const check = () => {
          if (got.length === seen) resolve();
          else {
            seen = got.length;
            setTimeout(check, quietMs);
          }
        };
        setTimeout(check, quietMs);
      }),
    until: (pred) =>
      new Promise<T[]>((resolve, reject) => {
        predicates.push({ pred, resolve });
        flush();
        setTimeout(
          () => reject(new Error(`timed out after ${got.length}: ${JSON.stringify(got.at(-1))}`)),
          20_000,
        );
      }),
  };
}

const INBOX = `subscription($after: String) { myInbox(after: $after) {
  event { type cursor agentId } conversation { id workState } } }`;

describe("subscriptions over graphql-ws", () => {
  it("myInbox pushes the viewer's offers and nothing of other agents", async () => {
    const s = await routingSetup(t, { agents: 1 });
    await t.db.db.update(queue).set({ offerRequired: true }).where(eq(queue.id, s.queueId));
    const agent = s.agents[0]!;
    const bystander = await createUserWithKey(t.db.db, t.tenantId, "AGENT", {
      presence: "AVAILABLE",
      loggedIn: true,
    });
    // "0.0": a fresh agent has no events, so replay-then-live starts with no race.
    const mine = stream<{
      myInbox: { event: { type: string; agentId: string }; conversation: { id: string; workState: string } };
    }>(t.ws(agent.key), INBOX, { after: "0.0" });
    const theirs = stream<unknown>(t.ws(bystander.key), INBOX, { after: "0.0" });
    const c = await addConversation(t, s.queueId);
    await route(t, s.queueId);
    const [first] = await mine.take(1);
    expect(first!.myInbox.event).toMatchObject({
      type: "routing.offered",
      agentId: encodeId("User", agent.id),
    });
    expect(first!.myInbox.conversation).toEqual({ id: encodeId("Conversation", c.id), workState: "OFFERED" });
    await t.ok(
      `mutation($id: ID!) { acceptOffer(conversationId: $id) { __typename } }`,
      { id: encodeId("Conversation", c.id) },
      agent.key,
    );
    const two = await mine.take(2);
    expect(two[1]!.myInbox.event.type).toBe("routing.accepted");
    expect(two[1]!.myInbox.conversation.workState).toBe("ACTIVE");
    mine.stop();
    theirs.stop();
    expect(theirs.errors).toEqual([]);
  });

  it("myInbox delivers a pass's burst in order, each with its conversation, read in one query per wake-up", async () => {
    const s = await routingSetup(t, {
      queue: { autoParking: true, autoParkSpacingSeconds: 0 },
      agents: 1,
      agentExtra: { inboxLimit: 12 },
    });
    const agent = s.agents[0]!;
    type Msg = {
      myInbox: {
        event: { type: string; conversationId: string };
        conversation: { id: string; workState: string };
      };
    };
    const Q = `subscription($after: String) { myInbox(after: $after) {
      event { type conversationId } conversation { id workState } } }`;
    // "0.0": whether the client is live before the pass or replays it afterwards, it gets
    // the twelve events once and in order.
    const mine = stream<Msg>(t.ws(agent.key), Q, { after: "0.0" });
    const ids: string[] = [];
    for (let i = 0; i < 12; i++) ids.push((await addConversation(t, s.queueId)).id);
    conversationReads = 0;
    await route(t, s.queueId);
    const got = await mine.take(12);
    const reads = conversationReads;
    mine.stop();
    expect(got.every((g) => g.myInbox.event.type === "routing.assigned")).toBe(true);
    expect(got.map((g) => g.myInbox.conversation.id)).toEqual(got.map((g) => g.myInbox.event.conversationId));
    expect(new Set(got.map((g) => g.myInbox.conversation.id))).toEqual(
      new Set(ids.map((id) => encodeId("Conversation", id))),
    );
    expect(got.filter((g) => g.myInbox.conversation.workState === "ACTIVE")).toHaveLength(1);
    // One pass, one commit, one wake-up: one read for all twelve (was one per event).
    expect(reads).toBe(1);
  });

  it("conversationEvents resumes after a reconnect without gaps or repeats; hidden conversations are not found", async () => {
    const s = await routingSetup(t, { agents: 1 });
    const outsider = await createUserWithKey(t.db.db, t.tenantId, "AGENT");
    const c = await addConversation(t, s.queueId);
    const id = encodeId("Conversation", c.id);
    const Q = `subscription($id: ID!, $after: String) { conversationEvents(conversationId: $id, after: $after) { type cursor } }`;
    const key = s.agents[0]!.key;
    const first = stream<{ conversationEvents: { type: string; cursor: string } }>(t.ws(t.adminKey), Q, {
      id,
      after: "0.0",
    });
    await route(t, s.queueId);
    const [assigned] = await first.take(1);
    expect(assigned!.conversationEvents.type).toBe("routing.assigned");
    first.stop();
    // While disconnected: park, activate, park.
    for (const m of ["parkConversation", "activateConversation", "parkConversation"]) {
      await t.ok(`mutation($id: ID!) { ${m}(conversationId: $id) { __typename } }`, { id }, key);
    }
    const resumed = stream<{ conversationEvents: { type: string; cursor: string } }>(t.ws(t.adminKey), Q, {
      id,
      after: assigned!.conversationEvents.cursor,
    });
    const got = await resumed.take(3);
    expect(got.map((g) => g.conversationEvents.type)).toEqual([
      "routing.parked",
      "routing.activated",
      "routing.parked",
    ]);
    resumed.stop();

    const hidden = stream<unknown>(t.ws(outsider.key), Q, { id, after: "0.0" });
    await new Promise<void>((resolve) => {
      const check = () => (hidden.errors.length > 0 ? resolve() : setTimeout(check, 20));
      check();
    });
    expect(JSON.stringify(hidden.errors)).toMatch(/not found/i);
  });

  it("conversationEvents from 0.0 reads only its conversation's events, over several pages, in commit order", async () => {
    const s = await routingSetup(t, { agents: 1 });
    const c = await addConversation(t, s.queueId);
    const other = await addConversation(t, s.queueId);
    // 1,200 events of its own interleaved with 1,200 of another conversation's, in 4
    // transactions: its replay spans three pages of the hub's 500.
    const now = t.app.engine.clock.now();
    for (let k = 0; k < 4; k++) {
      await t.db.db.transaction((tx) =>
        appendEvents(
          tx,
          Array.from({ length: 600 }, (_, i) => ({
            tenantId: t.tenantId,
            type: "conversation.note",
            conversationId: i % 2 === 0 ? c.id : other.id,
            queueId: s.queueId,
            occurredAt: now,
            payload: { k, i },
          })),
        ),
      );
    }
    const own = await t.db.sql<{ type: string; txId: string; id: string }[]>`
      SELECT type, tx_id::text AS "txId", id::text AS id FROM event
       WHERE conversation_id = ${c.id} ORDER BY event.tx_id, event.id`;
    expect(own.length).toBeGreaterThanOrEqual(1200);
    // The hub reads the conversation's events, not the tenant's log through a filter.
    const page = await t.app.hub.readPage({ txId: 0n, id: 0 }, t.tenantId, 500, { conversationId: c.id });
    expect(page.rows).toHaveLength(500);
    expect(page.rows.every((r) => r.conversationId === c.id)).toBe(true);

    const Q = `subscription($id: ID!) { conversationEvents(conversationId: $id, after: "0.0") { type cursor } }`;
    const all = stream<{ conversationEvents: { type: string; cursor: string } }>(t.ws(t.adminKey), Q, {
      id: encodeId("Conversation", c.id),
    });
    const got = await all.take(own.length);
    all.stop();
    expect(got.map((g) => g.conversationEvents.cursor)).toEqual(own.map((e) => `${e.txId}.${e.id}`));
  });

  it("an agent's replay (myInbox) reads that agent's events only, by event_agent_idx", async () => {
    const s = await routingSetup(t, { agents: 2 });
    const [a, b] = s.agents.map((x) => x.id);
    const now = t.app.engine.clock.now();
    await t.db.db.transaction((tx) =>
      appendEvents(
        tx,
        Array.from({ length: 1200 }, (_, i) => ({
          tenantId: t.tenantId,
          type: "agent.note",
          agentId: i % 2 === 0 ? a : b,
          queueId: s.queueId,
          occurredAt: now,
          payload: { i },
        })),
      ),
    );
    const page = await t.app.hub.readPage({ txId: 0n, id: 0 }, t.tenantId, 500, { agentId: a! });
    expect(page.rows).toHaveLength(500);
    expect(page.rows.every((r) => r.agentId === a)).toBe(true);
    // The index serves the read (a test table is small enough for a planner to prefer a
    // scan, so scans are switched off for the question).
    const plan = await t.db.sql.begin(async (tx) => {
      await tx`SET LOCAL enable_seqscan = off`;
      return tx<{ "QUERY PLAN": string }[]>`
        EXPLAIN SELECT id FROM event WHERE tenant_id = ${t.tenantId} AND agent_id = ${a!}::uuid
         ORDER BY tx_id, id LIMIT 500`;
    });
    expect(plan.map((r) => r["QUERY PLAN"]).join("\n")).toMatch(/event_agent_idx/);
  });

  it("queueStats emits at once and after every change in the queue; queues outside the caller's access are not found", async () => {
    const s = await routingSetup(t, { agents: 1 });
    const q = encodeId("Queue", s.queueId);
    const Q = `subscription($q: ID!) { queueStats(queueId: $q) { waiting assigned agentsAvailable agentsBusy } }`;
    const stats = stream<{ queueStats: { waiting: number; assigned: number; agentsAvailable: number } }>(
      t.ws(t.adminKey),
      Q,
      { q },
    );
    const [initial] = await stats.take(1);
    expect(initial!.queueStats).toMatchObject({ waiting: 0, assigned: 0, agentsAvailable: 1 });
    await addConversation(t, s.queueId);
    await route(t, s.queueId);
    // The assignment event triggers a recomputation: one assigned, nobody waiting.
    const all = await stats.take(2);
    expect(all[1]!.queueStats).toMatchObject({ waiting: 0, assigned: 1 });
    stats.stop();
    const agentElsewhere = await createUserWithKey(t.db.db, t.tenantId, "AGENT");
    const denied = stream<unknown>(t.ws(agentElsewhere.key), Q, { q });
    await new Promise<void>((resolve) => {
      const check = () => (denied.errors.length > 0 ? resolve() : setTimeout(check, 20));
      check();
    });
    expect(JSON.stringify(denied.errors)).toMatch(/not found/i);
  });

  it("queueStats folds a burst of changes into fewer updates and always delivers the final figures", async () => {
    const [policy] = await t.db.db
      .insert(slaPolicy)
      .values({ tenantId: t.tenantId, name: "Burst", firstResponseMinutes: 60, warningPercent: 50 })
      .returning();
    const from = await createQueueWithAddress(t.db.db, t.tenantId, { queue: { slaPolicyId: policy!.id } });
    const to = await createQueueWithAddress(t.db.db, t.tenantId);
    const N = 30;
    const ids: string[] = [];
    for (let i = 0; i < N; i++) {
      const raw = buildRawMail({ subject: `Burst ${i}`, messageId: `burst-${i}@customer.example` });
      const r = await ingestMessage(t.app.engine, {
        tenantId: t.tenantId,
        addressId: from.addressId,
        raw,
        parsed: await t.app.engine.mime.parse(raw),
        receivedAt: clock.now(),
        source: { kind: "api", userId: t.adminId },
      });
      if (r.status !== "stored") throw new Error(r.status);
      ids.push(r.conversationId);
    }
    const Q = `subscription($q: ID!) { queueStats(queueId: $q) { waiting atRisk breached } }`;
    const hubBefore = t.app.engine.hub.subscriberCount;
    type Stats = { queueStats: { waiting: number; atRisk: number; breached: number } };
    const target = stream<Stats>(t.ws(t.adminKey), Q, { q: encodeId("Queue", to.queueId) });
    const source = stream<Stats>(t.ws(t.adminKey), Q, { q: encodeId("Queue", from.queueId) });
    expect((await target.take(1))[0]!.queueStats).toEqual({ waiting: 0, atRisk: 0, breached: 0 });
    expect((await source.take(1))[0]!.queueStats).toEqual({ waiting: N, atRisk: 0, breached: 0 });
    const transfer = (batch: string[]) =>
      t.db.db.transaction(async (tx) => {
        await tx.update(conversation).set({ queueId: to.queueId }).where(inArray(conversation.id, batch));
        await appendEvents(
          tx,
          batch.map((id) => ({
            tenantId: t.tenantId,
            type: "conversation.transferred",
            conversationId: id,
            queueId: to.queueId,
            occurredAt: clock.now(),
            payload: { fromQueueId: from.queueId, toQueueId: to.queueId },
          })),
        );
      });
    // A busy moment: N transfers committed together reach the subscriptions as N events at
    // once, so the machine's load cannot spread them over several windows.
    await transfer(ids);
    t.app.engine.hub.wake();
    await target.until((m) => m.queueStats.waiting === N);
    await source.until((m) => m.queueStats.waiting === 0);
    // Figures are read when computed, so one computation per event would also show the
    // final state at once, followed by N - 1 repeats: let those show before counting (a
    // correct stream sends nothing more, so this wait cannot fail it, only catch a regression).
    await target.settled(4 * QUEUE_STATS_WINDOW_MS);
    await source.settled(4 * QUEUE_STATS_WINDOW_MS);
    expect(target.received.length - 1).toBeLessThan(N);
    expect(target.received.at(-1)!.queueStats).toEqual({ waiting: N, atRisk: 0, breached: 0 });
    // The queue they left hears of it too (payload.fromQueueId).
    expect(source.received.length - 1).toBeLessThan(N);
    expect(source.received.at(-1)!.queueStats).toEqual({ waiting: 0, atRisk: 0, breached: 0 });
    source.stop();
    const stats = target;
    // Past the warning share, the SLA check's event brings the at-risk count.
    clock.advance(31 * MINUTE);
    await runSlaCheck(t.app.engine, { conversationId: ids[0]! });
    const warned = await stats.until((m) => m.queueStats.atRisk === N);
    expect(warned.at(-1)!.queueStats).toEqual({ waiting: N, atRisk: N, breached: 0 });
    stats.stop();
    expect(stats.errors).toEqual([]);
    // Unsubscribing closes the event-hub subscription behind it.
    await new Promise<void>((resolve) => {
      const check = () => (t.app.engine.hub.subscriberCount <= hubBefore ? resolve() : setTimeout(check, 20));
      check();
    });
  });
});
