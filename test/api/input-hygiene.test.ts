import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { rule } from "../../src/db/schema/index.js";
import { createTenantWithAdmin } from "../../src/engine/auth.js";
import { startTestApp, type TestApp } from "../helpers/app.js";
import { globalId } from "../helpers/channel-fixtures.js";
import { createUserWithKey } from "../helpers/fixtures.js";

/**
 * Text PostgreSQL cannot store (NUL: 22021 in text, 22P05 in jsonb; an unpaired UTF-16
 * surrogate: 22P02 in jsonb) and control characters in one-line fields used to reach the
 * database and come back as a masked "Unexpected error."; empty updates crashed in drizzle
 * ("No values to set"), and a rule at position 2^31-1 broke every later createRule of its
 * list. Each must now be a typed result naming the field, or just work.
 */

let t: TestApp;
let seq = 0;
const uniq = (prefix: string) => `${prefix} ${++seq}`;

const NUL = "a\u0000b";
const LONE = "a\uD800b";
const CONTROL = "a\u0007b";
const TAB = "a\tb";
const LINE_BREAK = "a\r\nb";
/** Accepted everywhere: umlauts, an emoji with a skin-tone modifier (two surrogate pairs). */
const ONE_LINE = "Grüße aus Köln 👋🏽";
/** Accepted in bodies and descriptions: CR/LF and TAB are content there. */
const MULTI_LINE = "Hallo Jürgen,\r\nZeile 2\tmit Tab 🎉\nEnde";

const VALIDATION = "... on ValidationError { field problems { field message } }";

interface Problem {
  field: string;
  message: string;
}
type Result = Record<string, unknown> & { __typename: string; problems?: Problem[] };

/** `mutation(<defs>) { r: <call> { __typename <selection> } }`; a masked error fails the test. */
async function run(defs: string, call: string, vars: Record<string, unknown>, select = ""): Promise<Result> {
  const q = `mutation${defs ? `(${defs})` : ""} { r: ${call} { __typename ${VALIDATION} ${select} } }`;
  return (await t.ok(q, vars)).r as Result;
}

function expectProblem(r: Result, field: string, message: RegExp): void {
  expect(r.__typename, JSON.stringify(r)).toBe("ValidationError");
  expect(r.problems).toContainEqual({ field, message: expect.stringMatching(message) });
}

const NUL_MSG = /NUL|control characters/;
const UNICODE_MSG = /valid Unicode/;
const CONTROL_MSG = /control characters/;

interface TextCase {
  /** Mutation and field, for the test name. */
  name: string;
  defs: string;
  call: string;
  vars: (value: string) => Record<string, unknown>;
  /** The field the ValidationError names. */
  field: string;
  /** Names, subjects, reasons, tags, rule values: no control characters at all. */
  oneLine: boolean;
  /** Selection and typename of a success. */
  select: string;
  ok: string;
  /** The stored value in a success, when it is returned as given. */
  stored?: (r: Result) => unknown;
}

const ids: Record<string, string> = {};

const QUEUE = "... on Queue { id description }";
const TEAM = "... on Team { id name description }";
const SKILL = "... on Skill { id description }";
const SIGNATURE = "... on Signature { id text html }";
const CANNED = "... on CannedResponse { id subject text html }";
const AUTO_REPLY = "... on AutoReplyTemplate { id subject text html }";
const RULE = "... on Rule { id name conditions { value key } actions { tags } }";
const CALENDAR = "... on BusinessCalendar { id holidays { date name } }";

const ruleInput = (over: Record<string, unknown> = {}) => ({
  name: uniq("Rule"),
  conditions: [{ field: "SUBJECT", op: "CONTAINS", value: "invoice" }],
  actions: [{ type: "ADD_TAGS", tags: ["billing"] }],
  ...over,
});
const holidays = (name: string) => [{ date: "2031-01-01", name }];

/** What a create or update case of one text field varies in. */
interface FieldCase {
  /** The object type: `create<type>` / `update<type>`, and the typename of a success. */
  type: string;
  /** The input type of the mutation (default `<type>Input`). */
  inputType?: string;
  /** The text field, as the ValidationError names it (and the test's name, unless `label`). */
  field: string;
  label?: string;
  oneLine: boolean;
  select: string;
  /** The input with `v` in the field. */
  input: (v: string) => Record<string, unknown>;
  stored?: (r: Result) => unknown;
}

