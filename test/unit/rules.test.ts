import fc from "fast-check";
import { describe, expect, it } from "vitest";
import type { BusinessCalendar, IsoWeekday } from "../../src/engine/domain.js";
import { type CompiledRuleSet, compileRules, RULE_LIMITS } from "../../src/engine/rules/compile.js";
import { evaluateRules } from "../../src/engine/rules/evaluate.js";
import { REGEX_MAX_LENGTH, regexProblem } from "../../src/engine/rules/regex-guard.js";
import type { Action, Condition, Rule, RuleInput } from "../../src/engine/rules/types.js";

const berlinOffice: BusinessCalendar = {
  timeZone: "Europe/Berlin",
  intervals: ([1, 2, 3, 4, 5] as IsoWeekday[]).map((weekday) => ({ weekday, start: "08:00", end: "17:00" })),
  holidays: [],
};

const message: RuleInput = {
  from: "Alice.Smith@Example.com",
  to: ["support@switchboard.test", "sales@switchboard.test"],
  cc: [],
  subject: "Re: Order #123456 not delivered",
  bodyText: "Hello,\nmy parcel never arrived. IBAN: DE89 3704\nRegards",
  headers: { "x-priority": ["1"], received: ["from a", "from b"] },
  spam: false,
  language: "de-AT",
  contactAttributes: { tier: "Gold", region: "EMEA" },
  receivedAt: new Date("2026-01-05T09:00:00Z"), // Monday 10:00 in Berlin
};

function rule(id: string, conditions: Condition[], actions: Action[], extra: Partial<Rule> = {}): Rule {
  return { id, name: `Rule ${id}`, position: 0, enabled: true, conditions, match: "ALL", actions, ...extra };
}

function compile(rules: Rule[]): CompiledRuleSet {
  const result = compileRules(rules);
  if (!result.ok) throw new Error(JSON.stringify(result.errors));
  return result.ruleSet;
}

function holds(condition: Condition, overrides: Partial<RuleInput> = {}): boolean {
  const set = compile([rule("r", [condition], [{ type: "ADD_TAGS", tags: ["hit"] }])]);
  return evaluateRules(set, { ...message, ...overrides }).matched.length === 1;
}

