import { eq } from "drizzle-orm";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { queueMember, slaPolicy, tenant } from "../../src/db/schema/index.js";
import { DAY, ManualClock, MINUTE } from "../../src/engine/clock.js";
import { ingestMessage } from "../../src/engine/ingest/ingest.js";
import { runStatusTimer } from "../../src/engine/lifecycle.js";
import { runSlaCheck } from "../../src/engine/sla.js";
import { encodeId } from "../../src/schema/ids.js";
import { startTestApp, type TestApp } from "../helpers/app.js";
import { createQueueWithAddress, createUserWithKey } from "../helpers/fixtures.js";
import { buildRawMail } from "../helpers/raw-mail.js";

const clock = new ManualClock("2026-03-02T09:00:00Z");
let t: TestApp;

beforeAll(async () => {
  t = await startTestApp({ clock });
  await t.app.jobs.boss.offWork("status-timer");
  await t.app.jobs.boss.offWork("sla-check");
});
afterAll(async () => {
  await t?.stop();
});

const TIMELINE = `query($id: ID!, $first: Int, $after: String) { node(id: $id) { ... on Conversation {
  timeline(first: $first, after: $after) {
    pageInfo { hasNextPage endCursor }
    edges { node { type occurredAt actorType actor { id name } payload } }
  } } } }`;

