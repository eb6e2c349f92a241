import {
  createRule,
  deleteRule,
  getRule,
  listRules,
  type RuleRow,
  type RuleTestResult,
  testRules,
  updateRule,
} from "../engine/rules/service.js";
import type { StoredAction, StoredCondition } from "../engine/rules/stored.js";
import {
  ACTION_TYPES,
  RULE_MATCH_MODES,
  type RuleOutcome,
  type RuleTraceEntry,
  TEXT_OPS,
  type TextOp,
} from "../engine/rules/types.js";
import { builder } from "./builder.js";
import { standardErrors } from "./errors.js";
import { decodeId, decodeIds, encodeId } from "./ids.js";
import { loadVisible } from "./load.js";

/**
 * Routing rules (SPEC §7): CRUD for the tenant's and each address's ordered rule list,
 * and the `testRules` dry run. Conditions and actions are flat typed objects whose
 * `field` / `type` says which of their fields apply; the engine's compiler validates
 * them and names each bad field (`conditions[1].value`).
 */

const FIELD_NAMES = {
  FROM: "from",
  TO: "to",
  CC: "cc",
  SUBJECT: "subject",
  BODY: "body",
  HEADER: "header",
  SPAM: "spam",
  LANGUAGE: "language",
  CONTACT_ATTRIBUTE: "contactAttribute",
  RECEIVED_TIME: "receivedTime",
} as const;
type GqlField = keyof typeof FIELD_NAMES;
const GQL_FIELD = Object.fromEntries(Object.entries(FIELD_NAMES).map(([k, v]) => [v, k])) as Record<
  StoredCondition["field"],
  GqlField
>;

const RuleFieldEnum = builder.enumType("RuleConditionField", {
  description:
    "What a condition tests: FROM/TO/CC addresses, SUBJECT, BODY (plain text, first 64 KiB), HEADER (name in " +
    "`header`), SPAM verdict (`flag`), LANGUAGE, CONTACT_ATTRIBUTE (name in `key`), or RECEIVED_TIME inside/outside " +
    "a calendar's hours (`calendarId`, `inside`) — the time the mail was received, not processed.",
  values: Object.keys(FIELD_NAMES) as GqlField[],
});
const TextOpEnum = builder.enumType("RuleTextOp", {
  description:
    "CONTAINS, EQUALS, REGEX (screened for catastrophic backtracking, 500 characters at most) or NOT_CONTAINS; " +
    "case-insensitive unless `caseSensitive`.",
  values: TEXT_OPS,
});
const MatchModeEnum = builder.enumType("RuleMatchMode", {
  description: "ALL conditions must hold, or ANY one; a rule without conditions always matches.",
  values: RULE_MATCH_MODES,
});
const ActionTypeEnum = builder.enumType("RuleActionType", {
  description:
    "SET_QUEUE, SET_SKILLS (replace), ADD_SKILLS, SET_PRIORITY, SET_LANGUAGE, ADD_TAGS, SEND_AUTO_REPLY (a template), " +
    "DROP (the mail is recorded as rejected with reason rule_dropped, never lost) or STOP (no later rule runs).",
  values: ACTION_TYPES,
});

const RuleConditionRef = builder.objectRef<StoredCondition>("RuleCondition").implement({
  description: "One condition of a rule; which fields are set depends on `field`.",
  fields: (t) => ({
    field: t.field({
      type: RuleFieldEnum,
      description: "What is tested.",
      resolve: (c) => GQL_FIELD[c.field],
    }),
    op: t.field({
      type: TextOpEnum,
      nullable: true,
      description: "The text test; null for SPAM and RECEIVED_TIME.",
      resolve: (c) => ("op" in c ? c.op : null),
    }),
    value: t.string({
      nullable: true,
      description: "The text to compare with (a pattern for REGEX); null for SPAM and RECEIVED_TIME.",
      resolve: (c) => (c.field === "spam" || c.field === "receivedTime" ? null : c.value),
    }),
    header: t.string({
      nullable: true,
      description: "Header field name, for HEADER.",
      resolve: (c) => (c.field === "header" ? (c.header ?? null) : null),
    }),
    key: t.string({
      nullable: true,
      description: "Contact attribute name, for CONTACT_ATTRIBUTE.",
      resolve: (c) => (c.field === "contactAttribute" ? c.key : null),
    }),
    caseSensitive: t.boolean({
      description: "Whether text comparison respects case.",
      resolve: (c) => ("caseSensitive" in c ? (c.caseSensitive ?? false) : false),
    }),
    flag: t.boolean({
      nullable: true,
      description: "For SPAM: true matches mail with a spam verdict, false mail without.",
      resolve: (c) => (c.field === "spam" ? c.value : null),
    }),
    calendarId: t.id({
      nullable: true,
      description: "For RECEIVED_TIME: global ID of the business-hours calendar.",
      resolve: (c) => (c.field === "receivedTime" ? encodeId("BusinessCalendar", c.calendarId) : null),
    }),
    inside: t.boolean({
      nullable: true,
      description: "For RECEIVED_TIME: true = received during opening hours, false = outside them.",
      resolve: (c) => (c.field === "receivedTime" ? c.inside : null),
    }),
  }),
});