describe("conditions", () => {
  it.each<[string, Condition, Partial<RuleInput>, boolean]>([
    ["from CONTAINS, case-insensitive", { field: "from", op: "CONTAINS", value: "@example.com" }, {}, true],
    [
      "from CONTAINS, case-sensitive",
      { field: "from", op: "CONTAINS", value: "@example.com", caseSensitive: true },
      {},
      false,
    ],
    [
      "from EQUALS the whole address",
      { field: "from", op: "EQUALS", value: "alice.smith@example.com" },
      {},
      true,
    ],
    [
      "from EQUALS a part is no match",
      { field: "from", op: "EQUALS", value: "alice.smith@example" },
      {},
      false,
    ],
    ["from NOT_CONTAINS", { field: "from", op: "NOT_CONTAINS", value: "@example.org" }, {}, true],
    ["from NOT_CONTAINS, present", { field: "from", op: "NOT_CONTAINS", value: "EXAMPLE" }, {}, false],
    ["from REGEX", { field: "from", op: "REGEX", value: "^alice\\.\\w+@" }, {}, true],
    ["to: any recipient EQUALS", { field: "to", op: "EQUALS", value: "sales@switchboard.test" }, {}, true],
    ["to: no recipient EQUALS", { field: "to", op: "EQUALS", value: "billing@switchboard.test" }, {}, false],
    [
      "to NOT_CONTAINS needs every recipient clean",
      { field: "to", op: "NOT_CONTAINS", value: "sales" },
      {},
      false,
    ],
    ["cc CONTAINS on an empty list", { field: "cc", op: "CONTAINS", value: "x" }, {}, false],
    ["cc NOT_CONTAINS on an empty list", { field: "cc", op: "NOT_CONTAINS", value: "x" }, {}, true],
    ["cc CONTAINS", { field: "cc", op: "CONTAINS", value: "boss@" }, { cc: ["Boss@corp.test"] }, true],
    ["subject CONTAINS", { field: "subject", op: "CONTAINS", value: "not delivered" }, {}, true],
    [
      "subject EQUALS",
      { field: "subject", op: "EQUALS", value: "re: order #123456 not delivered" },
      {},
      true,
    ],
    [
      "subject EQUALS empty matches an empty subject",
      { field: "subject", op: "EQUALS", value: "" },
      { subject: "" },
      true,
    ],
    [
      "subject REGEX, case-insensitive",
      { field: "subject", op: "REGEX", value: "^re:\\s*order\\s*#?\\d{5,8}" },
      {},
      true,
    ],
    [
      "subject REGEX, case-sensitive",
      { field: "subject", op: "REGEX", value: "^re:", caseSensitive: true },
      {},
      false,
    ],
    [
      "body CONTAINS across a line break",
      { field: "body", op: "CONTAINS", value: "hello,\nmy parcel" },
      {},
      true,
    ],
    ["body REGEX", { field: "body", op: "REGEX", value: "\\bIBAN\\b:?\\s*[A-Z]{2}\\d{2}" }, {}, true],
    ["body NOT_CONTAINS", { field: "body", op: "NOT_CONTAINS", value: "refund" }, {}, true],
    [
      "header EQUALS, name in any case",
      { field: "header", header: "X-Priority", op: "EQUALS", value: "1" },
      {},
      true,
    ],
    [
      "header with several values: any",
      { field: "header", header: "received", op: "EQUALS", value: "from b" },
      {},
      true,
    ],
    [
      "missing header CONTAINS",
      { field: "header", header: "List-Id", op: "CONTAINS", value: "x" },
      {},
      false,
    ],
    [
      "missing header NOT_CONTAINS",
      { field: "header", header: "List-Id", op: "NOT_CONTAINS", value: "x" },
      {},
      true,
    ],
    ["spam: false", { field: "spam", value: false }, {}, true],
    ["spam: true on ham", { field: "spam", value: true }, {}, false],
    ["spam: true on spam", { field: "spam", value: true }, { spam: true }, true],
    ["language: primary tag matches a region", { field: "language", op: "EQUALS", value: "de" }, {}, true],
    ["language: full tag, any case", { field: "language", op: "EQUALS", value: "DE-at" }, {}, true],
    ["language: other region", { field: "language", op: "EQUALS", value: "de-DE" }, {}, false],
    [
      "language: prefix of another language",
      { field: "language", op: "EQUALS", value: "de" },
      { language: "den" },
      false,
    ],
    ["language: unknown", { field: "language", op: "EQUALS", value: "de" }, { language: null }, false],
    [
      "contact attribute EQUALS",
      { field: "contactAttribute", key: "tier", op: "EQUALS", value: "gold" },
      {},
      true,
    ],
    [
      "contact attribute, case-sensitive",
      { field: "contactAttribute", key: "tier", op: "EQUALS", value: "gold", caseSensitive: true },
      {},
      false,
    ],
    [
      "contact attribute REGEX",
      { field: "contactAttribute", key: "region", op: "REGEX", value: "^(EMEA|APAC)$" },
      {},
      true,
    ],
    [
      "missing attribute EQUALS",
      { field: "contactAttribute", key: "vip", op: "EQUALS", value: "" },
      {},
      false,
    ],
    [
      "missing attribute NOT_CONTAINS",
      { field: "contactAttribute", key: "vip", op: "NOT_CONTAINS", value: "y" },
      {},
      true,
    ],
    [
      "inherited keys are no attributes",
      { field: "contactAttribute", key: "toString", op: "CONTAINS", value: "f" },
      {},
      false,
    ],
    [
      "received inside business hours",
      { field: "receivedTime", calendar: berlinOffice, inside: true },
      {},
      true,
    ],
    [
      "received outside business hours",
      { field: "receivedTime", calendar: berlinOffice, inside: false },
      {},
      false,
    ],
    [
      "received at 17:30 Berlin is outside",
      { field: "receivedTime", calendar: berlinOffice, inside: false },
      { receivedAt: new Date("2026-01-05T16:30:00Z") },
      true,
    ],
  ])("%s", (_label, condition, overrides, expected) => {
    expect(holds(condition, overrides)).toBe(expected);
  });

  it("matches bodies only on their first 64 KB, for every operator", () => {
    const long = `${"a".repeat(RULE_LIMITS.body)}needle`;
    expect(holds({ field: "body", op: "CONTAINS", value: "needle" }, { bodyText: long })).toBe(false);
    expect(holds({ field: "body", op: "REGEX", value: "needle" }, { bodyText: long })).toBe(false);
    expect(holds({ field: "body", op: "NOT_CONTAINS", value: "needle" }, { bodyText: long })).toBe(true);
    const short = `${"a".repeat(RULE_LIMITS.body - 6)}needle`;
    expect(holds({ field: "body", op: "CONTAINS", value: "needle" }, { bodyText: short })).toBe(true);
  });
});

