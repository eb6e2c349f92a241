import { eq } from "drizzle-orm";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  agentQueueDaily,
  agentState,
  contact,
  conversation,
  queue,
  queueMember,
  user,
} from "../../src/db/schema/index.js";
import { ManualClock, MINUTE } from "../../src/engine/clock.js";
import { releaseConversation, startCustomerResponseCountdown } from "../../src/engine/routing/actions.js";
import { PASS_DELIVERY_CAP } from "../../src/engine/routing/service.js";
import { routingJobHandlers } from "../../src/jobs/routing.js";
import { encodeId } from "../../src/schema/ids.js";
import { startTestApp, type TestApp } from "../helpers/app.js";
import { createUserWithKey } from "../helpers/fixtures.js";
import {
  addConversation,
  conv,
  createSkill,
  createTeam,
  eventsOf,
  giveSkill,
  ownedBy,
  route,
  routingSetup,
} from "./routing-helpers.js";

// Far in the future: pg-boss (wall clock) never fires these timers during the run, so the
// tests drive every timer by calling its handler after moving the clock.
const clock = new ManualClock("2031-03-03T09:00:00Z");
let t: TestApp;

beforeAll(async () => {
  t = await startTestApp({ clock });
});
afterAll(async () => {
  await t?.stop();
});

const cid = (id: string) => encodeId("Conversation", id);

const ACTION = (name: string) => `mutation($id: ID!) { ${name}(conversationId: $id) {
  __typename
  ... on Conversation { id workState handleTimeMs assignee { id } }
  ... on Error { code message }
} }`;

async function act(name: string, id: string, key: string) {
  const r = await t.ok(ACTION(name), { id: cid(id) }, key);
  return r[name];
}

