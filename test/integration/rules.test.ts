import { eq, inArray, sql } from "drizzle-orm";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  autoReplyTemplate,
  businessCalendar,
  contact,
  conversation,
  event,
  rejectedMessage,
  skill,
} from "../../src/db/schema/index.js";
import { ManualClock } from "../../src/engine/clock.js";
import type { IngestResult } from "../../src/engine/ingest/ingest.js";
import { encodeId } from "../../src/schema/ids.js";
import { startTestApp, type TestApp } from "../helpers/app.js";
import { createQueueWithAddress, createUserWithKey } from "../helpers/fixtures.js";
import { ingestRaw } from "../helpers/ingest.js";
import { buildRawMail, type RawMailSpec } from "../helpers/raw-mail.js";

// Monday 2026-03-02.
const clock = new ManualClock("2026-03-02T17:40:00Z");
let t: TestApp;
let seq = 0;
let calendarId: string;
let templateId: string;
let skillA: string;
let skillB: string;

const CREATE = `mutation($input: CreateRuleInput!) {
  createRule(input: $input) {
    __typename
    ... on Rule { id name position }
    ... on ValidationError { problems { field message } }
    ... on NotFoundError { entity }
  }
}`;

async function createRule(input: Record<string, unknown>) {
  return (await t.ok(CREATE, { input })).createRule;
}

async function ingest(addressId: string, spec: RawMailSpec = {}, receivedAt?: Date): Promise<IngestResult> {
  seq += 1;
  const raw = buildRawMail({ subject: `Mail ${seq}`, messageId: `rules-${seq}@customer.example`, ...spec });
  return ingestRaw(t.app.engine, { tenantId: t.tenantId, addressId }, raw, {
    receivedAt: receivedAt ?? clock.now(),
    source: { kind: "api", userId: t.adminId },
  });
}

async function conv(r: IngestResult) {
  if (r.status !== "stored") throw new Error(`not stored: ${r.status}`);
  const [row] = await t.db.db.select().from(conversation).where(eq(conversation.id, r.conversationId));
  return row!;
}

beforeAll(async () => {
  t = await startTestApp({ clock });
  // Tests drive timers by moving the clock and calling the handlers; the app's own workers
  // would race them (jobs scheduled on a manual clock look overdue to PostgreSQL).
  await t.app.jobs.boss.offWork("status-timer");
  await t.app.jobs.boss.offWork("sla-check");
  // Open Mon–Fri 09:00–17:30 UTC.
  const [cal] = await t.db.db
    .insert(businessCalendar)
    .values({
      tenantId: t.tenantId,
      name: "Desk",
      timeZone: "UTC",
      intervals: ([1, 2, 3, 4, 5] as const).map((weekday) => ({ weekday, start: "09:00", end: "17:30" })),
      holidays: [],
    })
    .returning();
  calendarId = cal!.id;
  const [tpl] = await t.db.db
    .insert(autoReplyTemplate)
    .values({ tenantId: t.tenantId, name: "Thanks", text: "We got it." })
    .returning();
  templateId = tpl!.id;
  const skills = await t.db.db
    .insert(skill)
    .values([
      { tenantId: t.tenantId, name: "German" },
      { tenantId: t.tenantId, name: "Billing" },
    ])
    .returning();
  skillA = skills[0]!.id;
  skillB = skills[1]!.id;
});
afterAll(async () => {
  await t?.stop();
});