describe("actions and outcome", () => {
  const always: Condition[] = [];
  it("combines setters (last wins) and additions (deduplicated, in order)", () => {
    const set = compile([
      rule(
        "a",
        always,
        [
          { type: "SET_QUEUE", queueId: "q1" },
          { type: "SET_SKILLS", skillIds: ["s1", "s2"] },
          { type: "SET_PRIORITY", priority: 5 },
          { type: "ADD_TAGS", tags: ["t1", "t2"] },
          { type: "SEND_AUTO_REPLY", templateId: "tpl-1" },
        ],
        { position: 1 },
      ),
      rule(
        "b",
        always,
        [
          { type: "SET_QUEUE", queueId: "q2" },
          { type: "ADD_SKILLS", skillIds: ["s2", "s3"] },
          { type: "SET_LANGUAGE", language: "fr" },
          { type: "ADD_TAGS", tags: ["t2", "t3"] },
          { type: "SET_PRIORITY", priority: 0 },
        ],
        { position: 2 },
      ),
    ]);
    expect(evaluateRules(set, message).outcome).toEqual({
      queueId: "q2",
      skillIds: ["s1", "s2", "s3"],
      priority: 0,
      language: "fr",
      tags: ["t1", "t2", "t3"],
      autoReplyTemplateId: "tpl-1",
      dropped: false,
    });
  });

  it("SET_SKILLS replaces earlier skills; an empty list clears them", () => {
    const set = compile([
      rule("a", always, [{ type: "ADD_SKILLS", skillIds: ["s1"] }], { position: 1 }),
      rule("b", always, [{ type: "SET_SKILLS", skillIds: [] }], { position: 2 }),
      rule("c", always, [{ type: "ADD_SKILLS", skillIds: ["s9"] }], { position: 3 }),
    ]);
    expect(evaluateRules(set, message).outcome.skillIds).toEqual(["s9"]);
  });

  it("no match leaves an empty outcome", () => {
    const set = compile([
      rule("a", [{ field: "spam", value: true }], [{ type: "SET_QUEUE", queueId: "spam" }]),
    ]);
    expect(evaluateRules(set, message)).toEqual({
      matched: [],
      outcome: { skillIds: [], tags: [], dropped: false },
      trace: [{ ruleId: "a", matched: false, reason: "not matched: spam is true" }],
    });
  });
});