describe("auto-assignment", () => {
  it("orders the queue by priority + minutes waiting and spreads by least active", async () => {
    const s = await routingSetup(t, { queue: { autoParking: true, autoParkSpacingSeconds: 0 }, agents: 2 });
    const now = clock.now();
    // 1 priority point = 1 minute of waiting: c (prio 2, 0 min) beats a (prio 0, 1 min).
    const a = await addConversation(t, s.queueId, { enqueuedAt: new Date(now.getTime() - MINUTE) });
    const b = await addConversation(t, s.queueId, { enqueuedAt: new Date(now.getTime() - 3 * MINUTE) });
    const c = await addConversation(t, s.queueId, { priority: 2 });
    await route(t, s.queueId);
    const rows = await Promise.all([a, b, c].map((x) => conv(t.db.db, x.id)));
    expect(rows.every((r) => r.assigneeId !== null)).toBe(true);
    // b (score 3) first, then c (2), then a (1): agents alternate by load.
    const [ra, rb, rc] = rows;
    expect(rb!.assigneeId).not.toBe(rc!.assigneeId);
    expect(ra!.assigneeId).toBe(rb!.assigneeId);
    // The first delivery to an idle agent is ACTIVE, the next parked.
    expect(rb!.workState).toBe("ACTIVE");
    expect(ra!.workState).toBe("PARKED");
    // Explainability: the event carries strategy, candidates and scores.
    const ev = (await eventsOf(t.db.db, b.id)).find((e) => e.type === "routing.assigned")!;
    expect(ev.agentId).toBe(rb!.assigneeId);
    expect(ev.queueId).toBe(s.queueId);
    expect(ev.payload).toMatchObject({
      strategy: "LEAST_ACTIVE",
      rankedBy: "LEAST_ACTIVE",
      eligibleCount: 2,
    });
    expect((ev.payload.candidates as unknown[]).length).toBe(2);
    expect(ev.payload.candidates).toEqual(
      expect.arrayContaining([expect.objectContaining({ agentId: rb!.assigneeId, eligible: true })]),
    );
    // Contact continuity: the assignee becomes preferred.
    const [ct] = await t.db.db.select().from(contact).where(eq(contact.id, b.contactId));
    expect(ct!.preferredAgentId).toBe(rb!.assigneeId);
  });

  it("a queue ordered by SLA_REMAINING serves the least SLA time left first, whatever the priority", async () => {
    const s = await routingSetup(t, { queue: { order: "SLA_REMAINING" }, agents: 1 });
    const now = clock.now();
    const noSla = await addConversation(t, s.queueId, { priority: 50 });
    const late = await addConversation(t, s.queueId, { priority: 10 });
    const soon = await addConversation(t, s.queueId);
    await t.db.db
      .update(conversation)
      .set({ firstResponseDueAt: new Date(now.getTime() + 90 * MINUTE) })
      .where(eq(conversation.id, late.id));
    await t.db.db
      .update(conversation)
      .set({ firstResponseDueAt: new Date(now.getTime() + 5 * MINUTE) })
      .where(eq(conversation.id, soon.id));
    await route(t, s.queueId);
    // One agent without auto-parking takes exactly one: the one due soonest.
    expect((await conv(t.db.db, soon.id)).assigneeId).toBe(s.agents[0]!.id);
    expect((await conv(t.db.db, late.id)).workState).toBe("WAITING");
    expect((await conv(t.db.db, noSla.id)).workState).toBe("WAITING");
  });

  it("routes a deep queue from one signal in passes of at most PASS_DELIVERY_CAP, each its own commit", async () => {
    const s = await routingSetup(t, {
      queue: { autoParking: true, autoParkSpacingSeconds: 0 },
      agents: 5,
      agentExtra: { inboxLimit: 30 },
    });
    const n = PASS_DELIVERY_CAP * 2 + 7;
    for (let i = 0; i < n; i++) await addConversation(t, s.queueId);
    const passes: number[] = [];
    t.app.routing.onPass = (r) => {
      if (r.queueId === s.queueId) passes.push(r.delivered);
    };
    try {
      await route(t, s.queueId);
    } finally {
      t.app.routing.onPass = undefined;
    }
    expect(passes.slice(0, 3)).toEqual([PASS_DELIVERY_CAP, PASS_DELIVERY_CAP, 7]);
    const owned = await Promise.all(s.agents.map((a) => ownedBy(t.db.db, a.id)));
    expect(owned.map((o) => o.length).reduce((x, y) => x + y, 0)).toBe(n);
    // Least active keeps the spread even across passes.
    expect(
      Math.max(...owned.map((o) => o.length)) - Math.min(...owned.map((o) => o.length)),
    ).toBeLessThanOrEqual(1);
  });

  it("without auto-parking gives one ACTIVE per agent and no spacing; parking frees the agent", async () => {
    const s = await routingSetup(t, { agents: 1 });
    const a = await addConversation(t, s.queueId, { enqueuedAt: new Date(clock.now().getTime() - MINUTE) });
    const b = await addConversation(t, s.queueId);
    await route(t, s.queueId);
    expect((await conv(t.db.db, a.id)).workState).toBe("ACTIVE");
    expect((await conv(t.db.db, b.id)).workState).toBe("WAITING");
    // Park → the agent has nothing active → routing delivers at once (no 30 s spacing).
    const parked = await act("parkConversation", a.id, s.agents[0]!.key);
    expect(parked.workState).toBe("PARKED");
    await t.app.routing.idle();
    expect((await conv(t.db.db, b.id)).workState).toBe("ACTIVE");
  });

  it("auto-park spacing: at most one delivery per agent per 30 s, then a wake-up delivers the next", async () => {
    const s = await routingSetup(t, { agents: 1 });
    await t.db.db.update(queue).set({ autoParking: true }).where(eq(queue.id, s.queueId));
    const a = await addConversation(t, s.queueId, { enqueuedAt: new Date(clock.now().getTime() - MINUTE) });
    const b = await addConversation(t, s.queueId);
    await route(t, s.queueId);
    expect((await conv(t.db.db, a.id)).assigneeId).toBe(s.agents[0]!.id);
    expect((await conv(t.db.db, b.id)).workState).toBe("WAITING");
    clock.advance(29_000);
    await routingJobHandlers.wake(t.app.engine, { tenantId: t.tenantId, queueId: s.queueId });
    await t.app.routing.idle();
    expect((await conv(t.db.db, b.id)).workState).toBe("WAITING");
    clock.advance(1_000);
    await routingJobHandlers.wake(t.app.engine, { tenantId: t.tenantId, queueId: s.queueId });
    await t.app.routing.idle();
    const rb = await conv(t.db.db, b.id);
    expect(rb.assigneeId).toBe(s.agents[0]!.id);
    expect(rb.workState).toBe("PARKED");
  });

  it("respects the inbox limit: agent override over team default, OFF = no delivery", async () => {
    const teamId = await createTeam(t, { inboxLimit: 1 });
    const off = await createTeam(t, { inboxLimitOff: true });
    const s = await routingSetup(t, { agents: 0 });
    await t.db.db
      .update(queue)
      .set({ autoParking: true, autoParkSpacingSeconds: 0 })
      .where(eq(queue.id, s.queueId));
    const mk = async (extra: Record<string, unknown>) => {
      const u = await createUserWithKey(t.db.db, t.tenantId, "AGENT", {
        presence: "AVAILABLE",
        loggedIn: true,
        ...extra,
      });
      await t.db.db.insert(queueMember).values({ tenantId: t.tenantId, queueId: s.queueId, userId: u.id });
      return u.id;
    };
    const teamOne = await mk({ teamId });
    const override = await mk({ teamId, inboxLimit: 2 });
    const offAgent = await mk({ teamId: off });
    for (let i = 0; i < 6; i++) await addConversation(t, s.queueId);
    await route(t, s.queueId);
    expect((await ownedBy(t.db.db, teamOne)).length).toBe(1);
    expect((await ownedBy(t.db.db, override)).length).toBe(2);
    expect((await ownedBy(t.db.db, offAgent)).length).toBe(0);
    const stats = await t.ok(
      `query($q: ID!) { queueStats(queueId: $q) { __typename ... on QueueStats { waiting assigned agentsAvailable agentsBusy } } }`,
      { q: encodeId("Queue", s.queueId) },
    );
    expect(stats.queueStats).toMatchObject({ waiting: 3, assigned: 3, agentsAvailable: 0, agentsBusy: 3 });
  });

  it("eligibility: presence, login, skills and the daily limit", async () => {
    const s = await routingSetup(t, { agents: 4 });
    const [away, loggedOut, unskilled, ok] = s.agents.map((a) => a.id);
    await t.db.db
      .update(queue)
      .set({ autoParking: true, autoParkSpacingSeconds: 0, dailyAutoAssignLimit: 1 })
      .where(eq(queue.id, s.queueId));
    await t.db.db.update(user).set({ presence: "AWAY" }).where(eq(user.id, away!));
    await t.db.db.update(user).set({ loggedIn: false }).where(eq(user.id, loggedOut!));
    const sk = await createSkill(t, "german");
    for (const id of [away!, loggedOut!, ok!]) await giveSkill(t, id, sk, 5);
    void unskilled;
    const earlier = new Date(clock.now().getTime() - MINUTE);
    const a = await addConversation(t, s.queueId, { requiredSkillIds: [sk], enqueuedAt: earlier });
    const b = await addConversation(t, s.queueId, { requiredSkillIds: [sk] });
    await route(t, s.queueId);
    expect((await conv(t.db.db, a.id)).assigneeId).toBe(ok);
    // The daily limit of 1 stops the second.
    expect((await conv(t.db.db, b.id)).workState).toBe("WAITING");
    const ev = (await eventsOf(t.db.db, a.id)).find((e) => e.type === "routing.assigned")!;
    expect(ev.payload.excluded).toMatchObject({ PRESENCE: 1, NOT_LOGGED_IN: 1, MISSING_SKILL: 1 });
    // Next tenant-local day the counter resets.
    clock.advance(24 * 60 * MINUTE);
    await route(t, s.queueId);
    expect((await conv(t.db.db, b.id)).assigneeId).toBe(ok);
  });

  it("the daily limit counts per (agent, queue): deliveries from one queue leave another's allowance", async () => {
    const a = await routingSetup(t, {
      queue: { autoParking: true, autoParkSpacingSeconds: 0, dailyAutoAssignLimit: 1 },
      agents: 1,
      agentExtra: { inboxLimit: 10 },
    });
    const agentId = a.agents[0]!.id;
    const b = await routingSetup(t, {
      queue: { autoParking: true, autoParkSpacingSeconds: 0, dailyAutoAssignLimit: 1 },
      agents: 0,
    });
    await t.db.db.insert(queueMember).values({ tenantId: t.tenantId, queueId: b.queueId, userId: agentId });
    const a1 = await addConversation(t, a.queueId);
    const a2 = await addConversation(t, a.queueId);
    const b1 = await addConversation(t, b.queueId);
    await route(t, a.queueId);
    await route(t, b.queueId);
    expect((await conv(t.db.db, b1.id)).assigneeId).toBe(agentId);
    const fromA = await Promise.all([a1, a2].map((x) => conv(t.db.db, x.id)));
    expect(fromA.filter((r) => r.assigneeId === agentId)).toHaveLength(1);
    expect(fromA.filter((r) => r.workState === "WAITING")).toHaveLength(1);
    const waiting = fromA.find((r) => r.workState === "WAITING")!;
    await route(t, a.queueId);
    expect((await conv(t.db.db, waiting.id)).workState).toBe("WAITING");
    const counts = await t.db.db.select().from(agentQueueDaily).where(eq(agentQueueDaily.userId, agentId));
    expect(counts.map((c) => c.count)).toEqual([1, 1]);
  });

  it("proficiency picks the highest level of the required skills", async () => {
    const s = await routingSetup(t, { agents: 3 });
    await t.db.db.update(queue).set({ strategy: "PROFICIENCY" }).where(eq(queue.id, s.queueId));
    const sk = await createSkill(t, "billing");
    await giveSkill(t, s.agents[0]!.id, sk, 3);
    await giveSkill(t, s.agents[1]!.id, sk, 9);
    await giveSkill(t, s.agents[2]!.id, sk, 6);
    const a = await addConversation(t, s.queueId, { requiredSkillIds: [sk] });
    await route(t, s.queueId);
    expect((await conv(t.db.db, a.id)).assigneeId).toBe(s.agents[1]!.id);
  });

  it("auto-assign off: conversations wait; an agent picks one even with others assigned", async () => {
    const s = await routingSetup(t, { agents: 1 });
    await t.db.db.update(queue).set({ autoAssign: false }).where(eq(queue.id, s.queueId));
    const a = await addConversation(t, s.queueId);
    const b = await addConversation(t, s.queueId);
    await route(t, s.queueId);
    expect((await conv(t.db.db, a.id)).workState).toBe("WAITING");
    const key = s.agents[0]!.key;
    expect((await act("pickConversation", a.id, key)).workState).toBe("ACTIVE");
    const picked = await act("pickConversation", b.id, key);
    expect(picked.workState).toBe("ACTIVE");
    expect((await conv(t.db.db, a.id)).workState).toBe("PARKED");
    // Picking a conversation that is no longer waiting is a typed conflict.
    expect(await act("pickConversation", b.id, key)).toMatchObject({
      __typename: "ConflictError",
      code: "NOT_WAITING",
    });
  });
});

