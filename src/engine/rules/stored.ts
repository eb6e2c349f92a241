import type { BusinessCalendar } from "../domain.js";
import type { Action, Condition, ReceivedTimeCondition, Rule, RuleMatchMode } from "./types.js";

/**
 * Rules as the database holds them: like the engine's `Rule`, except that a
 * receivedTime condition names its calendar by id. `toEngineRules` swaps in the
 * calendar objects just before compiling, so a calendar edit applies to the next mail.
 */
export type StoredCondition =
  | Exclude<Condition, ReceivedTimeCondition>
  | { field: "receivedTime"; calendarId: string; inside: boolean };

export type StoredAction = Action;

export interface StoredRule {
  id: string;
  name: string;
  position: number;
  enabled: boolean;
  match: RuleMatchMode;
  conditions: StoredCondition[];
  actions: StoredAction[];
}

/** Calendar ids a rule list refers to. */
export function calendarIdsOf(rules: readonly StoredRule[]): string[] {
  const ids = new Set<string>();
  for (const r of rules) for (const c of r.conditions) if (c.field === "receivedTime") ids.add(c.calendarId);
  return [...ids];
}

/**
 * Engine rules from stored ones. A calendar that no longer exists (deleted since) makes
 * its condition fail closed: a calendar with no hours is never open, so `inside: true`
 * never holds and `inside: false` always does — the same answer as "closed".
 */
export function toEngineRules(
  rules: readonly StoredRule[],
  calendars: ReadonlyMap<string, BusinessCalendar>,
): Rule[] {
  return rules.map((r) => ({
    id: r.id,
    name: r.name,
    position: r.position,
    enabled: r.enabled,
    match: r.match,
    actions: r.actions,
    conditions: r.conditions.map((c): Condition => {
      if (c.field !== "receivedTime") return c;
      const calendar = calendars.get(c.calendarId) ?? { timeZone: "UTC", intervals: [], holidays: [] };
      return { field: "receivedTime", calendar, inside: c.inside };
    }),
  }));
}