describe("order, STOP, DROP and the trace", () => {
  const tag = (t: string): Action => ({ type: "ADD_TAGS", tags: [t] });
  const rules = [
    rule("late", [], [tag("late")], { position: 30 }),
    rule("first", [{ field: "subject", op: "CONTAINS", value: "order" }], [tag("first")], { position: 10 }),
    rule("off", [], [tag("off")], { position: 15, enabled: false }),
    rule("second", [{ field: "spam", value: true }], [tag("second")], { position: 20 }),
    rule("tie", [], [tag("tie")], { position: 20 }),
  ];

  it("runs in position order, ties in list order, and traces every rule", () => {
    const result = evaluateRules(compile(rules), message);
    expect(result.trace).toEqual([
      { ruleId: "first", matched: true, reason: 'matched: subject CONTAINS "order"' },
      { ruleId: "off", matched: false, reason: "disabled" },
      { ruleId: "second", matched: false, reason: "not matched: spam is true" },
      { ruleId: "tie", matched: true, reason: "no conditions: always matches" },
      { ruleId: "late", matched: true, reason: "no conditions: always matches" },
    ]);
    expect(result.matched.map((m) => m.ruleId)).toEqual(["first", "tie", "late"]);
    expect(result.outcome.tags).toEqual(["first", "tie", "late"]);
  });

  it("STOP applies its rule's actions, then ends evaluation", () => {
    const withStop = [...rules, rule("stop", [], [{ type: "STOP" }, tag("stopper")], { position: 12 })];
    const result = evaluateRules(compile(withStop), message);
    expect(result.outcome.tags).toEqual(["first", "stopper"]);
    expect(result.outcome.dropped).toBe(false);
    expect(result.trace.map((t) => [t.ruleId, t.matched])).toEqual([
      ["first", true],
      ["stop", true],
      ["off", false],
      ["second", false],
      ["tie", false],
      ["late", false],
    ]);
    expect(result.trace[4]?.reason).toBe('not evaluated: rule "Rule stop" stopped evaluation');
  });

  it("a STOP rule that does not match does not stop", () => {
    const withStop = [
      ...rules,
      rule("stop", [{ field: "spam", value: true }], [{ type: "STOP" }], { position: 12 }),
    ];
    expect(evaluateRules(compile(withStop), message).outcome.tags).toEqual(["first", "tie", "late"]);
  });

  it("DROP marks the message dropped and ends evaluation", () => {
    const withDrop = [
      ...rules,
      rule("drop", [{ field: "from", op: "CONTAINS", value: "example.com" }], [{ type: "DROP" }], {
        position: 18,
      }),
    ];
    const result = evaluateRules(compile(withDrop), message);
    expect(result.outcome).toMatchObject({ dropped: true, tags: ["first"] });
    expect(result.matched.map((m) => m.ruleId)).toEqual(["first", "drop"]);
    expect(result.trace.at(-1)).toEqual({
      ruleId: "late",
      matched: false,
      reason: 'not evaluated: rule "Rule drop" dropped the message',
    });
  });

  it.each([
    ["ALL, both hold", "ALL", [true, true], true, "all 2 conditions matched"],
    ["ALL, second fails", "ALL", [true, false], false, "not matched: spam is true"],
    ["ANY, second holds", "ANY", [false, true], true, "matched: spam is false"],
    ["ANY, none holds", "ANY", [false, false], false, "none of 2 conditions matched"],
  ] as const)("match %s", (_label, match, truth, expected, reason) => {
    const conds: Condition[] = truth.map((t, i) =>
      i === 0
        ? { field: "subject", op: t ? "CONTAINS" : "NOT_CONTAINS", value: "order" }
        : { field: "spam", value: !t },
    );
    const result = evaluateRules(compile([rule("r", conds, [tag("x")], { match })]), message);
    expect(result.trace[0]).toEqual({ ruleId: "r", matched: expected, reason });
  });

  it("matched entries carry the rule's actions, which callers cannot alter", () => {
    const set = compile([rule("r", [], [{ type: "ADD_TAGS", tags: ["a"] }])]);
    const first = evaluateRules(set, message).matched[0]?.actions[0];
    expect(first).toEqual({ type: "ADD_TAGS", tags: ["a"] });
    expect(() => {
      (first as { tags: string[] }).tags.push("b");
    }).toThrow(TypeError);
    expect(evaluateRules(set, message).outcome.tags).toEqual(["a"]);
  });
});