describe("offers", () => {
  async function offerQueue(agents = 2) {
    const s = await routingSetup(t, { agents });
    await t.db.db
      .update(queue)
      .set({ offerRequired: true, offerTimeoutSeconds: 60 })
      .where(eq(queue.id, s.queueId));
    return s;
  }

  it("offers to one agent; reject tries the next, never the rejecter", async () => {
    const s = await offerQueue();
    const a = await addConversation(t, s.queueId);
    await route(t, s.queueId);
    const first = await conv(t.db.db, a.id);
    expect(first.workState).toBe("OFFERED");
    const firstAgent = s.agents.find((x) => x.id === first.offeredToId)!;
    const other = s.agents.find((x) => x.id !== first.offeredToId)!;
    // Someone else cannot accept it.
    expect(await act("acceptOffer", a.id, other.key)).toMatchObject({ code: "OFFER_NOT_PENDING" });
    expect((await act("rejectOffer", a.id, firstAgent.key)).workState).toBe("WAITING");
    await t.app.routing.idle();
    const second = await conv(t.db.db, a.id);
    expect(second.offeredToId).toBe(other.id);
    expect(second.offerExcludedIds).toEqual([firstAgent.id]);
    const accepted = await act("acceptOffer", a.id, other.key);
    expect(accepted).toMatchObject({ workState: "ACTIVE", assignee: { id: encodeId("User", other.id) } });
    const types = (await eventsOf(t.db.db, a.id)).map((e) => e.type);
    expect(types).toEqual(["routing.offered", "routing.rejected", "routing.offered", "routing.accepted"]);
  });

  it("a timed-out offer returns to the queue; a stale timer does nothing", async () => {
    const s = await offerQueue(1);
    const a = await addConversation(t, s.queueId);
    await route(t, s.queueId);
    const c = await conv(t.db.db, a.id);
    expect(c.offeredToId).toBe(s.agents[0]!.id);
    const job = { tenantId: t.tenantId, queueId: s.queueId, expiresAt: "" };
    // Before the deadline the timer is stale.
    clock.advance(59_000);
    expect(await routingJobHandlers.offerTimeout(t.app.engine, job)).toBe(0);
    expect((await conv(t.db.db, a.id)).workState).toBe("OFFERED");
    clock.advance(1_000);
    expect(await routingJobHandlers.offerTimeout(t.app.engine, job)).toBe(1);
    await t.app.routing.idle();
    const after = await conv(t.db.db, a.id);
    // The only agent timed out: it is excluded, so the conversation waits.
    expect(after.workState).toBe("WAITING");
    expect(after.offerExcludedIds).toEqual([s.agents[0]!.id]);
    expect(await routingJobHandlers.offerTimeout(t.app.engine, job)).toBe(0);
    expect((await eventsOf(t.db.db, a.id)).map((e) => e.type)).toContain("routing.offer_expired");
  });
});