describe("rule CRUD", () => {
  it("validates every field at once, by name", async () => {
    const addr = await createQueueWithAddress(t.db.db, t.tenantId);
    const r = await createRule({
      addressId: encodeId("EmailAddress", addr.addressId),
      name: " ",
      conditions: [
        { field: "SUBJECT", op: "REGEX", value: "(a+)+$" },
        { field: "HEADER", op: "CONTAINS", value: "x" },
        { field: "FROM", op: "CONTAINS" },
      ],
      actions: [{ type: "SET_PRIORITY", priority: -1 }, { type: "SET_QUEUE" }],
    });
    expect(r.__typename).toBe("ValidationError");
    const fields = r.problems.map((p: { field: string }) => p.field);
    expect(fields).toEqual(
      expect.arrayContaining([
        "name",
        "conditions[0].value",
        "conditions[1].header",
        "conditions[2].value",
        "actions[0].priority",
        "actions[1].queueId",
      ]),
    );
    const noRules = await createRule({ name: "Empty", conditions: [], actions: [] });
    expect(noRules.problems).toEqual([{ field: "actions", message: "must list at least one action" }]);
  });

  it("creates, lists in order, updates and deletes; agents may not", async () => {
    const addr = await createQueueWithAddress(t.db.db, t.tenantId);
    const a = encodeId("EmailAddress", addr.addressId);
    const first = await createRule({
      addressId: a,
      name: "First",
      conditions: [],
      actions: [{ type: "STOP" }],
    });
    const second = await createRule({
      addressId: a,
      name: "Second",
      conditions: [
        { field: "RECEIVED_TIME", calendarId: encodeId("BusinessCalendar", calendarId), inside: true },
      ],
      actions: [{ type: "ADD_TAGS", tags: ["day"] }],
    });
    expect([first.position, second.position]).toEqual([0, 1]);
    const upd = await t.ok(
      `mutation($id: ID!, $input: UpdateRuleInput!) { updateRule(id: $id, input: $input) {
        __typename ... on Rule { position enabled } } }`,
      { id: first.id, input: { position: 5, enabled: false } },
    );
    expect(upd.updateRule).toEqual({ __typename: "Rule", position: 5, enabled: false });
    const list = await t.ok(
      `query($a: ID) { rules(addressId: $a) { ... on QueryRulesSuccess { data { name
        conditions { field calendarId inside } actions { type tags } } } } }`,
      { a },
    );
    expect(list.rules.data).toEqual([
      {
        name: "Second",
        conditions: [
          { field: "RECEIVED_TIME", calendarId: encodeId("BusinessCalendar", calendarId), inside: true },
        ],
        actions: [{ type: "ADD_TAGS", tags: ["day"] }],
      },
      { name: "First", conditions: [], actions: [{ type: "STOP", tags: null }] },
    ]);
    const del = await t.ok(
      `mutation($id: ID!) { deleteRule(id: $id) { __typename ... on DeleteRulePayload { deletedRuleId } } }`,
      { id: first.id },
    );
    expect(del.deleteRule.deletedRuleId).toBe(first.id);
    const again = await t.ok(`mutation($id: ID!) { deleteRule(id: $id) { __typename } }`, { id: first.id });
    expect(again.deleteRule.__typename).toBe("NotFoundError");
    const agent = await createUserWithKey(t.db.db, t.tenantId, "AGENT");
    const denied = await t.gql(
      CREATE,
      { input: { name: "X", conditions: [], actions: [{ type: "STOP" }] } },
      agent.key,
    );
    expect(denied.errors?.[0]?.extensions?.code).toBe("FORBIDDEN");
  });
});

/** One address with one rule: `condition` → ADD_TAGS ["hit"]. */
async function addressWithRule(condition: Record<string, unknown>, addressFields = {}) {
  const addr = await createQueueWithAddress(t.db.db, t.tenantId, { addressFields });
  const r = await createRule({
    addressId: encodeId("EmailAddress", addr.addressId),
    name: "Tagger",
    conditions: [condition],
    actions: [{ type: "ADD_TAGS", tags: ["hit"] }],
  });
  expect(r.__typename).toBe("Rule");
  return addr;
}

describe("conditions at ingest", () => {
  const cases: [string, Record<string, unknown>, RawMailSpec, RawMailSpec][] = [
    [
      "from",
      { field: "FROM", op: "EQUALS", value: "vip@big.example" },
      { from: "VIP <vip@big.example>" },
      {},
    ],
    [
      "to",
      { field: "TO", op: "CONTAINS", value: "sales" },
      { to: "sales@acme.test" },
      { to: "help@acme.test" },
    ],
    [
      "cc",
      { field: "CC", op: "CONTAINS", value: "boss@" },
      { headers: { Cc: "boss@customer.example" } },
      { headers: { Cc: "peer@customer.example" } },
    ],
    ["subject", { field: "SUBJECT", op: "CONTAINS", value: "invoice" }, { subject: "Your INVOICE 42" }, {}],
    [
      "body regex",
      { field: "BODY", op: "REGEX", value: "order #\\d{5}" },
      { text: "About order #12345 please" },
      { text: "About order #12 please" },
    ],
    [
      "header",
      { field: "HEADER", header: "X-Mailer", op: "CONTAINS", value: "shopware" },
      { headers: { "X-Mailer": "Shopware 6" } },
      { headers: { "X-Mailer": "Outlook" } },
    ],
    ["spam", { field: "SPAM", flag: true }, { headers: { "X-Spam-Flag": "YES" } }, {}],
    ["language", { field: "LANGUAGE", value: "de" }, { headers: { "Content-Language": "de-AT" } }, {}],
    [
      "received time",
      { field: "RECEIVED_TIME", calendarId: "CAL", inside: false },
      {}, // received 17:40: outside
      { date: "INSIDE" },
    ],
  ];
  for (const [name, condition, hit, miss] of cases) {
    it(`${name}`, async () => {
      const c = { ...condition };
      if (c.calendarId === "CAL") c.calendarId = encodeId("BusinessCalendar", calendarId);
      const addr = await addressWithRule(c);
      const missAt = miss.date === "INSIDE" ? new Date("2026-03-02T10:00:00Z") : undefined;
      const yes = await conv(await ingest(addr.addressId, hit));
      const no = await conv(await ingest(addr.addressId, { ...miss, date: undefined }, missAt));
      expect(yes.tags).toContain("hit");
      expect(no.tags).not.toContain("hit");
    });
  }

  it("contact attribute", async () => {
    await t.db.db
      .insert(contact)
      .values({ tenantId: t.tenantId, email: "gold@customer.example", attributes: { tier: "Gold" } });
    const addr = await addressWithRule({
      field: "CONTACT_ATTRIBUTE",
      key: "tier",
      op: "EQUALS",
      value: "gold",
    });
    expect((await conv(await ingest(addr.addressId, { from: "gold@customer.example" }))).tags).toContain(
      "hit",
    );
    expect((await conv(await ingest(addr.addressId, { from: "other@customer.example" }))).tags).not.toContain(
      "hit",
    );
  });
});