describe("regex guard", () => {
  it.each([
    ["(a+)+b", /repeated group/],
    ["(a*)*", /repeated group/],
    ["(\\w+\\s?)+$", /repeated group/],
    ["(?:ab*){2,}", /repeated group/],
    ["(a?a?)+", /repeated group/],
    ["((a+)b)+", /repeated group/],
    ["(a|ab)+c", /alternatives/],
    ["(?:x|y)*z", /alternatives/],
    ["(a)\\1", /back-references/],
    ["(?<n>a)\\k<n>", /back-references/],
    [".*a.*b", /two unbounded/],
    ["\\s*\\s*x", /two unbounded/],
    ["\\d+\\d+x", /two unbounded/],
    ["\\w+x\\w+y", /two unbounded/],
    ["a.{1,100}b.{1,100}c", /two unbounded/],
    ["x".repeat(REGEX_MAX_LENGTH + 1), /at most 500/],
    ["(unclosed", /not a valid regular expression/],
    ["[z-a]", /not a valid regular expression/],
  ])("refuses %s", (pattern, reason) => {
    expect(regexProblem(pattern, "i")).toMatch(reason);
  });

  it.each([
    "order\\s*#?\\d{5,8}",
    "^Re:",
    "\\w+@\\w+\\.com",
    "foo.*bar",
    "(?:Re|Fwd):\\s*",
    "[a-z]+x",
    "\\b(?:IBAN|BIC)\\b:?\\s*[A-Z]{2}\\d{2}",
    "^\\[#\\d+\\]",
    "(?<ticket>\\d{6})",
    "(ab)+c",
    "a{2,3}b",
    "[^@]+@[^@]+",
    "x".repeat(REGEX_MAX_LENGTH),
  ])("accepts %s", (pattern) => {
    expect(regexProblem(pattern, "i")).toBeNull();
  });

  it("refuses unsafe regexes at compile time with the condition's path", () => {
    const result = compileRules([
      rule("r", [{ field: "body", op: "REGEX", value: "(a+)+$" }], [{ type: "DROP" }]),
    ]);
    expect(result.ok).toBe(false);
    if (!result.ok) expect(result.errors.map((e) => e.field)).toEqual(["rules[0].conditions[0].value"]);
  });

  it("an accepted pattern stays polynomial on a hostile body", () => {
    const set = compile([
      rule("r", [{ field: "body", op: "REGEX", value: "\\w+@\\w+\\.com" }], [{ type: "DROP" }]),
    ]);
    const hostile = "a".repeat(4_000);
    const t0 = performance.now();
    evaluateRules(set, { ...message, bodyText: hostile });
    // Quadratic at worst; 4,000 chars take ~70 ms on the shared 2-core box, a cubic
    // pattern would take minutes. The bound is generous on purpose.
    expect(performance.now() - t0).toBeLessThan(2_000);
  });
});

