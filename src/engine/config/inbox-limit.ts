/**
 * Effective inbox limit of an agent (SPEC §1, §8 eligibility): the agent's own setting
 * overrides the team's, the team's overrides the system default.
 */

/** Used when neither the agent nor its team sets a limit. */
export const SYSTEM_DEFAULT_INBOX_LIMIT = 10;

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
  if (agent.inboxLimitOff) return { limit: null, off: true, source: "AGENT" };
  if (agent.inboxLimit !== null) return { limit: agent.inboxLimit, off: false, source: "AGENT" };
  if (team?.inboxLimitOff) return { limit: null, off: true, source: "TEAM" };
  if (team && team.inboxLimit !== null) return { limit: team.inboxLimit, off: false, source: "TEAM" };
  return { limit: SYSTEM_DEFAULT_INBOX_LIMIT, off: false, source: "SYSTEM" };
}