describe("actions at ingest", () => {
  it("sets queue, skills, priority, language, tags and picks an auto-reply, with rule.matched events", async () => {
    const addr = await createQueueWithAddress(t.db.db, t.tenantId, {
      addressFields: { requiredSkillIds: [skillB] },
    });
    const target = await createQueueWithAddress(t.db.db, t.tenantId);
    const a = encodeId("EmailAddress", addr.addressId);
    await createRule({
      addressId: a,
      name: "Route",
      conditions: [{ field: "SUBJECT", op: "CONTAINS", value: "rechnung" }],
      actions: [
        { type: "SET_QUEUE", queueId: encodeId("Queue", target.queueId) },
        { type: "ADD_SKILLS", skillIds: [encodeId("Skill", skillA)] },
        { type: "SET_PRIORITY", priority: 50 },
        { type: "SET_LANGUAGE", language: "de" },
        { type: "ADD_TAGS", tags: ["billing"] },
        { type: "SEND_AUTO_REPLY", templateId: encodeId("AutoReplyTemplate", templateId) },
      ],
    });
    await createRule({ addressId: a, name: "Not reached", conditions: [], actions: [{ type: "STOP" }] });
    const r = await ingest(addr.addressId, { subject: "Rechnung 7" });
    const c = await conv(r);
    expect(c).toMatchObject({ queueId: target.queueId, priority: 50, language: "de", tags: ["billing"] });
    expect(c.requiredSkillIds.sort()).toEqual([skillA, skillB].sort());
    expect(r).toMatchObject({ status: "stored", queueId: target.queueId });
    // The rule's template is what the auto-reply job will send (send-auto-reply.test.ts sends it).
    const jobs = await t.db.db.execute<{ template: string }>(
      sql`SELECT data->>'templateId' AS template FROM pgboss.job
          WHERE name = 'auto-reply' AND data->>'messageId' = ${r.status === "stored" ? r.messageId : ""}`,
    );
    expect(jobs.map((j) => j.template)).toEqual([templateId]);
    const events = await t.db.db.select().from(event).where(eq(event.conversationId, c.id)).orderBy(event.id);
    const matched = events.filter((e) => e.type === "rule.matched");
    expect(matched.map((e) => e.payload.name)).toEqual(["Route", "Not reached"]);
    expect(matched[0]!.payload).toMatchObject({
      reason: 'matched: subject CONTAINS "rechnung"',
      trace: [
        { matched: true, reason: 'matched: subject CONTAINS "rechnung"' },
        { matched: true, reason: "no conditions: always matches" },
      ],
    });
  });

  it("SET_SKILLS replaces the address's skills; STOP ends evaluation", async () => {
    const addr = await createQueueWithAddress(t.db.db, t.tenantId, {
      addressFields: { requiredSkillIds: [skillB] },
    });
    const a = encodeId("EmailAddress", addr.addressId);
    await createRule({
      addressId: a,
      name: "Skills",
      conditions: [],
      actions: [{ type: "SET_SKILLS", skillIds: [encodeId("Skill", skillA)] }, { type: "STOP" }],
    });
    await createRule({
      addressId: a,
      name: "Never",
      conditions: [],
      actions: [{ type: "ADD_TAGS", tags: ["no"] }],
    });
    const c = await conv(await ingest(addr.addressId));
    expect(c.requiredSkillIds).toEqual([skillA]);
    expect(c.tags).toEqual([]);
  });

  it("DROP records the mail as rejected (rule_dropped) with the rule on the event log", async () => {
    const addr = await createQueueWithAddress(t.db.db, t.tenantId);
    await createRule({
      addressId: encodeId("EmailAddress", addr.addressId),
      name: "Drop spam subjects",
      conditions: [{ field: "SUBJECT", op: "CONTAINS", value: "WIN MONEY" }],
      actions: [{ type: "DROP" }],
    });
    const r = await ingest(addr.addressId, { subject: "win money now" });
    expect(r).toMatchObject({ status: "rejected", reason: "rule_dropped" });
    const [rej] = await t.db.db
      .select()
      .from(rejectedMessage)
      .where(eq(rejectedMessage.id, r.status === "rejected" ? r.rejectedId : ""));
    expect(rej).toMatchObject({ reason: "rule_dropped", detail: 'dropped by rule "Drop spam subjects"' });

    // An admin releases it: the rule's drop is ignored, and it becomes a conversation.
    const released = await t.ok(
      `mutation($id: ID!) { releaseRejectedMessage(id: $id) { ... on IngestOutcome { status created } } }`,
      { id: encodeId("RejectedMessage", rej!.id) },
    );
    expect(released.releaseRejectedMessage).toEqual({ status: "stored", created: true });
  });

  it("an address's rules run first, then the tenant's, whatever their positions; STOP halts both", async () => {
    const addr = await createQueueWithAddress(t.db.db, t.tenantId);
    const other = await createQueueWithAddress(t.db.db, t.tenantId);
    const a = encodeId("EmailAddress", addr.addressId);
    await createRule({
      addressId: a,
      name: "Address",
      position: 5,
      conditions: [],
      actions: [
        { type: "SET_PRIORITY", priority: 1 },
        { type: "ADD_TAGS", tags: ["address"] },
      ],
    });
    await createRule({
      addressId: a,
      name: "Shield",
      position: 6,
      conditions: [{ field: "SUBJECT", op: "CONTAINS", value: "shield" }],
      actions: [{ type: "STOP" }],
    });
    await createRule({
      addressId: encodeId("EmailAddress", other.addressId),
      name: "Other address",
      conditions: [],
      actions: [{ type: "ADD_TAGS", tags: ["elsewhere"] }],
    });
    // Position 0 in the tenant's list still runs after every rule of the address.
    const tenantRule = await createRule({
      name: "Tenant",
      position: 0,
      conditions: [{ field: "SUBJECT", op: "CONTAINS", value: "tenant-wide" }],
      actions: [
        { type: "SET_PRIORITY", priority: 2 },
        { type: "ADD_TAGS", tags: ["tenant"] },
      ],
    });
    const both = await conv(await ingest(addr.addressId, { subject: "tenant-wide" }));
    expect(both.priority).toBe(2);
    expect(both.tags).toEqual(["address", "tenant"]);
    const matched = await t.db.db
      .select()
      .from(event)
      .where(eq(event.conversationId, both.id))
      .orderBy(event.id);
    expect(matched.filter((e) => e.type === "rule.matched").map((e) => e.payload.name)).toEqual([
      "Address",
      "Tenant",
    ]);
    // An address rule's STOP shields the mail from the tenant's rules too.
    const shielded = await conv(await ingest(addr.addressId, { subject: "tenant-wide shield" }));
    expect(shielded.priority).toBe(1);
    expect(shielded.tags).toEqual(["address"]);
    await t.ok(`mutation($id: ID!) { deleteRule(id: $id) { __typename } }`, { id: tenantRule.id });
  });
});

