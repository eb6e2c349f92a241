import type { BusinessCalendar } from "../domain.js";
import type { FieldProblem } from "../errors.js";
import { isOpen, validateCalendar } from "../time/calendar.js";
import { regexProblem } from "./regex-guard.js";
import {
  ACTION_TYPES,
  type Action,
  RULE_MATCH_MODES,
  type Rule,
  type RuleInput,
  TEXT_FIELDS,
  TEXT_OPS,
  type TextOp,
} from "./types.js";

/**
 * Validation and precompilation of a rule list: every regex is screened and compiled
 * once, values are lower-cased once, and each condition becomes a closure over a
 * per-message view that lower-cases and truncates each message field at most once.
 */

export const RULE_LIMITS = {
  rules: 500,
  conditionsPerRule: 20,
  actionsPerRule: 20,
  name: 100,
  value: 1_000,
  id: 100,
  listItems: 50,
  tag: 50,
  /** Bodies are cut to this many UTF-16 units before any test, bounding match time. */
  body: 65_536,
  priorityMin: 0,
  priorityMax: 1_000_000,
  /** Room for 500 rules and gaps between them, far from int4's end when the next is "last + 1". */
  positionMin: 0,
  positionMax: 100_000,
} as const;

/**
 * One message as rules see it, with lazily derived forms. A rule set compiled once is
 * evaluated against many views; a view lives for one evaluation.
 */
export class MessageView {
  private readonly slots = new Map<string, readonly string[]>();
  constructor(readonly input: RuleInput) {}

  /** A field's values (`key`), computed once per message; `lowerKey` caches the lower-cased form. */
  values(key: string, compute: (m: RuleInput) => readonly string[]): readonly string[] {
    let v = this.slots.get(key);
    if (v === undefined) {
      v = compute(this.input);
      this.slots.set(key, v);
    }
    return v;
  }

  lowerValues(
    key: string,
    lowerKey: string,
    compute: (m: RuleInput) => readonly string[],
  ): readonly string[] {
    let v = this.slots.get(lowerKey);
    if (v === undefined) {
      v = this.values(key, compute).map((s) => s.toLowerCase());
      this.slots.set(lowerKey, v);
    }
    return v;
  }
}

export interface CompiledCondition {
  /**
   * Identical conditions in different rules share one compiled condition and one slot,
   * so a message is tested against each distinct condition at most once.
   */
  readonly slot: number;
  /** Shown in traces: `subject CONTAINS "invoice"`. */
  readonly description: string;
  readonly test: (view: MessageView) => boolean;
  /** Trace reasons, built once here rather than per message. */
  readonly matchedReason: string;
  readonly failedReason: string;
}

interface ConditionSpec {
  /** Identity for sharing: two conditions with the same key always agree. */
  key: string;
  description: string;
  test: (view: MessageView) => boolean;
}

export interface CompiledRule {
  readonly id: string;
  readonly name: string;
  readonly position: number;
  readonly enabled: boolean;
  readonly match: "ALL" | "ANY";
  readonly conditions: readonly CompiledCondition[];
  readonly actions: readonly Action[];
  readonly drops: boolean;
  readonly stops: boolean;
  /** Rule-level trace reasons: no conditions, all of several matched, none of several. */
  readonly reasons: { readonly always: string; readonly all: string; readonly none: string };
}

/** A validated rule list in evaluation order; build it with `compileRules`. */
export interface CompiledRuleSet {
  readonly rules: readonly CompiledRule[];
  /** Number of distinct conditions (slots) across all rules. */
  readonly conditionSlots: number;
}

export type CompileResult = { ok: true; ruleSet: CompiledRuleSet } | { ok: false; errors: FieldProblem[] };

const EMPTY: readonly string[] = [];

const isString = (v: unknown): v is string => typeof v === "string";
const isRecord = (v: unknown): v is Record<string, unknown> => typeof v === "object" && v !== null;