const RuleActionRef = builder.objectRef<StoredAction>("RuleAction").implement({
  description: "One action of a rule; which fields are set depends on `type`.",
  fields: (t) => ({
    type: t.field({ type: ActionTypeEnum, description: "What the action does.", resolve: (a) => a.type }),
    queueId: t.id({
      nullable: true,
      description: "SET_QUEUE: global ID of the queue.",
      resolve: (a) => (a.type === "SET_QUEUE" ? encodeId("Queue", a.queueId) : null),
    }),
    skillIds: t.idList({
      nullable: true,
      description: "SET_SKILLS / ADD_SKILLS: global IDs of the skills.",
      resolve: (a) =>
        a.type === "SET_SKILLS" || a.type === "ADD_SKILLS"
          ? a.skillIds.map((s) => encodeId("Skill", s))
          : null,
    }),
    priority: t.int({
      nullable: true,
      description: "SET_PRIORITY: the priority.",
      resolve: (a) => (a.type === "SET_PRIORITY" ? a.priority : null),
    }),
    language: t.string({
      nullable: true,
      description: "SET_LANGUAGE: a language tag such as de or de-AT.",
      resolve: (a) => (a.type === "SET_LANGUAGE" ? a.language : null),
    }),
    tags: t.stringList({
      nullable: true,
      description: "ADD_TAGS: the tags.",
      resolve: (a) => (a.type === "ADD_TAGS" ? a.tags : null),
    }),
    templateId: t.id({
      nullable: true,
      description: "SEND_AUTO_REPLY: global ID of the auto-reply template.",
      resolve: (a) => (a.type === "SEND_AUTO_REPLY" ? encodeId("AutoReplyTemplate", a.templateId) : null),
    }),
  }),
});

export const RuleRef = builder.objectRef<RuleRow>("Rule");
builder.node(RuleRef, {
  description:
    "A routing rule: conditions on an incoming mail → actions. SUPERVISOR or ADMIN may read, ADMIN change.",
  id: { resolve: (r) => r.id },
  loadOne: loadVisible(RuleRef, getRule),
  fields: (t) => ({
    name: t.exposeString("name", { description: "Shown in traces and on the timeline." }),
    addressId: t.id({
      nullable: true,
      description:
        "Global ID of the address whose list it belongs to; null = the tenant's list (runs after the address's).",
      resolve: (r) => (r.addressId ? encodeId("EmailAddress", r.addressId) : null),
    }),
    position: t.exposeInt("position", { description: "Order within its list, ascending." }),
    enabled: t.exposeBoolean("enabled", { description: "Disabled rules are skipped (and traced as such)." }),
    match: t.field({
      type: MatchModeEnum,
      description: "ALL or ANY of the conditions.",
      resolve: (r) => r.match,
    }),
    conditions: t.field({
      type: [RuleConditionRef],
      description: "The conditions.",
      resolve: (r) => r.conditions,
    }),
    actions: t.field({
      type: [RuleActionRef],
      description: "The actions, at least one.",
      resolve: (r) => r.actions,
    }),
    createdAt: t.expose("createdAt", { type: "DateTime", description: "When it was created." }),
    updatedAt: t.expose("updatedAt", { type: "DateTime", description: "Last change." }),
  }),
});