describe("working set", () => {
  it("handle time accrues only while ACTIVE; interrupt parks and resume reactivates", async () => {
    const s = await routingSetup(t, { agents: 1 });
    const a = await addConversation(t, s.queueId);
    await route(t, s.queueId);
    const key = s.agents[0]!.key;
    clock.advance(60_000);
    const parked = await act("parkConversation", a.id, key);
    expect(parked).toMatchObject({ workState: "PARKED", handleTimeMs: 60_000 });
    clock.advance(10 * MINUTE);
    expect((await act("activateConversation", a.id, key)).handleTimeMs).toBe(60_000);
    clock.advance(30_000);
    const agentId = encodeId("User", s.agents[0]!.id);
    const INT = `mutation($a: ID!) { interruptAgent(agentId: $a, reason: "call") { __typename ... on AgentInterruption { conversation { id workState handleTimeMs } } } }`;
    const r = await t.ok(INT, { a: agentId }, key);
    expect(r.interruptAgent.conversation).toMatchObject({ workState: "PARKED", handleTimeMs: 90_000 });
    // No activation while on the call.
    expect(await act("activateConversation", a.id, key)).toMatchObject({ code: "INTERRUPTED" });
    clock.advance(5 * MINUTE);
    const RES = `mutation($a: ID!) { resumeAgent(agentId: $a) { __typename ... on AgentInterruption { conversation { workState } } } }`;
    expect((await t.ok(RES, { a: agentId }, key)).resumeAgent.conversation.workState).toBe("ACTIVE");
    const [st] = await t.db.db.select().from(agentState).where(eq(agentState.userId, s.agents[0]!.id));
    expect(st!.interruptedAt).toBeNull();
  });

  it("releaseConversation stops the handle time and presents the next parked one", async () => {
    const s = await routingSetup(t, { agents: 1 });
    await t.db.db
      .update(queue)
      .set({ autoParking: true, autoParkSpacingSeconds: 0, presentNextWhenAllParked: true })
      .where(eq(queue.id, s.queueId));
    const a = await addConversation(t, s.queueId, { priority: 5 });
    const b = await addConversation(t, s.queueId);
    await route(t, s.queueId);
    expect((await conv(t.db.db, a.id)).workState).toBe("ACTIVE");
    expect((await conv(t.db.db, b.id)).workState).toBe("PARKED");
    clock.advance(45_000);
    const r = await t.app.engine.db.transaction((tx) =>
      releaseConversation(tx, t.app.engine, a.id, "RESOLVED"),
    );
    expect(r.agentId).toBe(s.agents[0]!.id);
    const ra = await conv(t.db.db, a.id);
    expect(ra).toMatchObject({
      workState: "DONE",
      assigneeId: null,
      handleTimeMs: 45_000,
      activeSince: null,
    });
    expect((await conv(t.db.db, b.id)).workState).toBe("ACTIVE");
  });
});