// RFC 9110 §5.6.2 token: what a header field name may consist of.
const HEADER_NAME_RE = /^[!#$%&'*+.^_`|~0-9A-Za-z-]{1,100}$/;
// BCP 47 shape, loosely: "de", "de-AT", "zh-Hant-TW".
const LANGUAGE_RE = /^[A-Za-z]{2,3}(-[A-Za-z0-9]{2,8}){0,3}$/;

function quote(value: string): string {
  const shown = value.length > 80 ? `${value.slice(0, 77)}...` : value;
  return JSON.stringify(shown);
}

function fieldGetter(field: string, name: string): [string, (m: RuleInput) => readonly string[]] {
  switch (field) {
    case "from":
      return ["from", (m) => (isString(m.from) ? [m.from] : EMPTY)];
    case "to":
      return ["to", (m) => m.to ?? EMPTY];
    case "cc":
      return ["cc", (m) => m.cc ?? EMPTY];
    case "subject":
      return ["subject", (m) => [m.subject ?? ""]];
    case "body":
      return ["body", (m) => [(m.bodyText ?? "").slice(0, RULE_LIMITS.body)]];
    case "header":
      return [`h:${name}`, (m) => m.headers?.[name] ?? EMPTY];
    default:
      return [
        `a:${name}`,
        (m) =>
          Object.hasOwn(m.contactAttributes ?? {}, name) ? [m.contactAttributes[name] as string] : EMPTY,
      ];
  }
}

function textTest(
  op: TextOp,
  value: string,
  caseSensitive: boolean,
  key: string,
  get: (m: RuleInput) => readonly string[],
): (view: MessageView) => boolean {
  if (op === "REGEX") {
    const re = new RegExp(value, caseSensitive ? "" : "i");
    return (view) => view.values(key, get).some((s) => re.test(s));
  }
  const needle = caseSensitive ? value : value.toLowerCase();
  const lowerKey = `${key}\u0000lower`;
  const read = caseSensitive
    ? (view: MessageView) => view.values(key, get)
    : (view: MessageView) => view.lowerValues(key, lowerKey, get);
  switch (op) {
    case "CONTAINS":
      return (view) => read(view).some((s) => s.includes(needle));
    case "NOT_CONTAINS":
      return (view) => !read(view).some((s) => s.includes(needle));
    default:
      return (view) => read(view).some((s) => s === needle);
  }
}

/** Validates one condition and, when valid, compiles it. */
function conditionSpec(c: unknown, path: string, errors: FieldProblem[]): ConditionSpec | null {
  const before = errors.length;
  const add = (field: string, message: string) => errors.push({ field: `${path}.${field}`, message });
  if (!isRecord(c)) {
    errors.push({ field: path, message: "must be an object" });
    return null;
  }
  const field = c["field"];
  if (field === "spam") {
    if (typeof c["value"] !== "boolean") add("value", "must be true or false");
    if (errors.length > before) return null;
    const want = c["value"] as boolean;
    return { key: `spam|${want}`, description: `spam is ${want}`, test: (v) => v.input.spam === want };
  }
  if (field === "language") {
    if (c["op"] !== "EQUALS") add("op", "must be EQUALS");
    if (!isString(c["value"]) || !LANGUAGE_RE.test(c["value"]))
      add("value", 'must be a language tag such as "de" or "de-AT"');
    if (errors.length > before) return null;
    const want = (c["value"] as string).toLowerCase();
    const prefix = `${want}-`;
    return {
      key: `language|${want}`,
      description: `language EQUALS ${quote(want)}`,
      test: (v) => {
        const lang = v.input.language?.toLowerCase();
        return lang !== undefined && (lang === want || lang.startsWith(prefix));
      },
    };
  }
  if (field === "receivedTime") {
    if (typeof c["inside"] !== "boolean") add("inside", "must be true or false");
    const cal = c["calendar"];
    if (!isRecord(cal)) add("calendar", "must be a business-hours calendar");
    else {
      for (const p of validateCalendar(cal as unknown as BusinessCalendar))
        add(`calendar.${p.field}`, p.message);
    }
    if (errors.length > before) return null;
    const calendar = cal as unknown as BusinessCalendar;
    const inside = c["inside"] as boolean;
    return {
      key: `received|${objectId(calendar)}|${inside}`,
      description: `received ${inside ? "inside" : "outside"} business hours (${calendar.timeZone})`,
      test: (v) => isOpen(calendar, v.input.receivedAt) === inside,
    };
  }
  const isAttribute = field === "contactAttribute";
  if (!isAttribute && !(TEXT_FIELDS as readonly unknown[]).includes(field)) {
    add(
      "field",
      `must be one of ${[...TEXT_FIELDS, "spam", "language", "contactAttribute", "receivedTime"].join(", ")}`,
    );
    return null;
  }
  let name = "";
  if (field === "header") {
    if (!isString(c["header"]) || !HEADER_NAME_RE.test(c["header"]))
      add("header", "must be a header field name");
    else name = c["header"].toLowerCase();
  }
  if (isAttribute) {
    if (!isString(c["key"]) || c["key"].length === 0 || c["key"].length > RULE_LIMITS.name) {
      add("key", `must be an attribute name of 1–${RULE_LIMITS.name} characters`);
    } else name = c["key"];
  }
  const op = c["op"];
  if (!(TEXT_OPS as readonly unknown[]).includes(op)) add("op", `must be one of ${TEXT_OPS.join(", ")}`);
  const caseSensitive = c["caseSensitive"] ?? false;
  if (typeof caseSensitive !== "boolean") add("caseSensitive", "must be true or false");
  const value = c["value"];
  if (!isString(value)) add("value", "must be text");
  else if (value.length > RULE_LIMITS.value) add("value", `at most ${RULE_LIMITS.value} characters`);
  else if (value.length === 0 && op !== "EQUALS") add("value", "must not be empty");
  else if (op === "REGEX" && typeof caseSensitive === "boolean") {
    const problem = regexProblem(value, caseSensitive ? "" : "i");
    if (problem !== null) add("value", problem);
  }
  if (errors.length > before) return null;
  const [key, get] = fieldGetter(field as string, name);
  const label = field === "header" ? `header ${name}` : isAttribute ? `contact.${name}` : (field as string);
  return {
    key: `${field === "header" ? "h" : isAttribute ? "a" : field}|${name}|${op}|${caseSensitive}|${value}`,
    description: `${label} ${op} ${quote(value as string)}${caseSensitive ? " (case-sensitive)" : ""}`,
    test: textTest(op as TextOp, value as string, caseSensitive as boolean, key, get),
  };
}

// Calendars are compared by identity: the caller resolves each calendar id to one object.
const objectIds = new WeakMap<object, number>();
let nextObjectId = 0;
function objectId(o: object): number {
  let id = objectIds.get(o);
  if (id === undefined) {
    id = nextObjectId++;
    objectIds.set(o, id);
  }
  return id;
}

function compileCondition(
  c: unknown,
  path: string,
  errors: FieldProblem[],
  shared: Map<string, CompiledCondition>,
): CompiledCondition | null {
  const spec = conditionSpec(c, path, errors);
  if (spec === null) return null;
  const existing = shared.get(spec.key);
  if (existing !== undefined) return existing;
  const compiled: CompiledCondition = {
    slot: shared.size,
    description: spec.description,
    test: spec.test,
    matchedReason: `matched: ${spec.description}`,
    failedReason: `not matched: ${spec.description}`,
  };
  shared.set(spec.key, compiled);
  return compiled;
}

function idList(
  v: unknown,
  path: string,
  errors: FieldProblem[],
  allowEmpty: boolean,
  max: number,
): string[] {
  if (!Array.isArray(v) || (!allowEmpty && v.length === 0) || v.length > RULE_LIMITS.listItems) {
    errors.push({
      field: path,
      message: `must be a list of ${allowEmpty ? 0 : 1}–${RULE_LIMITS.listItems} entries`,
    });
    return [];
  }
  const out: string[] = [];
  v.forEach((item, i) => {
    if (!isString(item) || item.trim().length === 0 || item.length > max) {
      errors.push({ field: `${path}[${i}]`, message: `must be non-empty text of at most ${max} characters` });
    } else if (!out.includes(item.trim())) out.push(item.trim());
  });
  return out;
}

/** Validates one action and returns a normalised copy. */
function compileAction(a: unknown, path: string, errors: FieldProblem[]): Action | null {
  const before = errors.length;
  if (!isRecord(a) || !(ACTION_TYPES as readonly unknown[]).includes(a["type"])) {
    errors.push({ field: `${path}.type`, message: `must be one of ${ACTION_TYPES.join(", ")}` });
    return null;
  }
  const id = (key: string) => {
    const v = a[key];
    if (!isString(v) || v.trim().length === 0 || v.length > RULE_LIMITS.id) {
      errors.push({ field: `${path}.${key}`, message: `must be an id of 1–${RULE_LIMITS.id} characters` });
      return "";
    }
    return v;
  };
  let action: Action;
  switch (a["type"]) {
    case "SET_QUEUE":
      action = { type: "SET_QUEUE", queueId: id("queueId") };
      break;
    case "SEND_AUTO_REPLY":
      action = { type: "SEND_AUTO_REPLY", templateId: id("templateId") };
      break;
    case "SET_SKILLS":
      action = {
        type: "SET_SKILLS",
        skillIds: idList(a["skillIds"], `${path}.skillIds`, errors, true, RULE_LIMITS.id),
      };
      break;
    case "ADD_SKILLS":
      action = {
        type: "ADD_SKILLS",
        skillIds: idList(a["skillIds"], `${path}.skillIds`, errors, false, RULE_LIMITS.id),
      };
      break;
    case "ADD_TAGS":
      action = { type: "ADD_TAGS", tags: idList(a["tags"], `${path}.tags`, errors, false, RULE_LIMITS.tag) };
      break;
    case "SET_PRIORITY": {
      const p = a["priority"];
      if (
        !Number.isInteger(p) ||
        (p as number) < RULE_LIMITS.priorityMin ||
        (p as number) > RULE_LIMITS.priorityMax
      ) {
        errors.push({
          field: `${path}.priority`,
          message: `must be a whole number from ${RULE_LIMITS.priorityMin} to ${RULE_LIMITS.priorityMax}`,
        });
      }
      action = { type: "SET_PRIORITY", priority: p as number };
      break;
    }
    case "SET_LANGUAGE": {
      const l = a["language"];
      if (!isString(l) || !LANGUAGE_RE.test(l)) {
        errors.push({ field: `${path}.language`, message: 'must be a language tag such as "de" or "de-AT"' });
      }
      action = { type: "SET_LANGUAGE", language: l as string };
      break;
    }
    case "DROP":
      action = { type: "DROP" };
      break;
    default:
      action = { type: "STOP" };
  }
  if (errors.length > before) return null;
  // Frozen because evaluations hand these very objects out in their results.
  for (const v of Object.values(action)) if (Array.isArray(v)) Object.freeze(v);
  return Object.freeze(action);
}

/**
 * Validates a rule list and compiles it for `evaluateRules`. Every problem is reported
 * at once with its path (`rules[3].conditions[1].value`); nothing is compiled unless
 * the whole list is valid, so a stored rule set is always runnable.
 */
export function compileRules(rules: readonly Rule[]): CompileResult {
  const errors: FieldProblem[] = [];
  if (!Array.isArray(rules)) return { ok: false, errors: [{ field: "rules", message: "must be a list" }] };
  if (rules.length > RULE_LIMITS.rules)
    errors.push({ field: "rules", message: `at most ${RULE_LIMITS.rules} rules` });
  const ids = new Set<string>();
  const shared = new Map<string, CompiledCondition>();
  const compiled: (CompiledRule & { index: number })[] = [];
  (rules as readonly unknown[]).forEach((r, index) => {
    const path = `rules[${index}]`;
    const before = errors.length;
    if (!isRecord(r)) {
      errors.push({ field: path, message: "must be an object" });
      return;
    }
    const add = (field: string, message: string) => errors.push({ field: `${path}.${field}`, message });
    const id = r["id"];
    if (!isString(id) || id.length === 0 || id.length > RULE_LIMITS.id)
      add("id", `must be 1–${RULE_LIMITS.id} characters`);
    else if (ids.has(id)) add("id", `duplicate rule id ${quote(id)}`);
    else ids.add(id);
    const name = r["name"];
    if (!isString(name) || name.trim().length === 0 || name.length > RULE_LIMITS.name) {
      add("name", `must be 1–${RULE_LIMITS.name} characters`);
    }
    if (typeof r["position"] !== "number" || !Number.isFinite(r["position"]))
      add("position", "must be a number");
    if (typeof r["enabled"] !== "boolean") add("enabled", "must be true or false");
    if (!(RULE_MATCH_MODES as readonly unknown[]).includes(r["match"])) add("match", "must be ALL or ANY");
    const conditions: CompiledCondition[] = [];
    const rawConditions = r["conditions"];
    if (!Array.isArray(rawConditions)) add("conditions", "must be a list");
    else if (rawConditions.length > RULE_LIMITS.conditionsPerRule) {
      add("conditions", `at most ${RULE_LIMITS.conditionsPerRule} conditions`);
    } else {
      rawConditions.forEach((c, j) => {
        const cc = compileCondition(c, `${path}.conditions[${j}]`, errors, shared);
        if (cc !== null) conditions.push(cc);
      });
    }
    const actions: Action[] = [];
    const rawActions = r["actions"];
    if (!Array.isArray(rawActions) || rawActions.length === 0)
      add("actions", "must list at least one action");
    else if (rawActions.length > RULE_LIMITS.actionsPerRule)
      add("actions", `at most ${RULE_LIMITS.actionsPerRule} actions`);
    else {
      rawActions.forEach((a, j) => {
        const ca = compileAction(a, `${path}.actions[${j}]`, errors);
        if (ca !== null) actions.push(ca);
      });
    }
    if (errors.length > before) return;
    compiled.push({
      index,
      id: id as string,
      name: name as string,
      position: r["position"] as number,
      enabled: r["enabled"] as boolean,
      match: r["match"] as "ALL" | "ANY",
      conditions,
      actions,
      drops: actions.some((a) => a.type === "DROP"),
      stops: actions.some((a) => a.type === "STOP"),
      reasons: {
        always: "no conditions: always matches",
        all:
          conditions.length === 1
            ? `matched: ${conditions[0]?.description}`
            : `all ${conditions.length} conditions matched`,
        none:
          conditions.length === 1
            ? `not matched: ${conditions[0]?.description}`
            : `none of ${conditions.length} conditions matched`,
      },
    });
  });
  if (errors.length > 0) return { ok: false, errors };
  compiled.sort((a, b) => a.position - b.position || a.index - b.index);
  return {
    ok: true,
    ruleSet: { rules: compiled.map(({ index: _, ...rule }) => rule), conditionSlots: shared.size },
  };
}
