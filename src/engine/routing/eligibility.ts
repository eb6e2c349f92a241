import type { Presence } from "../domain.js";
import { countToday, tenantLocalDate } from "./tenant-day.js";
import {
  DEFAULT_INBOX_LIMIT,
  type ExclusionReason,
  type InboxLimit,
  type RequiredSkill,
  type RoutingAgent,
  type RoutingContext,
  type RoutingQueue,
  type WaitingConversation,
} from "./types.js";

/**
 * Eligibility (SPEC §8): may this agent receive this conversation automatically, and if
 * not, why. The checks are split into queue-level, agent-level (independent of the
 * conversation, so the planner evaluates them once per agent per pass) and
 * conversation-level ones; `eligibleAgents` and the planner share these functions so the
 * explanation in the timeline is the one that decided.
 */

/**
 * Effective inbox limit: the agent's value when set (OFF or a number), else the team's,
 * else the tenant default. So an agent OFF wins over any team number, and an agent number
 * overrides a team OFF.
 */
export function effectiveInboxLimit(
  agentLimit: InboxLimit | null,
  teamLimit: InboxLimit | null,
  fallback: InboxLimit = DEFAULT_INBOX_LIMIT,
): InboxLimit {
  if (agentLimit !== null) return agentLimit;
  if (teamLimit !== null) return teamLimit;
  return fallback;
}

/** Capacity in use: everything the agent owns or has been offered (ACTIVE + PARKED + OFFERED). */
export function agentLoad(agent: Pick<RoutingAgent, "activeCount" | "parkedCount" | "offeredCount">): number {
  return agent.activeCount + agent.parkedCount + agent.offeredCount;
}

export function isOffline(agent: Pick<RoutingAgent, "presence" | "loggedIn">): boolean {
  return agent.presence === "OFFLINE" || !agent.loggedIn;
}

/** Reasons that stop the whole queue, whoever the agent. */
export type QueueExclusion = Extract<ExclusionReason, "AUTO_ASSIGN_OFF" | "OUTSIDE_BUSINESS_HOURS">;

export function queueExclusion(queue: RoutingQueue, ctx: RoutingContext): QueueExclusion | null {
  if (!queue.autoAssign) return "AUTO_ASSIGN_OFF";
  if (queue.businessHoursOnly && !ctx.businessOpen) return "OUTSIDE_BUSINESS_HOURS";
  return null;
}

/**
 * An agent's routing state during one pass. The planner mutates the counters as it
 * delivers so later decisions in the same batch see the new load.
 */
export interface PreparedAgent {
  readonly agent: RoutingAgent;
  readonly id: string;
  readonly limit: InboxLimit;
  /** Numeric limit (OFF → 0) for utilisation arithmetic. */
  readonly capacity: number;
  readonly skills: ReadonlyMap<string, number>;
  /** First reason that holds for the whole pass (membership, limit OFF, presence, login). */
  readonly staticReason: ExclusionReason | null;
  load: number;
  active: number;
  offered: number;
  dailyToday: number;
  /** Epoch ms; -Infinity when never assigned, so "never" sorts as least recent. */
  lastAssignedMs: number;
  lastAutoDeliveredMs: number;
  /** Scratch: sum of the current conversation's required skill levels (set by the scan). */
  proficiency: number;
}

/** Queue membership as sets, built once per pass. */
export interface Membership {
  agents: ReadonlySet<string>;
  teams: ReadonlySet<string>;
  presences: ReadonlySet<Presence>;
}

export function membershipOf(queue: RoutingQueue): Membership {
  return {
    agents: new Set(queue.memberAgentIds),
    teams: new Set(queue.memberTeamIds),
    presences: new Set(queue.routablePresences),
  };
}