/** `create<type>(input: $input)` with `v` in one text field. */
const created = (c: FieldCase): TextCase => ({
  name: `create${c.type} ${c.label ?? c.field}`,
  defs: `$input: ${c.inputType ?? `${c.type}Input`}!`,
  call: `create${c.type}(input: $input)`,
  vars: (v) => ({ input: c.input(v) }),
  field: c.field,
  oneLine: c.oneLine,
  select: c.select,
  ok: c.type,
  stored: c.stored,
});

/** `update<type>(id: $id, input: $input)` of the object `ids[idKey]`, with `v` in one text field. */
const updated = (idKey: string, c: FieldCase): TextCase => ({
  ...created(c),
  name: `update${c.type} ${c.label ?? c.field}`,
  defs: `$id: ID!, $input: ${c.inputType ?? `${c.type}Input`}!`,
  call: `update${c.type}(id: $id, input: $input)`,
  vars: (v) => ({ id: ids[idKey], input: c.input(v) }),
});

const own = (field: string) => (r: Result) => r[field];

const CASES: TextCase[] = [
  created({
    type: "Queue",
    field: "description",
    oneLine: false,
    select: QUEUE,
    input: (v) => ({ name: uniq("Queue"), description: v }),
    stored: own("description"),
  }),
  updated("queue", {
    type: "Queue",
    field: "description",
    oneLine: false,
    select: QUEUE,
    input: (v) => ({ description: v }),
    stored: own("description"),
  }),
  created({
    type: "Team",
    field: "name",
    oneLine: true,
    select: TEAM,
    input: (v) => ({ name: `${v} ${++seq}` }),
  }),
  created({
    type: "Team",
    field: "description",
    oneLine: false,
    select: TEAM,
    input: (v) => ({ name: uniq("Team"), description: v }),
    stored: own("description"),
  }),
  updated("team", {
    type: "Team",
    field: "name",
    oneLine: true,
    select: TEAM,
    input: (v) => ({ name: v }),
    stored: own("name"),
  }),
  updated("team", {
    type: "Team",
    field: "description",
    oneLine: false,
    select: TEAM,
    input: (v) => ({ description: v }),
    stored: own("description"),
  }),
  created({
    type: "Skill",
    field: "description",
    oneLine: false,
    select: SKILL,
    input: (v) => ({ name: `skill-${++seq}`, description: v }),
    stored: own("description"),
  }),
  updated("skill", {
    type: "Skill",
    field: "description",
    oneLine: false,
    select: SKILL,
    input: (v) => ({ description: v }),
    stored: own("description"),
  }),
  {
    name: "createApiKey name",
    defs: "$name: String!, $userId: ID!",
    call: "createApiKey(name: $name, userId: $userId)",
    vars: (v) => ({ name: v, userId: ids["admin"] }),
    field: "name",
    oneLine: true,
    select: "... on CreatedApiKey { apiKey { name } }",
    ok: "CreatedApiKey",
    stored: (r) => (r["apiKey"] as { name: string }).name,
  },
  {
    name: "setPresence reason",
    defs: "$reason: String",
    call: "setPresence(presence: AWAY, reason: $reason)",
    vars: (v) => ({ reason: v }),
    field: "reason",
    oneLine: true,
    select: "... on User { presenceReason }",
    ok: "User",
    stored: (r) => r["presenceReason"],
  },
  {
    // A fresh agent: its first interruption writes the reason into the event's jsonb payload.
    name: "interruptAgent reason",
    defs: "$agentId: ID!, $reason: String",
    call: "interruptAgent(agentId: $agentId, reason: $reason)",
    vars: (v) => ({ agentId: ids["agent"], reason: v }),
    field: "reason",
    oneLine: true,
    select: "... on AgentInterruption { agentId }",
    ok: "AgentInterruption",
  },
  ...(["text", "html"] as const).flatMap((field): TextCase[] => {
    const c = (input: FieldCase["input"]): FieldCase => ({
      type: "Signature",
      field,
      oneLine: false,
      select: SIGNATURE,
      input,
      stored: field === "text" ? own("text") : undefined,
    });
    return [
      created(c((v) => ({ name: uniq("Signature"), [field]: v }))),
      updated(
        "signature",
        c((v) => ({ [field]: v })),
      ),
    ];
  }),
  ...(["subject", "text", "html"] as const).flatMap((field): TextCase[] => {
    const c = (type: string, select: string, input: FieldCase["input"]): FieldCase => ({
      type,
      field,
      oneLine: field === "subject",
      select,
      input,
      stored: field === "html" ? undefined : own(field),
    });
    return [
      created(c("CannedResponse", CANNED, (v) => ({ name: uniq("Canned"), [field]: v }))),
      updated(
        "canned",
        c("CannedResponse", CANNED, (v) => ({ [field]: v })),
      ),
      created(c("AutoReplyTemplate", AUTO_REPLY, (v) => ({ name: uniq("Auto"), [field]: v }))),
      updated(
        "autoReply",
        c("AutoReplyTemplate", AUTO_REPLY, (v) => ({ [field]: v })),
      ),
    ];
  }),
  created({
    type: "Rule",
    inputType: "CreateRuleInput",
    field: "name",
    oneLine: true,
    select: RULE,
    input: (v) => ruleInput({ name: v }),
    stored: own("name"),
  }),
  created({
    type: "Rule",
    inputType: "CreateRuleInput",
    field: "conditions[0].value",
    label: "conditions[].value",
    oneLine: true,
    select: RULE,
    input: (v) => ruleInput({ conditions: [{ field: "BODY", op: "CONTAINS", value: v }] }),
    stored: (r) => (r["conditions"] as { value: string }[])[0]?.value,
  }),
  created({
    type: "Rule",
    inputType: "CreateRuleInput",
    field: "conditions[0].value",
    label: "conditions[].value (REGEX)",
    oneLine: true,
    select: RULE,
    input: (v) => ruleInput({ conditions: [{ field: "SUBJECT", op: "REGEX", value: v }] }),
  }),
  created({
    type: "Rule",
    inputType: "CreateRuleInput",
    field: "conditions[0].key",
    label: "conditions[].key",
    oneLine: true,
    select: RULE,
    input: (v) =>
      ruleInput({ conditions: [{ field: "CONTACT_ATTRIBUTE", key: v, op: "EQUALS", value: "gold" }] }),
    stored: (r) => (r["conditions"] as { key: string }[])[0]?.key,
  }),
  created({
    type: "Rule",
    inputType: "CreateRuleInput",
    field: "actions[0].tags[1]",
    label: "actions[].tags[]",
    oneLine: true,
    select: RULE,
    // The emoji text is 19 UTF-16 units: within the 50 a tag may have.
    input: (v) => ruleInput({ actions: [{ type: "ADD_TAGS", tags: ["ok", v] }] }),
    stored: (r) => (r["actions"] as { tags: string[] }[])[0]?.tags[1],
  }),
  updated("rule", {
    type: "Rule",
    inputType: "UpdateRuleInput",
    field: "name",
    oneLine: true,
    select: RULE,
    input: (v) => ({ name: v }),
    stored: own("name"),
  }),
  updated("rule", {
    type: "Rule",
    inputType: "UpdateRuleInput",
    field: "conditions[1].value",
    label: "conditions[].value",
    oneLine: true,
    select: RULE,
    input: (v) => ({
      conditions: [
        { field: "FROM", op: "CONTAINS", value: "x" },
        { field: "SUBJECT", op: "EQUALS", value: v },
      ],
    }),
    stored: (r) => (r["conditions"] as { value: string }[])[1]?.value,
  }),
  updated("rule", {
    type: "Rule",
    inputType: "UpdateRuleInput",
    field: "actions[0].tags[0]",
    label: "actions[].tags[]",
    oneLine: true,
    select: RULE,
    input: (v) => ({ actions: [{ type: "ADD_TAGS", tags: [v] }] }),
    stored: (r) => (r["actions"] as { tags: string[] }[])[0]?.tags[0],
  }),
  created({
    type: "BusinessCalendar",
    field: "holidays[0].name",
    label: "holidays[].name",
    oneLine: true,
    select: CALENDAR,
    input: (v) => ({ name: uniq("Calendar"), timeZone: "Europe/Berlin", holidays: holidays(v) }),
    stored: (r) => (r["holidays"] as { name: string }[])[0]?.name,
  }),
  updated("calendar", {
    type: "BusinessCalendar",
    field: "holidays[0].name",
    label: "holidays[].name",
    oneLine: true,
    select: CALENDAR,
    input: (v) => ({ holidays: holidays(v) }),
    stored: (r) => (r["holidays"] as { name: string }[])[0]?.name,
  }),
];

