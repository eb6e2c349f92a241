import { type CompiledCondition, type CompiledRule, type CompiledRuleSet, MessageView } from "./compile.js";
import type { RuleEvaluation, RuleInput, RuleMatch, RuleOutcome, RuleTraceEntry } from "./types.js";

/**
 * Runs a compiled rule set against one message (SPEC §7). Pure and synchronous: the
 * ingest pipeline applies the outcome and writes the trace to the timeline; the
 * `testRules` dry run returns it as is.
 *
 * Order: ascending `position`. A matched rule applies all of its actions; if they
 * include DROP the message is dropped and evaluation ends, if they include STOP
 * evaluation ends after this rule. Disabled rules and rules after the end are traced
 * with the reason they did not run.
 */

/** Per-message results of shared conditions: 0 = not tested yet, 1 = holds, 2 = fails. */
type Memo = Uint8Array;

function holds(c: CompiledCondition, view: MessageView, memo: Memo): boolean {
  let r = memo[c.slot];
  if (r === 0) {
    r = c.test(view) ? 1 : 2;
    memo[c.slot] = r;
  }
  return r === 1;
}

function conditionsHold(rule: CompiledRule, view: MessageView, memo: Memo): [boolean, string] {
  const conds = rule.conditions;
  if (conds.length === 0) return [true, rule.reasons.always];
  if (rule.match === "ALL") {
    for (const c of conds) if (!holds(c, view, memo)) return [false, c.failedReason];
    return [true, rule.reasons.all];
  }
  for (const c of conds) if (holds(c, view, memo)) return [true, c.matchedReason];
  return [false, rule.reasons.none];
}

function addAll(target: string[], items: readonly string[]): void {
  for (const item of items) if (!target.includes(item)) target.push(item);
}

function apply(rule: CompiledRule, outcome: RuleOutcome): void {
  for (const a of rule.actions) {
    switch (a.type) {
      case "SET_QUEUE":
        outcome.queueId = a.queueId;
        break;
      case "SET_SKILLS":
        outcome.skillIds = [...a.skillIds];
        break;
      case "ADD_SKILLS":
        addAll(outcome.skillIds, a.skillIds);
        break;
      case "SET_PRIORITY":
        outcome.priority = a.priority;
        break;
      case "SET_LANGUAGE":
        outcome.language = a.language;
        break;
      case "ADD_TAGS":
        addAll(outcome.tags, a.tags);
        break;
      case "SEND_AUTO_REPLY":
        outcome.autoReplyTemplateId = a.templateId;
        break;
      case "DROP":
        outcome.dropped = true;
        break;
      default:
        break;
    }
  }
}

export function evaluateRules(ruleSet: CompiledRuleSet, message: RuleInput): RuleEvaluation {
  const view = new MessageView(message);
  const memo: Memo = new Uint8Array(ruleSet.conditionSlots);
  const matched: RuleMatch[] = [];
  const trace: RuleTraceEntry[] = [];
  const outcome: RuleOutcome = { skillIds: [], tags: [], dropped: false };
  let endedBy: string | null = null;
  for (const rule of ruleSet.rules) {
    if (endedBy !== null) {
      trace.push({ ruleId: rule.id, matched: false, reason: endedBy });
      continue;
    }
    if (!rule.enabled) {
      trace.push({ ruleId: rule.id, matched: false, reason: "disabled" });
      continue;
    }
    const [ok, reason] = conditionsHold(rule, view, memo);
    trace.push({ ruleId: rule.id, matched: ok, reason });
    if (!ok) continue;
    matched.push({ ruleId: rule.id, name: rule.name, actions: rule.actions });
    apply(rule, outcome);
    if (rule.drops) endedBy = `not evaluated: rule ${JSON.stringify(rule.name)} dropped the message`;
    else if (rule.stops) endedBy = `not evaluated: rule ${JSON.stringify(rule.name)} stopped evaluation`;
  }
  return { matched, outcome, trace };
}