export function prepareAgent(
  agent: RoutingAgent,
  queue: RoutingQueue,
  membership: Membership,
  today: string,
  ctx: RoutingContext,
): PreparedAgent {
  const limit = effectiveInboxLimit(agent.inboxLimit, agent.teamInboxLimit, ctx.defaultInboxLimit);
  let staticReason: ExclusionReason | null = null;
  if (!membership.agents.has(agent.id) && (agent.teamId === null || !membership.teams.has(agent.teamId))) {
    staticReason = "NOT_MEMBER";
  } else if (limit === "OFF") {
    staticReason = "INBOX_OFF";
  } else if (!membership.presences.has(agent.presence)) {
    staticReason = "PRESENCE";
  } else if (queue.onlyLoggedIn && !agent.loggedIn) {
    staticReason = "NOT_LOGGED_IN";
  }
  const skills = new Map<string, number>();
  for (const s of agent.skills) skills.set(s.skillId, s.proficiency);
  return {
    agent,
    id: agent.id,
    limit,
    capacity: limit === "OFF" ? 0 : limit,
    skills,
    staticReason,
    load: agentLoad(agent),
    active: agent.activeCount,
    offered: agent.offeredCount,
    dailyToday: countToday(agent.dailyCount, agent.dailyCountDate, today),
    lastAssignedMs: agent.lastAssignedAt === null ? Number.NEGATIVE_INFINITY : agent.lastAssignedAt.getTime(),
    lastAutoDeliveredMs:
      agent.lastAutoDeliveredAt === null ? Number.NEGATIVE_INFINITY : agent.lastAutoDeliveredAt.getTime(),
    proficiency: 0,
  };
}

/**
 * Auto-park spacing (SPEC §8 "Auto-parking: … at most one per agent every 30 s") paces
 * deliveries into an inbox that already holds active work. Without auto-parking an agent
 * only receives with nothing ACTIVE, so capacity and the one-active rule are the limit
 * and spacing does not apply.
 */
function spaced(queue: RoutingQueue, p: PreparedAgent, nowMs: number): boolean {
  return (
    queue.autoParking &&
    queue.autoParkSpacingS > 0 &&
    nowMs - p.lastAutoDeliveredMs < queue.autoParkSpacingS * 1000
  );
}

/** Agent-level reason: holds for every conversation of the queue at this moment. */
export function agentExclusion(p: PreparedAgent, queue: RoutingQueue, nowMs: number): ExclusionReason | null {
  if (p.staticReason !== null) return p.staticReason;
  if (p.load >= p.capacity) return "AT_CAPACITY";
  // One pending offer per agent: an offer reserves capacity the agent may reject, and
  // several at once would hide capacity from other agents and stack timeouts.
  if (queue.offerRequired && p.offered > 0) return "PENDING_OFFER";
  if (!queue.autoParking && p.active > 0) return "HAS_ACTIVE";
  if (queue.dailyLimit !== null && p.dailyToday >= queue.dailyLimit) return "DAILY_LIMIT";
  if (spaced(queue, p, nowMs)) return "AUTO_PARK_SPACING";
  return null;
}

const SKILL_MISSING = -1;
const SKILL_BELOW = -2;

/**
 * Sum of the agent's levels in the required skills, or a negative code for the first
 * requirement that fails. Summing is enough to rank: every candidate for a conversation
 * is scored on the same requirement list, so sums order like averages.
 */
export function skillMatch(skills: ReadonlyMap<string, number>, required: readonly RequiredSkill[]): number {
  let sum = 0;
  for (const r of required) {
    const level = skills.get(r.skillId);
    if (level === undefined) return SKILL_MISSING;
    if (r.minProficiency !== null && level < r.minProficiency) return SKILL_BELOW;
    sum += level;
  }
  return sum;
}

export function skillMatchReason(match: number): ExclusionReason | null {
  if (match === SKILL_MISSING) return "MISSING_SKILL";
  if (match === SKILL_BELOW) return "SKILL_BELOW_MINIMUM";
  return null;
}