describe("moves", () => {
  it("supervisor reassigns, owner returns to queue, transfer moves with new skills", async () => {
    const s = await routingSetup(t, { agents: 2 });
    await t.db.db.update(queue).set({ autoAssign: false }).where(eq(queue.id, s.queueId));
    const other = await routingSetup(t, { agents: 0 });
    await t.db.db.update(queue).set({ autoAssign: false }).where(eq(queue.id, other.queueId));
    const sup = await createUserWithKey(t.db.db, t.tenantId, "SUPERVISOR");
    const a = await addConversation(t, s.queueId);
    const ASSIGN = `mutation($c: ID!, $a: ID!) { assignConversation(conversationId: $c, agentId: $a) {
      __typename ... on Conversation { workState assignee { id } } ... on Error { code } } }`;
    const [x, y] = s.agents;
    let r = await t.ok(ASSIGN, { c: cid(a.id), a: encodeId("User", x!.id) }, sup.key);
    expect(r.assignConversation).toMatchObject({
      workState: "ACTIVE",
      assignee: { id: encodeId("User", x!.id) },
    });
    // Agents may not assign.
    const denied = await t.gql(ASSIGN, { c: cid(a.id), a: encodeId("User", y!.id) }, x!.key);
    expect(denied.errors?.[0]?.extensions?.code).toBe("FORBIDDEN");
    r = await t.ok(ASSIGN, { c: cid(a.id), a: encodeId("User", y!.id) }, sup.key);
    expect(r.assignConversation.assignee.id).toBe(encodeId("User", y!.id));
    const types = (await eventsOf(t.db.db, a.id)).map((e) => [e.type, e.agentId]);
    expect(types).toContainEqual(["routing.unassigned", x!.id]);
    expect((await act("returnConversationToQueue", a.id, y!.key)).workState).toBe("WAITING");
    const sk = await createSkill(t, "legal");
    const TRANSFER = `mutation($c: ID!, $q: ID!, $s: [ID!]) { transferConversation(conversationId: $c, queueId: $q, requiredSkillIds: $s) {
      __typename ... on Conversation { workState queueId } } }`;
    const tr = await t.ok(TRANSFER, {
      c: cid(a.id),
      q: encodeId("Queue", other.queueId),
      s: [encodeId("Skill", sk)],
    });
    expect(tr.transferConversation).toMatchObject({
      workState: "WAITING",
      queueId: encodeId("Queue", other.queueId),
    });
    expect((await conv(t.db.db, a.id)).requiredSkillIds).toEqual([sk]);
  });

  it("customer-response countdown unassigns on expiry unless the customer wrote", async () => {
    const s = await routingSetup(t, { agents: 1 });
    await t.db.db.update(queue).set({ customerResponseCountdownMinutes: 60 }).where(eq(queue.id, s.queueId));
    const a = await addConversation(t, s.queueId);
    const b = await addConversation(t, s.queueId);
    await t.db.db
      .update(queue)
      .set({ autoParking: true, autoParkSpacingSeconds: 0 })
      .where(eq(queue.id, s.queueId));
    await route(t, s.queueId);
    const startedAt = clock.now().toISOString();
    const due = await t.app.engine.db.transaction((tx) =>
      startCustomerResponseCountdown(tx, t.app.engine, a.id),
    );
    expect(due?.getTime()).toBe(clock.now().getTime() + 60 * MINUTE);
    await t.app.engine.db.transaction((tx) => startCustomerResponseCountdown(tx, t.app.engine, b.id));
    const job = (id: string) => ({ tenantId: t.tenantId, conversationId: id, startedAt });
    clock.advance(59 * MINUTE);
    expect(await routingJobHandlers.countdown(t.app.engine, job(a.id))).toBe(false);
    clock.advance(MINUTE);
    // b's customer answered in time.
    const { conversation } = await import("../../src/db/schema/index.js");
    await t.db.db.update(conversation).set({ lastInboundAt: clock.now() }).where(eq(conversation.id, b.id));
    expect(await routingJobHandlers.countdown(t.app.engine, job(a.id))).toBe(true);
    expect(await routingJobHandlers.countdown(t.app.engine, job(b.id))).toBe(false);
    expect(await conv(t.db.db, a.id)).toMatchObject({ workState: "DONE", assigneeId: null });
    expect((await conv(t.db.db, b.id)).assigneeId).toBe(s.agents[0]!.id);
  });
});