describe("timeline", () => {
  it("tells a scripted conversation's story event by event, with actors, paginated", async () => {
    const addr = await createQueueWithAddress(t.db.db, t.tenantId, { address: "story@acme.test" });
    const agent = await createUserWithKey(t.db.db, t.tenantId, "AGENT", { name: "Ada Agent" });
    await t.db.db
      .insert(queueMember)
      .values({ tenantId: t.tenantId, queueId: addr.queueId, userId: agent.id });
    const [p] = await t.db.db
      .insert(slaPolicy)
      .values({ tenantId: t.tenantId, name: "Fast", firstResponseMinutes: 60, warningPercent: 50 })
      .returning();
    await t.db.db
      .update(tenant)
      .set({ defaultSlaPolicyId: p!.id, pausedToClosedDays: 60 })
      .where(eq(tenant.id, t.tenantId));
    const rule = await t.ok(
      `mutation($input: CreateRuleInput!) { createRule(input: $input) { ... on Rule { id } } }`,
      {
        input: {
          addressId: encodeId("EmailAddress", addr.addressId),
          name: "VIP",
          conditions: [{ field: "FROM", op: "CONTAINS", value: "@vip.example" }],
          actions: [{ type: "ADD_TAGS", tags: ["vip"] }],
        },
      },
    );
    const ctx = t.app.engine;
    const mail = async (subject: string, messageId: string) => {
      const raw = buildRawMail({ from: "Vera <vera@vip.example>", subject, messageId });
      return ingestMessage(ctx, {
        tenantId: t.tenantId,
        addressId: addr.addressId,
        raw,
        parsed: await ctx.mime.parse(raw),
        receivedAt: clock.now(),
        source: { kind: "smtp", mailFrom: "vera@vip.example", rcptTo: ["story@acme.test"] },
      });
    };
    const set = (id: string, s: string) =>
      t.ok(
        `mutation($id: ID!, $s: ConversationStatus!) { setConversationStatus(conversationId: $id, status: $s) { __typename } }`,
        { id: encodeId("Conversation", id), s },
        agent.key,
      );

    // 09:00 the mail arrives.
    const first = await mail("Broken login", "story-1@vip.example");
    if (first.status !== "stored") throw new Error("not stored");
    const id = first.conversationId;
    // 09:30 half the first-response target is used: warning.
    clock.set("2026-03-02T09:30:00Z");
    await runSlaCheck(ctx, { conversationId: id });
    // 09:40 the agent opens it.
    clock.set("2026-03-02T09:40:00Z");
    await set(id, "ACTIVE");
    // 10:00 no reply yet: breach.
    clock.set("2026-03-02T10:00:00Z");
    await runSlaCheck(ctx, { conversationId: id });
    // 10:10 resolved.
    clock.set("2026-03-02T10:10:00Z");
    await set(id, "RESOLVED");
    // 10:20 the customer writes again: reactivated and back in the queue.
    clock.set("2026-03-02T10:20:00Z");
    await mail(`Re: Broken login [#${first.ticketNumber}]`, "story-2@vip.example");
    // 10:30 paused, waiting on the customer; 60 days later the timer closes it.
    clock.set("2026-03-02T10:30:00Z");
    await set(id, "PAUSED");
    clock.advance(60 * DAY + MINUTE);
    await runStatusTimer(ctx, { conversationId: id, dueAt: clock.now().toISOString() });

    // Read it back in pages of 5.
    type Entry = { type: string; occurredAt: string; actorType: string; actor: unknown; payload: any };
    type Page = { pageInfo: { hasNextPage: boolean; endCursor: string }; edges: { node: Entry }[] };
    const all: Entry[] = [];
    let after: string | null = null;
    let pages = 0;
    for (;;) {
      const d: { node: { timeline: Page } } = await t.ok(TIMELINE, {
        id: encodeId("Conversation", id),
        first: 5,
        after,
      });
      const tl: Page = d.node.timeline;
      all.push(...tl.edges.map((e) => e.node));
      pages += 1;
      if (!tl.pageInfo.hasNextPage) break;
      after = tl.pageInfo.endCursor;
    }
    expect(pages).toBe(4);
    const ada = { id: encodeId("User", agent.id), name: "Ada Agent" };
    const line = all.map((e) => [e.occurredAt.slice(0, 16), e.type, e.actorType, e.actor]);
    expect(line).toEqual([
      ["2026-03-02T09:00", "message.received", "CONTACT", null],
      ["2026-03-02T09:00", "conversation.created", "SYSTEM", null],
      ["2026-03-02T09:00", "rule.matched", "SYSTEM", null],
      ["2026-03-02T09:00", "conversation.queued", "SYSTEM", null],
      ["2026-03-02T09:30", "sla.warning", "SYSTEM", null],
      ["2026-03-02T09:40", "conversation.status_changed", "USER", ada],
      ["2026-03-02T10:00", "sla.breached", "SYSTEM", null],
      // Resolving releases the conversation through routing (capacity, present-next).
      ["2026-03-02T10:10", "routing.unassigned", "SYSTEM", null],
      ["2026-03-02T10:10", "conversation.status_changed", "USER", ada],
      ["2026-03-02T10:20", "message.received", "CONTACT", null],
      ["2026-03-02T10:20", "conversation.threaded", "SYSTEM", null],
      ["2026-03-02T10:20", "conversation.status_changed", "SYSTEM", null],
      ["2026-03-02T10:20", "conversation.queued", "SYSTEM", null],
      ["2026-03-02T10:30", "conversation.status_changed", "USER", ada],
      ["2026-05-01T10:31", "routing.unassigned", "SYSTEM", null],
      ["2026-05-01T10:31", "conversation.status_changed", "SYSTEM", null],
    ]);
    // The details say why.
    expect(all[0]!.payload).toMatchObject({
      from: "vera@vip.example",
      subject: "Broken login",
      source: "smtp",
    });
    expect(encodeId("Rule", all[2]!.payload.ruleId)).toBe(rule.createRule.id);
    expect(all[2]!.payload).toMatchObject({ name: "VIP", reason: 'matched: from CONTAINS "@vip.example"' });
    expect(all[3]!.payload).toMatchObject({ reason: "new" });
    expect(all[4]!.payload).toMatchObject({
      target: "FIRST_RESPONSE",
      targetMinutes: 60,
      elapsedBusinessMinutes: 30,
    });
    expect(all[6]!.payload).toMatchObject({ target: "FIRST_RESPONSE", elapsedBusinessMinutes: 60 });
    const changes = all.filter((e) => e.type === "conversation.status_changed").map((e) => e.payload);
    expect(changes).toEqual([
      { from: "NEW", to: "ACTIVE", reason: "manual" },
      { from: "ACTIVE", to: "RESOLVED", reason: "manual" },
      { from: "RESOLVED", to: "ACTIVE", reason: "inbound:reactivate" },
      { from: "ACTIVE", to: "PAUSED", reason: "manual" },
      { from: "PAUSED", to: "CLOSED", reason: "timer:PAUSED_TO_CLOSED" },
    ]);
    expect(all[12]!.payload).toMatchObject({ reason: "customer-reply" });
  });
});