/** Conversation-level reason; sets `p.proficiency` when the agent qualifies. */
export function conversationExclusion(
  p: PreparedAgent,
  conversation: WaitingConversation,
): ExclusionReason | null {
  if (conversation.excludedAgentIds.includes(p.id)) return "OFFER_DECLINED";
  const match = skillMatch(p.skills, conversation.requiredSkills);
  const reason = skillMatchReason(match);
  if (reason === null) p.proficiency = match;
  return reason;
}

/**
 * Every reason that applies (not only the first): the preferred-agent rule must know
 * whether an offline agent would also be unsuitable once back.
 */
export function allExclusions(
  p: PreparedAgent,
  conversation: WaitingConversation,
  queue: RoutingQueue,
  membership: Membership,
  nowMs: number,
): ExclusionReason[] {
  const reasons: ExclusionReason[] = [];
  const a = p.agent;
  if (!membership.agents.has(a.id) && (a.teamId === null || !membership.teams.has(a.teamId))) {
    reasons.push("NOT_MEMBER");
  }
  if (p.limit === "OFF") reasons.push("INBOX_OFF");
  if (!membership.presences.has(a.presence)) reasons.push("PRESENCE");
  if (queue.onlyLoggedIn && !a.loggedIn) reasons.push("NOT_LOGGED_IN");
  if (p.limit !== "OFF" && p.load >= p.capacity) reasons.push("AT_CAPACITY");
  if (queue.offerRequired && p.offered > 0) reasons.push("PENDING_OFFER");
  if (!queue.autoParking && p.active > 0) reasons.push("HAS_ACTIVE");
  if (queue.dailyLimit !== null && p.dailyToday >= queue.dailyLimit) reasons.push("DAILY_LIMIT");
  if (spaced(queue, p, nowMs)) reasons.push("AUTO_PARK_SPACING");
  if (conversation.excludedAgentIds.includes(a.id)) reasons.push("OFFER_DECLINED");
  const skillReason = skillMatchReason(skillMatch(p.skills, conversation.requiredSkills));
  if (skillReason !== null) reasons.push(skillReason);
  return reasons;
}

export interface Exclusion {
  agentId: string;
  reason: ExclusionReason;
}

export interface EligibilityResult {
  /** In input order; rank them with `rankAgents`. */
  eligible: RoutingAgent[];
  excluded: Exclusion[];
}

/** Which agents may receive `conversation` from `queue` now, and why the others may not. */
export function eligibleAgents(
  conversation: WaitingConversation,
  queue: RoutingQueue,
  agents: readonly RoutingAgent[],
  now: Date,
  ctx: RoutingContext,
): EligibilityResult {
  const result: EligibilityResult = { eligible: [], excluded: [] };
  const queueReason = queueExclusion(queue, ctx);
  if (queueReason !== null) {
    for (const a of agents) result.excluded.push({ agentId: a.id, reason: queueReason });
    return result;
  }
  const nowMs = now.getTime();
  const today = tenantLocalDate(now, ctx.timeZone);
  const membership = membershipOf(queue);
  for (const a of agents) {
    const p = prepareAgent(a, queue, membership, today, ctx);
    const reason = agentExclusion(p, queue, nowMs) ?? conversationExclusion(p, conversation);
    if (reason === null) result.eligible.push(a);
    else result.excluded.push({ agentId: a.id, reason });
  }
  return result;
}

/**
 * Every reason that keeps one agent from `conversation` now (empty when eligible), for
 * explaining a single agent ("why did I not get it?") and for the preferred-agent rule.
 */
export function exclusionReasons(
  agent: RoutingAgent,
  conversation: WaitingConversation,
  queue: RoutingQueue,
  now: Date,
  ctx: RoutingContext,
): ExclusionReason[] {
  const queueReason = queueExclusion(queue, ctx);
  if (queueReason !== null) return [queueReason];
  const membership = membershipOf(queue);
  const p = prepareAgent(agent, queue, membership, tenantLocalDate(now, ctx.timeZone), ctx);
  return allExclusions(p, conversation, queue, membership, now.getTime());
}