describe("compileRules validation", () => {
  const ok = rule(
    "ok",
    [{ field: "subject", op: "CONTAINS", value: "x" }],
    [{ type: "SET_QUEUE", queueId: "q" }],
  );
  const fieldsOf = (rules: unknown[]) => {
    const result = compileRules(rules as Rule[]);
    return result.ok ? [] : result.errors.map((e) => e.field);
  };

  it("accepts a valid list", () => {
    expect(fieldsOf([ok])).toEqual([]);
  });

  it.each<[string, unknown[], string[]]>([
    ["not an object", [42], ["rules[0]"]],
    ["missing name and id", [{ ...ok, id: "", name: " " }], ["rules[0].id", "rules[0].name"]],
    ["duplicate id", [ok, { ...ok }], ["rules[1].id"]],
    [
      "bad position, enabled, match",
      [{ ...ok, position: Number.NaN, enabled: "yes", match: "SOME" }],
      ["rules[0].position", "rules[0].enabled", "rules[0].match"],
    ],
    [
      "unknown field",
      [{ ...ok, conditions: [{ field: "date", op: "EQUALS", value: "x" }] }],
      ["rules[0].conditions[0].field"],
    ],
    [
      "unknown op",
      [{ ...ok, conditions: [{ field: "subject", op: "STARTS_WITH", value: "x" }] }],
      ["rules[0].conditions[0].op"],
    ],
    [
      "empty CONTAINS",
      [{ ...ok, conditions: [{ field: "subject", op: "CONTAINS", value: "" }] }],
      ["rules[0].conditions[0].value"],
    ],
    [
      "value too long",
      [{ ...ok, conditions: [{ field: "subject", op: "CONTAINS", value: "x".repeat(1001) }] }],
      ["rules[0].conditions[0].value"],
    ],
    [
      "header without a valid name",
      [{ ...ok, conditions: [{ field: "header", header: "X Bad:", op: "EQUALS", value: "1" }] }],
      ["rules[0].conditions[0].header"],
    ],
    [
      "spam not boolean",
      [{ ...ok, conditions: [{ field: "spam", value: "true" }] }],
      ["rules[0].conditions[0].value"],
    ],
    [
      "language op and tag",
      [{ ...ok, conditions: [{ field: "language", op: "CONTAINS", value: "german" }] }],
      ["rules[0].conditions[0].op", "rules[0].conditions[0].value"],
    ],
    [
      "attribute without key",
      [{ ...ok, conditions: [{ field: "contactAttribute", key: "", op: "EQUALS", value: "x" }] }],
      ["rules[0].conditions[0].key"],
    ],
    [
      "invalid calendar",
      [
        {
          ...ok,
          conditions: [
            { field: "receivedTime", calendar: { ...berlinOffice, timeZone: "Nowhere/City" }, inside: 1 },
          ],
        },
      ],
      ["rules[0].conditions[0].inside", "rules[0].conditions[0].calendar.timeZone"],
    ],
    ["no actions", [{ ...ok, actions: [] }], ["rules[0].actions"]],
    ["unknown action", [{ ...ok, actions: [{ type: "FORWARD" }] }], ["rules[0].actions[0].type"]],
    ["queue id missing", [{ ...ok, actions: [{ type: "SET_QUEUE" }] }], ["rules[0].actions[0].queueId"]],
    [
      "template id blank",
      [{ ...ok, actions: [{ type: "SEND_AUTO_REPLY", templateId: " " }] }],
      ["rules[0].actions[0].templateId"],
    ],
    [
      "priority out of range",
      [{ ...ok, actions: [{ type: "SET_PRIORITY", priority: -1 }] }],
      ["rules[0].actions[0].priority"],
    ],
    [
      "priority fractional",
      [{ ...ok, actions: [{ type: "SET_PRIORITY", priority: 1.5 }] }],
      ["rules[0].actions[0].priority"],
    ],
    [
      "bad language",
      [{ ...ok, actions: [{ type: "SET_LANGUAGE", language: "deutsch!" }] }],
      ["rules[0].actions[0].language"],
    ],
    [
      "ADD_SKILLS empty",
      [{ ...ok, actions: [{ type: "ADD_SKILLS", skillIds: [] }] }],
      ["rules[0].actions[0].skillIds"],
    ],
    [
      "ADD_TAGS with a blank tag",
      [{ ...ok, actions: [{ type: "ADD_TAGS", tags: ["ok", ""] }] }],
      ["rules[0].actions[0].tags[1]"],
    ],
    [
      "tag too long",
      [{ ...ok, actions: [{ type: "ADD_TAGS", tags: ["x".repeat(51)] }] }],
      ["rules[0].actions[0].tags[0]"],
    ],
    [
      "problems in two rules at once",
      [
        { ...ok, id: "a", name: "" },
        { ...ok, id: "b", actions: [{ type: "SET_PRIORITY", priority: "high" }] },
      ],
      ["rules[0].name", "rules[1].actions[0].priority"],
    ],
    ["too many rules", Array.from({ length: 501 }, (_, i) => ({ ...ok, id: `r${i}` })), ["rules"]],
  ])("%s", (_label, rules, fields) => {
    expect(fieldsOf(rules)).toEqual(fields);
  });
});