describe("received time, not processing time (SPEC §3)", () => {
  it("a mail received at 17:20 and processed at 17:40 after a backlog follows the 17:20 route", async () => {
    const addr = await createQueueWithAddress(t.db.db, t.tenantId);
    const day = await createQueueWithAddress(t.db.db, t.tenantId);
    const night = await createQueueWithAddress(t.db.db, t.tenantId);
    const a = encodeId("EmailAddress", addr.addressId);
    await createRule({
      addressId: a,
      name: "Open: day desk",
      conditions: [
        { field: "RECEIVED_TIME", calendarId: encodeId("BusinessCalendar", calendarId), inside: true },
      ],
      actions: [{ type: "SET_QUEUE", queueId: encodeId("Queue", day.queueId) }, { type: "STOP" }],
    });
    await createRule({
      addressId: a,
      name: "Closed: night desk",
      conditions: [],
      actions: [{ type: "SET_QUEUE", queueId: encodeId("Queue", night.queueId) }],
    });
    clock.set("2026-03-02T17:40:00Z"); // processing time: the desk closed at 17:30
    const late = await conv(await ingest(addr.addressId, {}, new Date("2026-03-02T17:20:00Z")));
    expect(late.queueId).toBe(day.queueId);
    expect(late.receivedAt).toEqual(new Date("2026-03-02T17:20:00Z"));
    const [ev] = (await t.db.db.select().from(event).where(eq(event.conversationId, late.id))).filter(
      (e) => e.type === "rule.matched",
    );
    expect(ev!.payload).toMatchObject({ name: "Open: day desk", receivedAt: "2026-03-02T17:20:00.000Z" });
    // Control: received after closing goes to the night desk.
    const after = await conv(await ingest(addr.addressId, {}, new Date("2026-03-02T17:35:00Z")));
    expect(after.queueId).toBe(night.queueId);
  });
});

