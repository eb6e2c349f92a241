import { and, eq } from "drizzle-orm";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { businessCalendar, conversation, event, slaPolicy, tenant } from "../../src/db/schema/index.js";
import { createTenantWithAdmin } from "../../src/engine/auth.js";
import { DAY, HOUR, ManualClock, MINUTE } from "../../src/engine/clock.js";
import type { ConversationStatus } from "../../src/engine/domain.js";
import { ingestMessage } from "../../src/engine/ingest/ingest.js";
import { runStatusTimer } from "../../src/engine/lifecycle.js";
import { recordAgentReplySla, runSlaCheck } from "../../src/engine/sla.js";
import { encodeId } from "../../src/schema/ids.js";
import { startTestApp, type TestApp } from "../helpers/app.js";
import { createQueueWithAddress, createUserWithKey } from "../helpers/fixtures.js";
import { buildRawMail } from "../helpers/raw-mail.js";

// Monday 2026-03-02 09:00 UTC.
const clock = new ManualClock("2026-03-02T09:00:00Z");
let t: TestApp;
let addr: { queueId: string; addressId: string; address: string };
let agent: { id: string; key: string };
let supervisor: { id: string; key: string };
let seq = 0;

async function newConversation(receivedAt?: Date): Promise<string> {
  seq += 1;
  const raw = buildRawMail({ subject: `Case ${seq}`, messageId: `life-${seq}@customer.example` });
  const ctx = t.app.engine;
  const r = await ingestMessage(ctx, {
    tenantId: t.tenantId,
    addressId: addr.addressId,
    raw,
    parsed: await ctx.mime.parse(raw),
    receivedAt: receivedAt ?? clock.now(),
    source: { kind: "api", userId: t.adminId },
  });
  if (r.status !== "stored") throw new Error(`not stored: ${r.status}`);
  return r.conversationId;
}

async function reply(conversationId: string, fromSeq: number) {
  const [row] = await t.db.db.select().from(conversation).where(eq(conversation.id, conversationId));
  const raw = buildRawMail({
    subject: `Re: Case [#${row!.ticketNumber}]`,
    messageId: `life-reply-${fromSeq}-${Date.now()}@customer.example`,
  });
  const ctx = t.app.engine;
  return ingestMessage(ctx, {
    tenantId: t.tenantId,
    addressId: addr.addressId,
    raw,
    parsed: await ctx.mime.parse(raw),
    receivedAt: clock.now(),
    source: { kind: "api", userId: t.adminId },
  });
}

async function slaCounts(queueId: string): Promise<{ atRisk: number; breached: number }> {
  const r = await t.ok(
    `query($q: ID!) { queueStats(queueId: $q) { __typename ... on QueueStats { atRisk breached } } }`,
    { q: encodeId("Queue", queueId) },
  );
  return { atRisk: r.queueStats.atRisk, breached: r.queueStats.breached };
}

const SET = `mutation($id: ID!, $s: ConversationStatus!) {
  setConversationStatus(conversationId: $id, status: $s) {
    __typename
    ... on Conversation { status workState }
    ... on ConflictError { code message }
  }
}`;

async function setStatus(id: string, s: ConversationStatus, key = agent.key) {
  return (await t.ok(SET, { id: encodeId("Conversation", id), s }, key)).setConversationStatus;
}

async function row(id: string) {
  const [r] = await t.db.db.select().from(conversation).where(eq(conversation.id, id));
  return r!;
}

async function fireTimer(id: string) {
  return runStatusTimer(t.app.engine, { conversationId: id, dueAt: clock.now().toISOString() });
}

beforeAll(async () => {
  t = await startTestApp({ clock });
  // Tests drive timers by moving the clock and calling the handlers; the app's own workers
  // would race them (jobs scheduled on a manual clock look overdue to PostgreSQL).
  await t.app.jobs.boss.offWork("status-timer");
  await t.app.jobs.boss.offWork("sla-check");
  addr = await createQueueWithAddress(t.db.db, t.tenantId, { address: "life@acme.test" });
  agent = await createUserWithKey(t.db.db, t.tenantId, "AGENT");
  supervisor = await createUserWithKey(t.db.db, t.tenantId, "SUPERVISOR");
  // Agents see the queues they are members of.
  const { queueMember } = await import("../../src/db/schema/index.js");
  await t.db.db.insert(queueMember).values({ tenantId: t.tenantId, queueId: addr.queueId, userId: agent.id });
});
afterAll(async () => {
  await t?.stop();
});

