/**
 * Effective inbox limit of an agent (SPEC §1, §8 eligibility): the agent's own setting
 * overrides the team's, the team's overrides the system default.
 */

import { effectiveInboxLimit as routingLimit } from "../routing/eligibility.js";
import { DEFAULT_INBOX_LIMIT, type InboxLimit } from "../routing/types.js";

/** Used when neither the agent nor its team sets a limit: the one routing enforces. */
export const SYSTEM_DEFAULT_INBOX_LIMIT = DEFAULT_INBOX_LIMIT;

export interface InboxLimitSetting {
  /** null = not set here (inherit), unless `inboxLimitOff`. */
  inboxLimit: number | null;
  /** OFF: no automatic delivery. */
  inboxLimitOff: boolean;
}

export type InboxLimitSource = "AGENT" | "TEAM" | "SYSTEM";

export interface EffectiveInboxLimit {
  /** The most conversations auto-delivered at once; null when `off`. */
  limit: number | null;
  off: boolean;
  /** Which level decided. */
  source: InboxLimitSource;
}

/**
 * The first level that says something wins: an agent's explicit number beats a team's OFF
 * (one agent can keep receiving work in a team switched off), and an agent's OFF beats any
 * team number. An archived team's values keep applying until the agent is moved, so
 * archiving a team never silently changes who receives work.
 */
export function effectiveInboxLimit(
  agent: InboxLimitSetting,
  team: InboxLimitSetting | null,
): EffectiveInboxLimit {
  const level = (l: InboxLimitSetting | null): InboxLimit | null =>
    l === null ? null : l.inboxLimitOff ? "OFF" : l.inboxLimit;
  const a = level(agent);
  const t = level(team);
  // One precedence rule for display and for routing: routing's decides, this only says who.
  const limit = routingLimit(a, t, SYSTEM_DEFAULT_INBOX_LIMIT);
  const source: InboxLimitSource = a !== null ? "AGENT" : t !== null ? "TEAM" : "SYSTEM";
  return limit === "OFF" ? { limit: null, off: true, source } : { limit, off: false, source };
}