const RuleConditionInput = builder.inputType("RuleConditionInput", {
  description: "A condition; set the fields its `field` needs (see RuleCondition).",
  fields: (t) => ({
    field: t.field({ type: RuleFieldEnum, required: true, description: "What is tested." }),
    op: t.field({
      type: TextOpEnum,
      description: "Text test, for text fields and CONTACT_ATTRIBUTE; LANGUAGE is always EQUALS.",
    }),
    value: t.string({
      description: "Text to compare with (or REGEX pattern); the language tag for LANGUAGE.",
    }),
    header: t.string({ description: "For HEADER: the header field name." }),
    key: t.string({ description: "For CONTACT_ATTRIBUTE: the attribute name." }),
    caseSensitive: t.boolean({ description: "Respect case (default false)." }),
    flag: t.boolean({ description: "For SPAM: match spam (true) or not spam (false)." }),
    calendarId: t.id({ description: "For RECEIVED_TIME: global ID of a business-hours calendar." }),
    inside: t.boolean({ description: "For RECEIVED_TIME: inside (true) or outside (false) opening hours." }),
  }),
});

const RuleActionInput = builder.inputType("RuleActionInput", {
  description: "An action; set the fields its `type` needs (see RuleAction).",
  fields: (t) => ({
    type: t.field({ type: ActionTypeEnum, required: true, description: "What the action does." }),
    queueId: t.id({ description: "SET_QUEUE: global ID of a queue." }),
    skillIds: t.idList({ description: "SET_SKILLS / ADD_SKILLS: global IDs of skills." }),
    priority: t.int({ description: "SET_PRIORITY: 0–1,000,000." }),
    language: t.string({ description: "SET_LANGUAGE: a language tag." }),
    tags: t.stringList({ description: "ADD_TAGS: tags, 50 characters each at most." }),
    templateId: t.id({ description: "SEND_AUTO_REPLY: global ID of an auto-reply template." }),
  }),
});

type ConditionIn = typeof RuleConditionInput.$inferInput;
type ActionIn = typeof RuleActionInput.$inferInput;

// Absent inputs stay undefined so the compiler reports them by field ("conditions[0].value: must be text").
function toCondition(c: ConditionIn): StoredCondition {
  const field = FIELD_NAMES[c.field as GqlField];
  const caseSensitive = c.caseSensitive ?? undefined;
  switch (field) {
    case "spam":
      return { field, value: c.flag as boolean };
    case "language":
      return { field, op: "EQUALS", value: c.value as string };
    case "receivedTime":
      return {
        field,
        calendarId: c.calendarId ? decodeId(String(c.calendarId), "BusinessCalendar") : "",
        inside: c.inside as boolean,
      };
    case "contactAttribute":
      return { field, key: c.key as string, op: c.op as TextOp, value: c.value as string, caseSensitive };
    default:
      return {
        field,
        ...(field === "header" ? { header: c.header as string } : {}),
        op: c.op as TextOp,
        value: c.value as string,
        caseSensitive,
      };
  }
}

function toAction(a: ActionIn): StoredAction {
  switch (a.type) {
    case "SET_QUEUE":
      return { type: a.type, queueId: a.queueId ? decodeId(String(a.queueId), "Queue") : "" };
    case "SET_SKILLS":
    case "ADD_SKILLS":
      return { type: a.type, skillIds: decodeIds((a.skillIds ?? []).map(String), "Skill") };
    case "SET_PRIORITY":
      return { type: a.type, priority: a.priority as number };
    case "SET_LANGUAGE":
      return { type: a.type, language: a.language as string };
    case "ADD_TAGS":
      return { type: a.type, tags: a.tags ?? [] };
    case "SEND_AUTO_REPLY":
      return {
        type: a.type,
        templateId: a.templateId ? decodeId(String(a.templateId), "AutoReplyTemplate") : "",
      };
    default:
      return { type: a.type };
  }
}

const CreateRuleInput = builder.inputType("CreateRuleInput", {
  description: "A new rule.",
  fields: (t) => ({
    addressId: t.id({ description: "Global ID of an email address; omitted = the tenant-wide list." }),
    name: t.string({ required: true, description: "1–100 characters." }),
    position: t.int({ description: "Order in its list; omitted = after the last rule." }),
    enabled: t.boolean({ description: "Default true." }),
    match: t.field({ type: MatchModeEnum, description: "Default ALL." }),
    conditions: t.field({
      type: [RuleConditionInput],
      required: true,
      description: "Up to 20; empty = always.",
    }),
    actions: t.field({ type: [RuleActionInput], required: true, description: "1–20 actions." }),
  }),
});