describe("status transitions", () => {
  it("walks the legal transitions with events naming the actor, and refuses illegal ones", async () => {
    const id = await newConversation();
    expect(await setStatus(id, "PAUSED")).toMatchObject({
      __typename: "ConflictError",
      code: "ILLEGAL_TRANSITION",
      message: "A NEW conversation cannot be changed to PAUSED",
    });
    expect(await setStatus(id, "ACTIVE")).toMatchObject({ status: "ACTIVE" });
    expect(await setStatus(id, "NEW")).toMatchObject({ __typename: "ConflictError" });
    expect(await setStatus(id, "ACTIVE")).toMatchObject({ message: "The conversation is already ACTIVE" });
    expect(await setStatus(id, "PAUSED")).toMatchObject({ status: "PAUSED" });
    expect(await setStatus(id, "ACTIVE")).toMatchObject({ status: "ACTIVE" });
    expect(await setStatus(id, "RESOLVED")).toMatchObject({ status: "RESOLVED", workState: "DONE" });
    expect(await setStatus(id, "PAUSED")).toMatchObject({ __typename: "ConflictError" });
    expect(await setStatus(id, "CLOSED")).toMatchObject({ status: "CLOSED", workState: "DONE" });
    expect(await setStatus(id, "ACTIVE")).toMatchObject({ __typename: "ConflictError" });
    expect(await setStatus(id, "REOPENED")).toMatchObject({
      message: "Only a supervisor can change a CLOSED conversation to REOPENED",
    });
    expect(await setStatus(id, "REOPENED", supervisor.key)).toMatchObject({
      status: "REOPENED",
      workState: "WAITING",
    });
    const rows = await t.db.db.select().from(event).where(eq(event.conversationId, id)).orderBy(event.id);
    const changes = rows.filter((r) => r.type === "conversation.status_changed");
    expect(changes.map((r) => [r.payload.from, r.payload.to, r.actorType, r.actorId])).toEqual([
      ["NEW", "ACTIVE", "USER", agent.id],
      ["ACTIVE", "PAUSED", "USER", agent.id],
      ["PAUSED", "ACTIVE", "USER", agent.id],
      ["ACTIVE", "RESOLVED", "USER", agent.id],
      ["RESOLVED", "CLOSED", "USER", agent.id],
      ["CLOSED", "REOPENED", "USER", supervisor.id],
    ]);
    // Reopening a finished conversation puts it back in its queue.
    expect(rows.at(-1)).toMatchObject({ type: "conversation.queued", payload: { reason: "reopened" } });
  });

  it("resolving frees the agent's capacity and hides nothing from other tenants", async () => {
    const id = await newConversation();
    await t.db.db
      .update(conversation)
      .set({ assigneeId: agent.id, workState: "ACTIVE", activeSince: clock.now() })
      .where(eq(conversation.id, id));
    clock.advance(10 * MINUTE);
    await setStatus(id, "RESOLVED");
    // The agent no longer owns an ACTIVE conversation (work state is the source of truth).
    const active = await t.db.db
      .select({ id: conversation.id })
      .from(conversation)
      .where(and(eq(conversation.assigneeId, agent.id), eq(conversation.workState, "ACTIVE")));
    expect(active).toEqual([]);
    const r = await row(id);
    expect(r.workState).toBe("DONE");
    expect(r.handleTimeMs).toBe(10 * MINUTE);
    expect(r.resolvedAt).toEqual(clock.now());
    // An unknown or foreign conversation is not found, not a conflict.
    const res = await t.gql(SET, {
      id: encodeId("Conversation", "00000000-0000-4000-8000-000000000000"),
      s: "ACTIVE",
    });
    expect(res.data?.setConversationStatus).toMatchObject({ __typename: "NotFoundError" });
  });
});