async function createId(call: string, defs: string, vars: Record<string, unknown>): Promise<string> {
  const r = await run(defs, call, vars, "... on Node { id }");
  if (typeof r["id"] !== "string") throw new Error(`setup failed: ${JSON.stringify(r)}`);
  return r["id"];
}

beforeAll(async () => {
  t = await startTestApp();
  ids["admin"] = globalId("User", t.adminId);
  ids["agent"] = globalId("User", (await createUserWithKey(t.db.db, t.tenantId, "AGENT")).id);
  ids["queue"] = await createId("createQueue(input: $input)", "$input: QueueInput!", {
    input: { name: "Hygiene queue" },
  });
  ids["team"] = await createId("createTeam(input: $input)", "$input: TeamInput!", {
    input: { name: "Hygiene team" },
  });
  ids["skill"] = await createId("createSkill(input: $input)", "$input: SkillInput!", {
    input: { name: "hygiene" },
  });
  ids["signature"] = await createId("createSignature(input: $input)", "$input: SignatureInput!", {
    input: { name: "Hygiene signature", text: "--\nAcme" },
  });
  ids["canned"] = await createId("createCannedResponse(input: $input)", "$input: CannedResponseInput!", {
    input: { name: "Hygiene canned", text: "Thanks" },
  });
  ids["autoReply"] = await createId(
    "createAutoReplyTemplate(input: $input)",
    "$input: AutoReplyTemplateInput!",
    { input: { name: "Hygiene auto-reply", text: "We got it" } },
  );
  ids["rule"] = await createId("createRule(input: $input)", "$input: CreateRuleInput!", {
    input: ruleInput({ name: "Hygiene rule" }),
  });
  ids["calendar"] = await createId(
    "createBusinessCalendar(input: $input)",
    "$input: BusinessCalendarInput!",
    { input: { name: "Hygiene calendar", timeZone: "Europe/Berlin" } },
  );
  const account = await createId("createMailAccount(input: $input)", "$input: MailAccountInput!", {
    input: { name: "Hygiene in", imapHost: "imap.acme.test", imapUser: "u", smtpHost: "smtp.acme.test" },
  });
  ids["account"] = account;
  ids["outboundAccount"] = await createId("createMailAccount(input: $input)", "$input: MailAccountInput!", {
    input: { name: "Hygiene out", kind: "OUTBOUND_ONLY", smtpHost: "smtp.acme.test" },
  });
  ids["address"] = await createId("createEmailAddress(input: $input)", "$input: EmailAddressInput!", {
    input: { address: "hygiene@acme.test", name: "Hygiene", accountId: account },
  });
});
afterAll(async () => {
  await t?.stop();
});