const UpdateRuleInput = builder.inputType("UpdateRuleInput", {
  description: "Changes to a rule; omitted fields keep their value. Lists replace the old list.",
  fields: (t) => ({
    name: t.string({ description: "1–100 characters." }),
    position: t.int({ description: "New order in its list." }),
    enabled: t.boolean({ description: "Switch the rule on or off." }),
    match: t.field({ type: MatchModeEnum, description: "ALL or ANY." }),
    conditions: t.field({ type: [RuleConditionInput], description: "Replaces the conditions." }),
    actions: t.field({ type: [RuleActionInput], description: "Replaces the actions." }),
  }),
});

builder.queryField("rules", (t) =>
  t.withAuth({ supervisor: true }).field({
    type: [RuleRef],
    description:
      "The rules of one list in evaluation order: an address's, or the tenant's when `addressId` is omitted. " +
      "At ingest an address's rules run first, then the tenant's. SUPERVISOR or ADMIN.",
    errors: { types: standardErrors },
    args: {
      addressId: t.arg.id({ description: "Global ID of an email address; omitted = tenant-wide rules." }),
    },
    resolve: (_root, args, ctx) =>
      listRules(
        ctx.engine,
        ctx.viewer,
        args.addressId ? decodeId(String(args.addressId), "EmailAddress") : null,
      ),
  }),
);

builder.mutationField("createRule", (t) =>
  t.withAuth({ admin: true }).field({
    type: RuleRef,
    description:
      "Adds a rule. Every invalid field is reported at once (ValidationError.problems). ADMIN only.",
    errors: { types: standardErrors },
    args: { input: t.arg({ type: CreateRuleInput, required: true, description: "The rule." }) },
    resolve: (_root, { input }, ctx) =>
      createRule(ctx.engine, ctx.viewer, {
        addressId: input.addressId ? decodeId(String(input.addressId), "EmailAddress") : null,
        name: input.name,
        position: input.position ?? null,
        enabled: input.enabled ?? true,
        match: input.match ?? "ALL",
        conditions: input.conditions.map(toCondition),
        actions: input.actions.map(toAction),
      }),
  }),
);

builder.mutationField("updateRule", (t) =>
  t.withAuth({ admin: true }).field({
    type: RuleRef,
    description: "Changes a rule; the result is validated as a whole. ADMIN only.",
    errors: { types: standardErrors },
    args: {
      id: t.arg.id({ required: true, description: "Global ID of the rule." }),
      input: t.arg({ type: UpdateRuleInput, required: true, description: "The changes." }),
    },
    resolve: (_root, { id, input }, ctx) =>
      updateRule(ctx.engine, ctx.viewer, decodeId(String(id), "Rule"), {
        name: input.name ?? undefined,
        position: input.position ?? undefined,
        enabled: input.enabled ?? undefined,
        match: input.match ?? undefined,
        conditions: input.conditions?.map(toCondition),
        actions: input.actions?.map(toAction),
      }),
  }),
);

const DeleteRulePayload = builder.objectRef<{ id: string }>("DeleteRulePayload").implement({
  description: "The rule that was deleted.",
  fields: (t) => ({
    deletedRuleId: t.id({
      description: "Global ID of the deleted rule.",
      resolve: (p) => encodeId("Rule", p.id),
    }),
  }),
});

builder.mutationField("deleteRule", (t) =>
  t.withAuth({ admin: true }).field({
    type: DeleteRulePayload,
    description: "Deletes a rule; mail already routed keeps its timeline. ADMIN only.",
    errors: { types: standardErrors },
    args: { id: t.arg.id({ required: true, description: "Global ID of the rule." }) },
    resolve: async (_root, { id }, ctx) => ({
      id: await deleteRule(ctx.engine, ctx.viewer, decodeId(String(id), "Rule")),
    }),
  }),
);

const RuleTraceRef = builder.objectRef<RuleTraceEntry & { name: string }>("RuleTraceEntry").implement({
  description: "One rule's verdict in evaluation order.",
  fields: (t) => ({
    ruleId: t.id({ description: "Global ID of the rule.", resolve: (e) => encodeId("Rule", e.ruleId) }),
    name: t.exposeString("name", { description: "The rule's name." }),
    matched: t.exposeBoolean("matched", { description: "Whether it matched." }),
    reason: t.exposeString("reason", {
      description: "Why: the condition that decided, `disabled`, or that an earlier rule stopped or dropped.",
    }),
  }),
});