describe("status timers", () => {
  it("ACTIVE → PAUSED after 30 idle days, PAUSED → CLOSED after 60, each re-checked when it fires", async () => {
    const id = await newConversation();
    await setStatus(id, "ACTIVE");
    // The timer is a pg-boss job written in the transaction that changed the status.
    const jobs = await t.db.sql<{ start_after: string }[]>`
      SELECT start_after FROM pgboss.job
      WHERE name = 'status-timer' AND data->>'conversationId' = ${id}`;
    expect(jobs.map((j) => new Date(j.start_after))).toEqual([new Date(clock.now().getTime() + 30 * DAY)]);
    clock.advance(29 * DAY);
    expect(await fireTimer(id)).toEqual({ outcome: "not-due" });
    expect((await row(id)).status).toBe("ACTIVE");
    // New customer mail is activity: the idle timer counts from it.
    await reply(id, 1);
    clock.advance(2 * DAY);
    expect(await fireTimer(id)).toEqual({ outcome: "not-due" });
    clock.advance(28 * DAY);
    expect(await fireTimer(id)).toEqual({ outcome: "fired", kind: "ACTIVE_TO_PAUSED" });
    expect((await row(id)).status).toBe("PAUSED");
    // A second (stale) job for the same timer does nothing.
    clock.advance(1 * DAY);
    expect(await fireTimer(id)).toEqual({ outcome: "not-due" });
    clock.advance(59 * DAY);
    expect(await fireTimer(id)).toEqual({ outcome: "fired", kind: "PAUSED_TO_CLOSED" });
    const r = await row(id);
    expect(r.status).toBe("CLOSED");
    expect(r.workState).toBe("DONE");
    expect(await fireTimer(id)).toEqual({ outcome: "none" });
    const rows = await t.db.db.select().from(event).where(eq(event.conversationId, id)).orderBy(event.id);
    expect(
      rows
        .filter((e) => e.type === "conversation.status_changed")
        .map((e) => [e.payload.reason, e.actorType]),
    ).toEqual([
      ["manual", "USER"],
      ["timer:ACTIVE_TO_PAUSED", "SYSTEM"],
      ["timer:PAUSED_TO_CLOSED", "SYSTEM"],
    ]);
  });

  it("RESOLVED → CLOSED after the tenant's days; a switched-off timer never fires", async () => {
    await t.db.db.update(tenant).set({ resolvedToClosedDays: 5 }).where(eq(tenant.id, t.tenantId));
    const id = await newConversation();
    await setStatus(id, "RESOLVED");
    clock.advance(5 * DAY - MINUTE);
    expect(await fireTimer(id)).toEqual({ outcome: "not-due" });
    clock.advance(MINUTE);
    expect(await fireTimer(id)).toEqual({ outcome: "fired", kind: "RESOLVED_TO_CLOSED" });
    expect((await row(id)).closedAt).toEqual(clock.now());

    await t.db.db.update(tenant).set({ resolvedToClosedDays: null }).where(eq(tenant.id, t.tenantId));
    const off = await newConversation();
    await setStatus(off, "RESOLVED");
    clock.advance(1000 * DAY);
    expect(await fireTimer(off)).toEqual({ outcome: "none" });
    expect((await row(off)).status).toBe("RESOLVED");
    await t.db.db.update(tenant).set({ resolvedToClosedDays: 30 }).where(eq(tenant.id, t.tenantId));
  });

  it("a status change made after the job was scheduled makes it stale", async () => {
    const id = await newConversation();
    await setStatus(id, "ACTIVE");
    await setStatus(id, "RESOLVED");
    clock.advance(31 * DAY);
    // The ACTIVE → PAUSED job from before fires now: RESOLVED's own timer decides instead.
    expect(await fireTimer(id)).toEqual({ outcome: "fired", kind: "RESOLVED_TO_CLOSED" });
    expect((await row(id)).status).toBe("CLOSED");
  });

  it("inbound mail on PAUSED reactivates; on CLOSED within the window reopens", async () => {
    const id = await newConversation();
    await setStatus(id, "ACTIVE");
    await setStatus(id, "PAUSED");
    await reply(id, 2);
    expect((await row(id)).status).toBe("ACTIVE");
    await setStatus(id, "CLOSED");
    clock.advance(10 * DAY);
    await reply(id, 3);
    expect((await row(id)).status).toBe("REOPENED");
  });
});