describe("text fields refuse what PostgreSQL cannot store, naming the field", () => {
  it.each(CASES.map((c) => [c.name, c] as const))("%s", async (_name, c) => {
    expectProblem(await run(c.defs, c.call, c.vars(NUL), c.select), c.field, NUL_MSG);
    expectProblem(await run(c.defs, c.call, c.vars(LONE), c.select), c.field, UNICODE_MSG);
    if (c.oneLine) {
      for (const v of [CONTROL, TAB, LINE_BREAK, "a\u0085b", "a\u2028b"])
        expectProblem(await run(c.defs, c.call, c.vars(v), c.select), c.field, CONTROL_MSG);
    } else {
      // Only NUL among the control characters: CR/LF and TAB are content of a body.
      const r = await run(c.defs, c.call, c.vars(MULTI_LINE), c.select);
      expect(r.__typename, JSON.stringify(r)).toBe(c.ok);
      if (c.stored) expect(c.stored(r)).toBe(MULTI_LINE);
    }
    const r = await run(c.defs, c.call, c.vars(ONE_LINE), c.select);
    expect(r.__typename, JSON.stringify(r)).toBe(c.ok);
    if (c.stored) expect(c.stored(r)).toBe(ONE_LINE);
  });

  it("reports every bad field of a rule at once", async () => {
    const r = await run("$input: CreateRuleInput!", "createRule(input: $input)", {
      input: ruleInput({
        name: NUL,
        conditions: [{ field: "CONTACT_ATTRIBUTE", key: LONE, op: "CONTAINS", value: TAB }],
        actions: [{ type: "ADD_TAGS", tags: [NUL] }],
      }),
    });
    expect(r.__typename).toBe("ValidationError");
    expect(r.problems?.map((p) => p.field).sort()).toEqual([
      "actions[0].tags[0]",
      "conditions[0].key",
      "conditions[0].value",
      "name",
    ]);
  });
});