describe("properties", () => {
  const text = fc.string({ maxLength: 200 });
  const input: fc.Arbitrary<RuleInput> = fc.record({
    from: text,
    to: fc.array(text, { maxLength: 3 }),
    cc: fc.array(text, { maxLength: 3 }),
    subject: text,
    bodyText: fc.string({ maxLength: 500 }),
    headers: fc.dictionary(
      fc.constantFrom("x-priority", "list-id", "received"),
      fc.array(text, { maxLength: 2 }),
    ),
    spam: fc.boolean(),
    language: fc.option(fc.constantFrom("de", "de-AT", "en", "fr"), { nil: null }),
    contactAttributes: fc.dictionary(fc.constantFrom("tier", "region"), text),
    receivedAt: fc.date({
      min: new Date("2025-01-01T00:00:00Z"),
      max: new Date("2027-12-31T00:00:00Z"),
      noInvalidDate: true,
    }),
  });
  const set = compile([
    rule("spam", [{ field: "spam", value: true }], [{ type: "DROP" }], { position: 1 }),
    rule(
      "vip",
      [{ field: "contactAttribute", key: "tier", op: "EQUALS", value: "gold" }],
      [{ type: "SET_PRIORITY", priority: 9 }, { type: "STOP" }],
      { position: 2 },
    ),
    rule(
      "order",
      [
        { field: "subject", op: "REGEX", value: "order\\s*#?\\d{5,8}" },
        { field: "body", op: "CONTAINS", value: "a" },
      ],
      [{ type: "SET_QUEUE", queueId: "orders" }],
      { position: 3, match: "ANY" },
    ),
    rule(
      "hours",
      [{ field: "receivedTime", calendar: berlinOffice, inside: false }],
      [{ type: "ADD_TAGS", tags: ["after-hours"] }],
      { position: 4 },
    ),
    rule("catch", [], [{ type: "ADD_TAGS", tags: ["seen"] }], { position: 5 }),
  ]);

  it("never throws, traces every rule once, and drops exactly spam", () => {
    fc.assert(
      fc.property(input, (m) => {
        const r = evaluateRules(set, m);
        expect(r.trace.map((t) => t.ruleId)).toEqual(["spam", "vip", "order", "hours", "catch"]);
        expect(r.outcome.dropped).toBe(m.spam);
        expect(r.matched.map((x) => x.ruleId)).toEqual(r.trace.filter((t) => t.matched).map((t) => t.ruleId));
        const stopped = r.matched.some((x) => x.ruleId === "spam" || x.ruleId === "vip");
        expect(r.outcome.tags.includes("seen")).toBe(!stopped);
      }),
      { numRuns: 300 },
    );
  });
});

describe("shared conditions", () => {
  it("tests an identical condition once per message and reports it for each rule", () => {
    let reads = 0;
    const counting = { ...message };
    Object.defineProperty(counting, "spam", {
      get: () => {
        reads++;
        return false;
      },
    });
    const cond: Condition = { field: "spam", value: false };
    const header: Condition = { field: "header", header: "X-Priority", op: "EQUALS", value: "1" };
    const set = compile([
      rule("a", [cond], [{ type: "ADD_TAGS", tags: ["a"] }], { position: 1 }),
      rule("b", [{ ...cond }, header], [{ type: "ADD_TAGS", tags: ["b"] }], { position: 2 }),
      rule("c", [{ ...header, caseSensitive: true }, { ...cond }], [{ type: "ADD_TAGS", tags: ["c"] }], {
        position: 3,
      }),
    ]);
    expect(set.conditionSlots).toBe(3);
    const result = evaluateRules(set, counting);
    expect(result.outcome.tags).toEqual(["a", "b", "c"]);
    expect(result.trace.map((t) => t.reason)).toEqual([
      "matched: spam is false",
      "all 2 conditions matched",
      "all 2 conditions matched",
    ]);
    expect(reads).toBe(1);
  });
});