describe("preferred agent", () => {
  it("waits while the preferred agent is offline, then falls back and the new agent becomes preferred", async () => {
    const s = await routingSetup(t, { agents: 2 });
    await t.db.db
      .update(queue)
      .set({ strategy: "PREFERRED_AGENT", preferredAgentTimeoutSeconds: 600 })
      .where(eq(queue.id, s.queueId));
    const [pref, other] = s.agents;
    await t.db.db.update(user).set({ presence: "OFFLINE", loggedIn: false }).where(eq(user.id, pref!.id));
    const a = await addConversation(t, s.queueId, { preferredAgentId: pref!.id });
    await route(t, s.queueId);
    expect((await conv(t.db.db, a.id)).workState).toBe("WAITING");
    clock.advance(600_000);
    await routingJobHandlers.wake(t.app.engine, { tenantId: t.tenantId, queueId: s.queueId });
    await t.app.routing.idle();
    expect((await conv(t.db.db, a.id)).assigneeId).toBe(other!.id);
    const [ct] = await t.db.db.select().from(contact).where(eq(contact.id, a.contactId));
    expect(ct!.preferredAgentId).toBe(other!.id);
  });

  it("delivers to the preferred agent when it comes online (setPresence triggers routing)", async () => {
    const s = await routingSetup(t, { agents: 2 });
    await t.db.db.update(queue).set({ strategy: "PREFERRED_AGENT" }).where(eq(queue.id, s.queueId));
    const [pref] = s.agents;
    await t.db.db.update(user).set({ presence: "OFFLINE", loggedIn: false }).where(eq(user.id, pref!.id));
    const a = await addConversation(t, s.queueId, { preferredAgentId: pref!.id });
    await route(t, s.queueId);
    expect((await conv(t.db.db, a.id)).workState).toBe("WAITING");
    const r = await t.ok(
      `mutation { setPresence(presence: AVAILABLE) { __typename ... on User { presence loggedIn } } }`,
      {},
      pref!.key,
    );
    expect(r.setPresence).toMatchObject({ presence: "AVAILABLE", loggedIn: true });
    await t.app.routing.idle();
    expect((await conv(t.db.db, a.id)).assigneeId).toBe(pref!.id);
  });
});