const RuleTestMatchRef = builder
  .objectRef<{ ruleId: string; name: string; reason: string; actions: readonly StoredAction[] }>(
    "RuleTestMatch",
  )
  .implement({
    description: "A rule that matched, with what it would do.",
    fields: (t) => ({
      ruleId: t.id({ description: "Global ID of the rule.", resolve: (m) => encodeId("Rule", m.ruleId) }),
      name: t.exposeString("name", { description: "The rule's name." }),
      reason: t.exposeString("reason", { description: "Why it matched." }),
      actions: t.field({
        type: [RuleActionRef],
        description: "Its actions.",
        resolve: (m) => [...m.actions],
      }),
    }),
  });

const RuleOutcomeRef = builder.objectRef<RuleOutcome>("RuleOutcome").implement({
  description: "The combined effect of all matched rules (later setters win; skills and tags accumulate).",
  fields: (t) => ({
    queueId: t.id({
      nullable: true,
      description: "The queue rules chose; null = the address's routing.",
      resolve: (o) => (o.queueId ? encodeId("Queue", o.queueId) : null),
    }),
    skillIds: t.idList({
      description: "Skills set or added.",
      resolve: (o) => o.skillIds.map((s) => encodeId("Skill", s)),
    }),
    priority: t.int({
      nullable: true,
      description: "Priority set, if any.",
      resolve: (o) => o.priority ?? null,
    }),
    language: t.string({
      nullable: true,
      description: "Language set, if any.",
      resolve: (o) => o.language ?? null,
    }),
    tags: t.exposeStringList("tags", { description: "Tags added." }),
    autoReplyTemplateId: t.id({
      nullable: true,
      description: "Auto-reply template chosen, if any.",
      resolve: (o) => (o.autoReplyTemplateId ? encodeId("AutoReplyTemplate", o.autoReplyTemplateId) : null),
    }),
    dropped: t.exposeBoolean("dropped", { description: "The mail would be dropped (recorded as rejected)." }),
  }),
});

const RuleTestResultRef = builder.objectRef<RuleTestResult>("RuleTestResult").implement({
  description: "What the rules would do with a message; nothing was stored.",
  fields: (t) => ({
    receivedAt: t.expose("receivedAt", {
      type: "DateTime",
      description: "The received time evaluated with.",
    }),
    matched: t.field({
      type: [RuleTestMatchRef],
      description: "Matched rules in order.",
      resolve: (r) =>
        r.evaluation.matched.map((m) => ({
          ...m,
          reason: r.evaluation.trace.find((e) => e.ruleId === m.ruleId)?.reason ?? "",
        })),
    }),
    trace: t.field({
      type: [RuleTraceRef],
      description: "Every rule's verdict in evaluation order (the address's rules, then the tenant's).",
      resolve: (r) => {
        const names = new Map(r.rules.map((x) => [x.id, x.name]));
        return r.evaluation.trace.map((e) => ({ ...e, name: names.get(e.ruleId) ?? "" }));
      },
    }),
    outcome: t.field({
      type: RuleOutcomeRef,
      description: "The combined effect.",
      resolve: (r) => r.evaluation.outcome,
    }),
  }),
});

builder.queryField("testRules", (t) =>
  t.withAuth({ admin: true }).field({
    type: RuleTestResultRef,
    description:
      "Dry run: parses a raw message and shows which rules of the address (then the tenant) match and what they " +
      "would do, as ingest would at `receivedAt`. Stores nothing. ADMIN only.",
    errors: { types: standardErrors },
    args: {
      addressId: t.arg.id({ required: true, description: "Global ID of the receiving email address." }),
      raw: t.arg.string({
        required: true,
        description: "The message: RFC 822 text, or base64 when `base64` is true.",
      }),
      base64: t.arg.boolean({ description: "Whether `raw` is base64-encoded." }),
      receivedAt: t.arg({ type: "DateTime", description: "Received time to evaluate with; default now." }),
      spam: t.arg.boolean({ description: "Evaluate as if a spam verdict was found (default false)." }),
    },
    resolve: (_root, args, ctx) =>
      testRules(ctx.engine, ctx.viewer, {
        addressId: decodeId(String(args.addressId), "EmailAddress"),
        raw: args.base64 ? Buffer.from(args.raw, "base64") : Buffer.from(args.raw, "utf8"),
        receivedAt: args.receivedAt ?? null,
        spam: args.spam ?? null,
      }),
  }),
);