describe("importCalendarHolidays cleans SUMMARY instead of failing", () => {
  const IMPORT = `mutation($id: ID!, $ics: String!) {
    r: importCalendarHolidays(calendarId: $id, ics: $ics, replace: true) {
      __typename ${VALIDATION}
      ... on HolidayImport { imported skipped calendar { holidays { date name } } }
    }
  }`;
  const ics = (events: [string, string][]) =>
    `BEGIN:VCALENDAR\r\nVERSION:2.0\r\n${events
      .map(([d, s]) => `BEGIN:VEVENT\r\nDTSTART;VALUE=DATE:${d}\r\nSUMMARY:${s}\r\nEND:VEVENT\r\n`)
      .join("")}END:VCALENDAR\r\n`;

  it("turns control characters into spaces and unpaired surrogates into U+FFFD, and cuts at 100 without splitting a pair", async () => {
    const straddling = `${"x".repeat(99)}😀 tail`;
    const r = (
      await t.ok(IMPORT, {
        id: ids["calendar"],
        ics: ics([
          ["20311224", "Heilig\u0000abend"],
          ["20311225", `Weih\uD800nachten \uDC00${ONE_LINE}`],
          ["20311226", "Zweiter\tTag"],
          ["20311227", straddling],
          ["20311228", "\u0000\u0007"],
          ["20311229", "Drei\u0085Tage"],
        ]),
      })
    ).r;
    expect(r.__typename, JSON.stringify(r)).toBe("HolidayImport");
    expect(r.imported).toBe(6);
    expect(r.calendar.holidays).toEqual([
      { date: "2031-12-24", name: "Heilig abend" },
      { date: "2031-12-25", name: `Weih\uFFFDnachten \uFFFD${ONE_LINE}` },
      { date: "2031-12-26", name: "Zweiter Tag" },
      // 99 + 2 units would be 101: the emoji goes whole, never half of it.
      { date: "2031-12-27", name: "x".repeat(99) },
      { date: "2031-12-28", name: "Holiday" },
      { date: "2031-12-29", name: "Drei Tage" }, // NEL (C1): refused in names, so cleaned here
    ]);
    // What was imported is a valid calendar: saving it back unchanged is accepted.
    const again = await run(
      "$id: ID!, $input: BusinessCalendarInput!",
      "updateBusinessCalendar(id: $id, input: $input)",
      { id: ids["calendar"], input: { holidays: r.calendar.holidays } },
      CALENDAR,
    );
    expect(again.__typename, JSON.stringify(again)).toBe("BusinessCalendar");
  });

  it("keeps a pair that ends exactly at the limit", async () => {
    const name = `${"x".repeat(98)}😀`;
    const r = (await t.ok(IMPORT, { id: ids["calendar"], ics: ics([["20320101", `${name}more`]]) })).r;
    expect(r.calendar.holidays).toEqual([{ date: "2032-01-01", name }]);
  });
});

describe("an empty update returns the object unchanged", () => {
  const cases = [
    ["updateQueue", "QueueInput", "queue", "... on Queue { id name description updatedAt }"],
    ["updateSkill", "SkillInput", "skill", "... on Skill { id name description updatedAt }"],
    [
      "updateTeam",
      "TeamInput",
      "team",
      "... on Team { id name description inboxLimit { mode value } updatedAt }",
    ],
    [
      "updateEmailAddress",
      "EmailAddressInput",
      "address",
      "... on EmailAddress { id address name priority updatedAt }",
    ],
    [
      "updateMailAccount",
      "MailAccountInput",
      "account",
      "... on MailAccount { id name imapPort status updatedAt }",
    ],
    // Outbound-only: the derived columns (cleared IMAP settings) must not turn {} into a write.
    [
      "updateMailAccount",
      "MailAccountInput",
      "outboundAccount",
      "... on MailAccount { id name kind imapHost imapPort updatedAt }",
    ],
  ] as const;

  it.each(cases)("%s(%s) on %s", async (mutation, inputType, key, select) => {
    const before = await t.ok(`query($id: ID!) { node(id: $id) { __typename ${select} } }`, { id: ids[key] });
    expect(before.node?.id).toBe(ids[key]);
    const r = await run(
      `$id: ID!, $input: ${inputType}!`,
      `${mutation}(id: $id, input: $input)`,
      { id: ids[key], input: {} },
      select,
    );
    // Same fields, updatedAt included: nothing was written.
    expect(r).toEqual(before.node);
  });

  it.each(cases)(
    "%s(%s) with {} still answers NotFoundError for another tenant's %s",
    async (mutation, inputType, key) => {
      const other = await createTenantWithAdmin(t.db.db, {
        tenantName: uniq("Other"),
        adminEmail: `o${++seq}@other.test`,
      });
      const r = await t.ok(
        `mutation($id: ID!, $input: ${inputType}!) { r: ${mutation}(id: $id, input: $input) { __typename ... on NotFoundError { entity } } }`,
        { id: ids[key], input: {} },
        other.apiKey,
      );
      expect(r.r.__typename).toBe("NotFoundError");
    },
  );
});