describe("demand while no agent can take anything", () => {
  it("is held after a pass that found no supply; a supply signal ends the hold and routes at once", async () => {
    const s = await routingSetup(t, {
      queue: { autoParking: true, autoParkSpacingSeconds: 0 },
      agents: 1,
      agentExtra: { inboxLimit: 1 },
    });
    const agentId = s.agents[0]!.id;
    await addConversation(t, s.queueId);
    await route(t, s.queueId);
    const waiting = await addConversation(t, s.queueId);
    const passes: number[] = [];
    t.app.routing.onPass = (r) => {
      if (r.queueId === s.queueId) passes.push(r.delivered + r.offered);
    };
    try {
      await route(t, s.queueId);
      // The agent is full: the pass delivered nothing and said why.
      expect(passes).toEqual([0]);
      expect((await conv(t.db.db, waiting.id)).workState).toBe("WAITING");

      // New demand (what ingest signals) does not run a pass now: it is held.
      t.app.engine.signals.routeQueue(t.tenantId, s.queueId, "demand");
      expect(t.app.routing.held()).toEqual([`${t.tenantId}:${s.queueId}`]);
      expect(passes).toEqual([0]);

      // Supply (the agent's limit raised) is no demand: the hold ends, the pass runs now.
      await t.ok(
        `mutation($id: ID!, $input: UpdateUserInput!) { updateUser(id: $id, input: $input) { __typename } }`,
        {
          id: encodeId("User", agentId),
          input: { inboxLimit: { mode: "LIMIT", value: 2 } },
        },
      );
      expect(t.app.routing.held()).toEqual([]);
      await t.app.routing.idle();
      expect((await conv(t.db.db, waiting.id)).assigneeId).toBe(agentId);

      // A pass that delivered does not hold the next demand.
      const next = await addConversation(t, s.queueId);
      t.app.engine.signals.routeQueue(t.tenantId, s.queueId, "demand");
      expect(t.app.routing.held()).toEqual([]);
      await t.app.routing.idle();
      expect((await conv(t.db.db, next.id)).workState).toBe("WAITING");
      // Held demand is not forgotten: it gets its pass when the hold ends (idle waits for it).
      t.app.engine.signals.routeQueue(t.tenantId, s.queueId, "demand");
      expect(t.app.routing.held()).toHaveLength(1);
      const before = passes.length;
      await t.app.routing.idle();
      expect(t.app.routing.held()).toEqual([]);
      expect(passes.length).toBe(before + 1);
    } finally {
      t.app.routing.onPass = undefined;
    }
  });
});