describe("testRules dry run", () => {
  const TEST = `query($a: ID!, $raw: String!, $at: DateTime, $spam: Boolean) {
    testRules(addressId: $a, raw: $raw, receivedAt: $at, spam: $spam) {
      __typename
      ... on RuleTestResult { receivedAt matched { name reason actions { type queueId tags } }
        trace { name matched reason } outcome { queueId tags priority dropped autoReplyTemplateId } }
      ... on ValidationError { problems { field message } }
    }
  }`;

  it("shows which rules match and what they would do, storing nothing; ADMIN only", async () => {
    const addr = await createQueueWithAddress(t.db.db, t.tenantId);
    const a = encodeId("EmailAddress", addr.addressId);
    await createRule({
      addressId: a,
      name: "Urgent",
      conditions: [{ field: "SUBJECT", op: "CONTAINS", value: "urgent" }],
      actions: [
        { type: "SET_PRIORITY", priority: 90 },
        { type: "ADD_TAGS", tags: ["urgent"] },
      ],
    });
    await createRule({
      addressId: a,
      name: "After hours",
      conditions: [
        { field: "RECEIVED_TIME", calendarId: encodeId("BusinessCalendar", calendarId), inside: false },
      ],
      actions: [{ type: "SEND_AUTO_REPLY", templateId: encodeId("AutoReplyTemplate", templateId) }],
    });
    const raw = buildRawMail({ subject: "URGENT: down", messageId: "dry@customer.example" }).toString();
    // What an ingest of the mail would write. (Earlier tests' auto-replies and routing may
    // still be adding events of their own meanwhile: those are not counted.)
    const ingestEvents = async () =>
      (
        await t.db.db
          .select()
          .from(event)
          .where(
            inArray(event.type, [
              "message.received",
              "message.rejected",
              "conversation.created",
              "rule.matched",
            ]),
          )
      ).length;
    const before = await ingestEvents();
    const r = await t.ok(TEST, { a, raw, at: "2026-03-02T10:00:00Z" });
    expect(r.testRules).toEqual({
      __typename: "RuleTestResult",
      receivedAt: "2026-03-02T10:00:00.000Z",
      matched: [
        {
          name: "Urgent",
          reason: 'matched: subject CONTAINS "urgent"',
          actions: [
            { type: "SET_PRIORITY", queueId: null, tags: null },
            { type: "ADD_TAGS", queueId: null, tags: ["urgent"] },
          ],
        },
      ],
      trace: [
        { name: "Urgent", matched: true, reason: 'matched: subject CONTAINS "urgent"' },
        { name: "After hours", matched: false, reason: "not matched: received outside business hours (UTC)" },
      ],
      outcome: { queueId: null, tags: ["urgent"], priority: 90, dropped: false, autoReplyTemplateId: null },
    });
    const night = await t.ok(TEST, { a, raw, at: "2026-03-02T20:00:00Z" });
    expect(night.testRules.outcome.autoReplyTemplateId).toBe(encodeId("AutoReplyTemplate", templateId));
    expect(await ingestEvents()).toBe(before);
    const bad = await t.ok(TEST, { a, raw: "" });
    expect(bad.testRules).toEqual({
      __typename: "ValidationError",
      problems: [{ field: "raw", message: "must not be empty" }],
    });
  });
});