describe("rule positions", () => {
  const CREATE = "createRule(input: $input)";
  const UPDATE = "updateRule(id: $id, input: $input)";
  const POS = "... on Rule { id position }";

  it.each([-1, 100_001, 2_147_483_647])("createRule refuses position %d", async (position) => {
    const r = await run("$input: CreateRuleInput!", CREATE, { input: ruleInput({ position }) }, POS);
    expectProblem(r, "position", /from 0 to 100000/);
  });

  it.each([-1, 100_001, 2_147_483_647])("updateRule refuses position %d", async (position) => {
    const r = await run(
      "$id: ID!, $input: UpdateRuleInput!",
      UPDATE,
      { id: ids["rule"], input: { position } },
      POS,
    );
    expectProblem(r, "position", /from 0 to 100000/);
  });

  it("accepts 0 and 100000, and a rule created after one at 100000 still gets a position", async () => {
    const address = await createId("createEmailAddress(input: $input)", "$input: EmailAddressInput!", {
      input: { address: "positions@acme.test", name: "Positions", accountId: ids["account"] },
    });
    const first = await run(
      "$input: CreateRuleInput!",
      CREATE,
      { input: ruleInput({ addressId: address, position: 0 }) },
      POS,
    );
    expect(first).toMatchObject({ __typename: "Rule", position: 0 });
    const last = await run(
      "$input: CreateRuleInput!",
      CREATE,
      { input: ruleInput({ addressId: address, position: 100_000 }) },
      POS,
    );
    expect(last).toMatchObject({ __typename: "Rule", position: 100_000 });
    const next = await run(
      "$input: CreateRuleInput!",
      CREATE,
      { input: ruleInput({ addressId: address }) },
      POS,
    );
    expect(next).toMatchObject({ __typename: "Rule", position: 100_000 });
    const moved = await run(
      "$id: ID!, $input: UpdateRuleInput!",
      UPDATE,
      { id: first["id"], input: { position: 100_000 } },
      POS,
    );
    expect(moved).toMatchObject({ __typename: "Rule", position: 100_000 });
  });

  it("a rule stored at int4's maximum before the bound neither breaks createRule nor blocks its own edits", async () => {
    const address = await createId("createEmailAddress(input: $input)", "$input: EmailAddressInput!", {
      input: { address: "legacy@acme.test", name: "Legacy", accountId: ids["account"] },
    });
    const addressId = Buffer.from(address, "base64").toString().split(":")[1]!;
    const [legacy] = await t.db.db
      .insert(rule)
      .values({
        tenantId: t.tenantId,
        addressId,
        name: "Legacy",
        position: 2_147_483_647,
        enabled: true,
        match: "ALL",
        conditions: [],
        actions: [{ type: "STOP" }],
      })
      .returning({ id: rule.id });
    // max(position) + 1 used to overflow int4 here (22003).
    const next = await run(
      "$input: CreateRuleInput!",
      CREATE,
      { input: ruleInput({ addressId: address }) },
      POS,
    );
    expect(next).toMatchObject({ __typename: "Rule", position: 100_000 });
    // The old position is not the caller's mistake: other fields can still change.
    const edited = await run(
      "$id: ID!, $input: UpdateRuleInput!",
      UPDATE,
      { id: globalId("Rule", legacy!.id), input: { enabled: false } },
      "... on Rule { position enabled }",
    );
    expect(edited).toMatchObject({ __typename: "Rule", position: 2_147_483_647, enabled: false });
  });
});