describe("SLA", () => {
  let policyId: string;
  let calId: string;

  beforeAll(async () => {
    // Mon–Fri 09:00–17:00 Berlin.
    const [cal] = await t.db.db
      .insert(businessCalendar)
      .values({
        tenantId: t.tenantId,
        name: "Office",
        timeZone: "Europe/Berlin",
        intervals: ([1, 2, 3, 4, 5] as const).map((weekday) => ({ weekday, start: "09:00", end: "17:00" })),
        holidays: [],
      })
      .returning();
    calId = cal!.id;
    const [p] = await t.db.db
      .insert(slaPolicy)
      .values({
        tenantId: t.tenantId,
        name: "Standard",
        firstResponseMinutes: 60,
        nextResponseMinutes: 120,
        resolutionMinutes: 8 * 60,
        warningPercent: 50,
        calendarId: calId,
      })
      .returning();
    policyId = p!.id;
    await t.db.db.update(tenant).set({ defaultSlaPolicyId: policyId }).where(eq(tenant.id, t.tenantId));
  });

  const SLA = `query($id: ID!) { node(id: $id) { ... on Conversation { sla { policySource breached
    firstResponse { phase dueAt remainingBusinessMinutes warned breached }
    nextResponse { phase dueAt remainingBusinessMinutes warned breached }
    resolution { phase dueAt remainingBusinessMinutes warned breached } } } } }`;
  const sla = async (id: string) => (await t.ok(SLA, { id: encodeId("Conversation", id) })).node.sla;

  it("starts at the received time in business hours, warns and breaches as timed events", async () => {
    clock.set("2026-03-09T15:30:00Z"); // Monday 16:30 Berlin: 30 business minutes left today.
    const id = await newConversation();
    const r = await row(id);
    expect(r.slaPolicyId).toBe(policyId);
    // 60 business minutes: 30 today, 30 from Tuesday 09:00 → 09:30 Berlin = 08:30Z.
    expect(r.firstResponseDueAt).toEqual(new Date("2026-03-10T08:30:00Z"));
    expect(await sla(id)).toMatchObject({
      policySource: "TENANT",
      breached: false,
      firstResponse: { phase: "RUNNING", remainingBusinessMinutes: 60, warned: false, breached: false },
      nextResponse: null,
    });
    expect(await runSlaCheck(t.app.engine, { conversationId: id })).toEqual([]);
    clock.set("2026-03-09T16:00:00Z"); // closing time: 30 of 60 used → 50 % warning
    const warned = await runSlaCheck(t.app.engine, { conversationId: id });
    expect(warned.map((e) => [e.type, e.payload?.target])).toEqual([["sla.warning", "FIRST_RESPONSE"]]);
    // Overnight nothing counts; a repeat check announces nothing twice.
    clock.set("2026-03-10T07:59:00Z");
    expect(await runSlaCheck(t.app.engine, { conversationId: id })).toEqual([]);
    expect((await sla(id)).firstResponse.remainingBusinessMinutes).toBe(30);
    clock.set("2026-03-10T08:30:00Z");
    const breached = await runSlaCheck(t.app.engine, { conversationId: id });
    expect(breached.map((e) => [e.type, e.payload?.target])).toEqual([["sla.breached", "FIRST_RESPONSE"]]);
    expect((await row(id)).slaBreached).toBe(true);
    expect(await sla(id)).toMatchObject({ breached: true, firstResponse: { breached: true } });
  });

  it("pauses while PAUSED and RESOLVED and resumes where it stopped; next response after a reply", async () => {
    clock.set("2026-03-11T08:00:00Z"); // Wednesday 09:00 Berlin
    const id = await newConversation();
    await setStatus(id, "ACTIVE");
    clock.advance(20 * MINUTE);
    await t.db.db.transaction((tx) => recordAgentReplySla(tx, t.app.engine, id, clock.now()));
    expect(await sla(id)).toMatchObject({
      firstResponse: { phase: "MET", breached: false },
      nextResponse: null,
    });
    clock.advance(10 * MINUTE); // 30 business minutes on the clock
    await setStatus(id, "PAUSED");
    expect((await sla(id)).resolution).toMatchObject({
      phase: "PAUSED",
      dueAt: null,
      remainingBusinessMinutes: 450,
    });
    expect((await row(id)).resolutionDueAt).toBeNull();
    clock.advance(3 * HOUR);
    expect((await sla(id)).resolution.remainingBusinessMinutes).toBe(450);
    // The customer writes: the clock resumes and next response starts.
    await reply(id, 4);
    const s = await sla(id);
    expect(s.resolution).toMatchObject({ phase: "RUNNING", remainingBusinessMinutes: 450 });
    expect(s.nextResponse).toMatchObject({ phase: "RUNNING", remainingBusinessMinutes: 120 });
    // 11:30Z + 120 business minutes = 13:30Z (Berlin 14:30).
    expect(new Date(s.nextResponse.dueAt)).toEqual(new Date("2026-03-11T13:30:00Z"));
    clock.advance(HOUR);
    await setStatus(id, "RESOLVED");
    expect(await sla(id)).toMatchObject({
      resolution: { phase: "MET", breached: false },
      nextResponse: { phase: "PAUSED" },
    });
    clock.advance(5 * HOUR);
    expect(await runSlaCheck(t.app.engine, { conversationId: id })).toEqual([]);
  });

  it("queue policy beats address beats tenant", async () => {
    const [qp] = await t.db.db
      .insert(slaPolicy)
      .values({ tenantId: t.tenantId, name: "Queue SLA", firstResponseMinutes: 15 })
      .returning();
    const other = await createQueueWithAddress(t.db.db, t.tenantId, { queue: { slaPolicyId: qp!.id } });
    clock.set("2026-03-12T10:00:00Z");
    const raw = buildRawMail({ subject: "Queue SLA", messageId: "queue-sla@customer.example" });
    const ctx = t.app.engine;
    const r = await ingestMessage(ctx, {
      tenantId: t.tenantId,
      addressId: other.addressId,
      raw,
      parsed: await ctx.mime.parse(raw),
      receivedAt: clock.now(),
      source: { kind: "api", userId: t.adminId },
    });
    const c = await row(r.status === "stored" ? r.conversationId : "");
    expect(c.slaPolicyId).toBe(qp!.id);
    // No calendar on queue or policy: counted around the clock.
    expect(c.firstResponseDueAt).toEqual(new Date("2026-03-12T10:15:00Z"));
    expect(c.resolutionDueAt).toBeNull();
    expect(await slaCounts(other.queueId)).toEqual({ atRisk: 0, breached: 0 });
    clock.set("2026-03-12T10:13:00Z");
    expect(await slaCounts(other.queueId)).toEqual({ atRisk: 1, breached: 0 });
  });

  describe("queueStats at-risk and breached counts", () => {
    let q: { queueId: string; addressId: string };
    let seqQ = 0;

    async function open(): Promise<string> {
      seqQ += 1;
      const raw = buildRawMail({ subject: `Counted ${seqQ}`, messageId: `counted-${seqQ}@customer.example` });
      const ctx = t.app.engine;
      const r = await ingestMessage(ctx, {
        tenantId: t.tenantId,
        addressId: q.addressId,
        raw,
        parsed: await ctx.mime.parse(raw),
        receivedAt: clock.now(),
        source: { kind: "api", userId: t.adminId },
      });
      if (r.status !== "stored") throw new Error(`not stored: ${r.status}`);
      return r.conversationId;
    }
    const status = (id: string, s: ConversationStatus) => setStatus(id, s, t.adminKey);

    beforeAll(async () => {
      // First response 60 business minutes, warning at 50 %, the Office calendar
      // (Mon–Fri 09:00–17:00 Berlin = 08:00–16:00Z in March before DST).
      const [p] = await t.db.db
        .insert(slaPolicy)
        .values({
          tenantId: t.tenantId,
          name: "Counted",
          firstResponseMinutes: 60,
          warningPercent: 50,
          calendarId: calId,
        })
        .returning();
      q = await createQueueWithAddress(t.db.db, t.tenantId, { queue: { slaPolicyId: p!.id } });
    });

    it("are exact before the warning, after it, after the breach, and while paused", async () => {
      clock.set("2026-03-18T08:00:00Z"); // Wednesday 09:00 Berlin
      const a = await open(); // warns 08:30Z, due 09:00Z
      const c = await open(); // paused at 10 minutes: never warns
      const d = await open(); // paused at 40 minutes: stays at risk
      const e = await open(); // paused at 65 minutes, unannounced: breached
      const f = await open(); // resolved: not counted
      const g = await open(); // answered in time: nothing pending
      for (const id of [c, d, e]) await status(id, "ACTIVE");
      clock.set("2026-03-18T08:05:00Z");
      await t.db.db.transaction((tx) => recordAgentReplySla(tx, t.app.engine, g, clock.now()));
      clock.set("2026-03-18T08:10:00Z");
      await status(c, "PAUSED");
      clock.set("2026-03-18T08:20:00Z");
      const b = await open(); // warns 08:50Z, due 09:20Z
      clock.set("2026-03-18T08:25:00Z");
      expect(await slaCounts(q.queueId)).toEqual({ atRisk: 0, breached: 0 });
      clock.set("2026-03-18T08:35:00Z"); // a, d, e, f past 30 minutes
      expect(await slaCounts(q.queueId)).toEqual({ atRisk: 4, breached: 0 });
      clock.set("2026-03-18T08:40:00Z");
      await status(d, "PAUSED");
      await status(f, "ACTIVE");
      await status(f, "RESOLVED");
      clock.set("2026-03-18T08:55:00Z"); // f resolved, b warned
      expect(await slaCounts(q.queueId)).toEqual({ atRisk: 4, breached: 0 });
      clock.set("2026-03-18T09:05:00Z");
      await status(e, "PAUSED"); // 65 minutes on the clock: overdue before the pause
      // a due at 09:00Z (no sla-check ran: due by now); e overdue when paused.
      expect(await slaCounts(q.queueId)).toEqual({ atRisk: 2, breached: 2 });
      clock.set("2026-03-18T09:30:00Z");
      expect(await slaCounts(q.queueId)).toEqual({ atRisk: 1, breached: 3 });
      // Recorded breaches count the same; the job announces them.
      for (const id of [a, b]) {
        expect((await runSlaCheck(t.app.engine, { conversationId: id })).map((x) => x.type)).toContain(
          "sla.breached",
        );
      }
      expect(await slaCounts(q.queueId)).toEqual({ atRisk: 1, breached: 3 });
      // e was paused past its due time before any check ran: a late check still records the
      // breach (not the moot warning); c and d, paused in time, announce nothing.
      const late = await runSlaCheck(t.app.engine, { conversationId: e });
      expect(late.map((x) => [x.type, x.payload?.target])).toEqual([["sla.breached", "FIRST_RESPONSE"]]);
      expect((await row(e)).slaBreached).toBe(true);
      expect(await runSlaCheck(t.app.engine, { conversationId: c })).toEqual([]);
      expect(await runSlaCheck(t.app.engine, { conversationId: d })).toEqual([]);
      expect(await slaCounts(q.queueId)).toEqual({ atRisk: 1, breached: 3 });
      // A week on: paused clocks stood still (c and d's deadlines passed on the wall clock).
      clock.set("2026-03-25T12:00:00Z");
      expect(await slaCounts(q.queueId)).toEqual({ atRisk: 1, breached: 3 });
      // Resuming d runs its clock again from 40 minutes: due after 20 more business minutes.
      await status(d, "ACTIVE");
      expect(await slaCounts(q.queueId)).toEqual({ atRisk: 1, breached: 3 });
      clock.set("2026-03-25T12:20:00Z");
      expect(await slaCounts(q.queueId)).toEqual({ atRisk: 0, breached: 4 });
      // Resolving takes a breached conversation out of the open counts.
      await status(a, "RESOLVED");
      expect(await slaCounts(q.queueId)).toEqual({ atRisk: 0, breached: 3 });
      // Business hours: received at 16:50 Berlin, 10 minutes left today; overnight nothing counts.
      clock.set("2026-03-25T15:50:00Z");
      await open(); // warns Thursday 08:20Z, due 08:50Z
      clock.set("2026-03-26T07:59:00Z");
      expect(await slaCounts(q.queueId)).toEqual({ atRisk: 0, breached: 3 });
      clock.set("2026-03-26T08:20:00Z");
      expect(await slaCounts(q.queueId)).toEqual({ atRisk: 1, breached: 3 });
      // The same figures as each conversation's own SLA reading.
      const rows = await t.db.db.select().from(conversation).where(eq(conversation.queueId, q.queueId));
      let atRisk = 0;
      let breached = 0;
      for (const r of rows.filter((x) => x.status !== "RESOLVED" && x.status !== "CLOSED")) {
        const s = await sla(r.id);
        const pending = [s.firstResponse].filter((x) => x && ["RUNNING", "PAUSED"].includes(x.phase));
        if (s.breached) breached++;
        else if (pending.some((x) => x.warned)) atRisk++;
      }
      expect({ atRisk, breached }).toEqual({ atRisk: 1, breached: 3 });
    });

    it("a queue of another tenant, or outside an agent's queues, is not found", async () => {
      const other = await createTenantWithAdmin(t.db.db, { tenantName: "Other", adminEmail: "x@other.test" });
      const foreign = await createQueueWithAddress(t.db.db, other.tenantId);
      const Q = `query($q: ID!) { queueStats(queueId: $q) { __typename ... on NotFoundError { entity } } }`;
      expect((await t.ok(Q, { q: encodeId("Queue", foreign.queueId) })).queueStats).toEqual({
        __typename: "NotFoundError",
        entity: "Queue",
      });
      expect((await t.ok(Q, { q: encodeId("Queue", q.queueId) }, agent.key)).queueStats).toEqual({
        __typename: "NotFoundError",
        entity: "Queue",
      });
    });
  });
});