describe("configuration changes that add supply route at once (no sweep)", () => {
  const setup = async (agentExtra: Record<string, unknown> = {}) => {
    const s = await routingSetup(t, {
      queue: { autoParking: true, autoParkSpacingSeconds: 0 },
      agents: 1,
      agentExtra: { inboxLimit: 1, ...agentExtra },
    });
    await addConversation(t, s.queueId, { enqueuedAt: new Date(clock.now().getTime() - MINUTE) });
    const second = await addConversation(t, s.queueId);
    await route(t, s.queueId);
    expect((await conv(t.db.db, second.id)).workState).toBe("WAITING");
    return { ...s, agentId: s.agents[0]!.id, second };
  };
  const limit = (value: number) => ({ mode: "LIMIT", value });

  it("updateUser raising the inbox limit delivers the waiting conversation", async () => {
    const s = await setup();
    await t.ok(
      `mutation($id: ID!, $input: UpdateUserInput!) { updateUser(id: $id, input: $input) { __typename } }`,
      {
        id: encodeId("User", s.agentId),
        input: { inboxLimit: limit(2) },
      },
    );
    await t.app.routing.idle();
    expect((await conv(t.db.db, s.second.id)).assigneeId).toBe(s.agentId);
  });

  it("updateTeam raising the team's default limit delivers to its agents", async () => {
    const teamId = await createTeam(t, { inboxLimit: 1 });
    const s = await setup({ inboxLimit: null, teamId });
    await t.ok(
      `mutation($id: ID!, $input: TeamInput!) { updateTeam(id: $id, input: $input) { __typename } }`,
      {
        id: encodeId("Team", teamId),
        input: { inboxLimit: limit(2) },
      },
    );
    await t.app.routing.idle();
    expect((await conv(t.db.db, s.second.id)).assigneeId).toBe(s.agentId);
  });

  it("updateUser moving an agent into a member team delivers from the team's queues", async () => {
    const teamId = await createTeam(t);
    const s = await routingSetup(t, { queue: { autoParking: true, autoParkSpacingSeconds: 0 }, agents: 0 });
    await t.db.db.insert(queueMember).values({ tenantId: t.tenantId, queueId: s.queueId, teamId });
    const c = await addConversation(t, s.queueId);
    const agent = await createUserWithKey(t.db.db, t.tenantId, "AGENT", {
      presence: "AVAILABLE",
      loggedIn: true,
    });
    await route(t, s.queueId);
    expect((await conv(t.db.db, c.id)).workState).toBe("WAITING");
    await t.ok(
      `mutation($id: ID!, $input: UpdateUserInput!) { updateUser(id: $id, input: $input) { __typename } }`,
      {
        id: encodeId("User", agent.id),
        input: { teamId: encodeId("Team", teamId) },
      },
    );
    await t.app.routing.idle();
    expect((await conv(t.db.db, c.id)).assigneeId).toBe(agent.id);
  });

  it("setAgentSkills giving the required skill delivers the waiting conversation", async () => {
    const s = await routingSetup(t, { queue: { autoParking: true, autoParkSpacingSeconds: 0 }, agents: 1 });
    const sk = await createSkill(t, "french");
    const c = await addConversation(t, s.queueId, { requiredSkillIds: [sk] });
    await route(t, s.queueId);
    expect((await conv(t.db.db, c.id)).workState).toBe("WAITING");
    await t.ok(
      `mutation($id: ID!, $skills: [AgentSkillInput!]!) { setAgentSkills(userId: $id, skills: $skills) { __typename } }`,
      { id: encodeId("User", s.agents[0]!.id), skills: [{ skillId: encodeId("Skill", sk), proficiency: 3 }] },
    );
    await t.app.routing.idle();
    expect((await conv(t.db.db, c.id)).assigneeId).toBe(s.agents[0]!.id);
  });
});
