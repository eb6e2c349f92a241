import type { RoutingStrategy } from "../domain.js";
import { agentLoad, effectiveInboxLimit, isOffline, skillMatch } from "./eligibility.js";
import type {
  ExclusionReason,
  InboxLimit,
  RoutingAgent,
  RoutingQueue,
  WaitingConversation,
} from "./types.js";

/**
 * Strategies (SPEC §8): rank the eligible agents for one conversation. Every strategy is a
 * total order (the last tie-break is the agent id), so the same snapshot gives the same
 * winner on every instance.
 *
 * - LEAST_ACTIVE: fewest conversations in use (ACTIVE + PARKED + OFFERED), then least
 *   recently assigned (never assigned first), then id. Offers count because an agent
 *   holding an offer is about to get that conversation.
 * - PROFICIENCY: highest average level over the conversation's required skills, then as
 *   LEAST_ACTIVE. Average rather than minimum: the per-skill `minProficiency` already
 *   enforces a floor, so the score rewards overall fit. With no required skills every
 *   agent scores 0 and the tie-breaks decide.
 * - PREFERRED_AGENT: the contact's preferred agent first when eligible, then PROFICIENCY
 *   (the fallback the SPEC names). Waiting for an unavailable preferred agent is decided
 *   before ranking, by `preferredAgentChoice`.
 * - LEAST_BUSY: lowest utilisation (load / limit), then lower load, then least recently
 *   assigned, then id.
 * - MOST_BUSY: highest utilisation still under the limit (eligibility guarantees that),
 *   then higher load, then least recently assigned, then id — packs agents so others
 *   stay free.
 *
 * `score` is the strategy's primary metric as a person reads it (load, average level,
 * utilisation); its direction depends on the strategy, the rank is the list order.
 */

/** What ranking reads from an agent; `proficiency` is the sum over the required skills. */
export interface CandidateMetrics {
  id: string;
  load: number;
  capacity: number;
  /** Epoch ms; -Infinity when never assigned. */
  lastAssignedMs: number;
  proficiency: number;
}

function byLastAssignedThenId(a: CandidateMetrics, b: CandidateMetrics): number {
  if (a.lastAssignedMs !== b.lastAssignedMs) return a.lastAssignedMs < b.lastAssignedMs ? -1 : 1;
  if (a.id === b.id) return 0;
  return a.id < b.id ? -1 : 1;
}

function leastActive(a: CandidateMetrics, b: CandidateMetrics): number {
  if (a.load !== b.load) return a.load - b.load;
  return byLastAssignedThenId(a, b);
}

function byProficiency(a: CandidateMetrics, b: CandidateMetrics): number {
  if (a.proficiency !== b.proficiency) return a.proficiency > b.proficiency ? -1 : 1;
  return leastActive(a, b);
}

// Cross-multiplied so equal ratios (1/5 vs 2/10) compare equal without float error.
function utilisationDiff(a: CandidateMetrics, b: CandidateMetrics): number {
  return a.load * b.capacity - b.load * a.capacity;
}

/**
 * Negative when `a` ranks before `b` under `strategy`. `preferredAgentId` matters only
 * for PREFERRED_AGENT.
 */
export function compareCandidates(
  strategy: RoutingStrategy,
  a: CandidateMetrics,
  b: CandidateMetrics,
  preferredAgentId: string | null,
): number {
  switch (strategy) {
    case "LEAST_ACTIVE":
      return leastActive(a, b);
    case "PROFICIENCY":
      return byProficiency(a, b);
    case "PREFERRED_AGENT":
      if (preferredAgentId !== null && a.id !== b.id) {
        if (a.id === preferredAgentId) return -1;
        if (b.id === preferredAgentId) return 1;
      }
      return byProficiency(a, b);
    case "LEAST_BUSY": {
      const u = utilisationDiff(a, b);
      if (u !== 0) return u;
      return leastActive(a, b);
    }
    case "MOST_BUSY": {
      const u = utilisationDiff(a, b);
      if (u !== 0) return -u;
      if (a.load !== b.load) return b.load - a.load;
      return byLastAssignedThenId(a, b);
    }
  }
}

function round3(x: number): number {
  return Math.round(x * 1000) / 1000;
}

/** The primary metric shown in explanations. */
export function candidateScore(
  strategy: RoutingStrategy,
  m: CandidateMetrics,
  requiredSkillCount: number,
): number {
  switch (strategy) {
    case "LEAST_ACTIVE":
      return m.load;
    case "PROFICIENCY":
    case "PREFERRED_AGENT":
      return requiredSkillCount === 0 ? 0 : round3(m.proficiency / requiredSkillCount);
    case "LEAST_BUSY":
    case "MOST_BUSY":
      return m.capacity === 0 ? 1 : round3(m.load / m.capacity);
  }
}

export interface CandidateDetail {
  load: number;
  limit: number;
  /** Average level over the required skills; absent when none are required. */
  proficiency?: number;
  /**
   * Epoch ms of the last assignment, null if never. A number, not an ISO string:
   * formatting five dates per decision was the planner's largest single cost.
   */
  lastAssignedMs: number | null;
  preferred?: true;
}

export interface ScoredCandidate {
  agentId: string;
  score: number;
  detail: CandidateDetail;
}

export function candidateDetail(
  m: CandidateMetrics,
  requiredSkillCount: number,
  preferredAgentId: string | null,
): CandidateDetail {
  const detail: CandidateDetail = {
    load: m.load,
    limit: m.capacity,
    lastAssignedMs: Number.isFinite(m.lastAssignedMs) ? m.lastAssignedMs : null,
  };
  if (requiredSkillCount > 0) detail.proficiency = round3(m.proficiency / requiredSkillCount);
  if (m.id === preferredAgentId) detail.preferred = true;
  return detail;
}

export function scoredCandidate(
  strategy: RoutingStrategy,
  m: CandidateMetrics,
  conversation: Pick<WaitingConversation, "requiredSkills" | "preferredAgentId">,
): ScoredCandidate {
  const n = conversation.requiredSkills.length;
  return {
    agentId: m.id,
    score: candidateScore(strategy, m, n),
    detail: candidateDetail(m, n, conversation.preferredAgentId),
  };
}

/**
 * Rank already-eligible agents (see `eligibleAgents`) for `conversation`, best first.
 * For PREFERRED_AGENT this is the ranking once the wait question is settled.
 */
export function rankAgents(
  strategy: RoutingStrategy,
  conversation: WaitingConversation,
  eligible: readonly RoutingAgent[],
  defaultInboxLimit?: InboxLimit,
): ScoredCandidate[] {
  const metrics: CandidateMetrics[] = eligible.map((a) => {
    const limit = effectiveInboxLimit(a.inboxLimit, a.teamInboxLimit, defaultInboxLimit);
    const skills = new Map(a.skills.map((s) => [s.skillId, s.proficiency] as const));
    return {
      id: a.id,
      load: agentLoad(a),
      capacity: limit === "OFF" ? 0 : limit,
      lastAssignedMs: a.lastAssignedAt === null ? Number.NEGATIVE_INFINITY : a.lastAssignedAt.getTime(),
      proficiency: Math.max(0, skillMatch(skills, conversation.requiredSkills)),
    };
  });
  metrics.sort((a, b) => compareCandidates(strategy, a, b, conversation.preferredAgentId));
  return metrics.map((m) => scoredCandidate(strategy, m, conversation));
}

/** Reasons a WAIT_WHILE_BUSY queue waits out: the agent is there but occupied for now. */
const BUSY_WAIT_REASONS: ReadonlySet<ExclusionReason> = new Set<ExclusionReason>([
  "PRESENCE",
  "NOT_LOGGED_IN",
  "AT_CAPACITY",
  "PENDING_OFFER",
  "HAS_ACTIVE",
  "AUTO_PARK_SPACING",
]);

/** Reasons a WAIT_WHILE_OFFLINE queue waits out, and only while the agent is offline. */
const OFFLINE_WAIT_REASONS: ReadonlySet<ExclusionReason> = new Set<ExclusionReason>([
  "PRESENCE",
  "NOT_LOGGED_IN",
]);

export type PreferredChoice =
  | { kind: "preferred"; agentId: string }
  | { kind: "wait"; agentId: string; until: Date; reason: "PREFERRED_OFFLINE" | "PREFERRED_BUSY" }
  | {
      kind: "fallback";
      reason: "NO_PREFERRED_AGENT" | "PREFERRED_NOT_LOADED" | "PREFERRED_INELIGIBLE" | "PREFERRED_TIMEOUT";
    };

/** When the wait for the preferred agent ends: enqueuedAt + the queue's timeout. */
export function preferredWaitUntil(
  conversation: Pick<WaitingConversation, "enqueuedAt">,
  queue: Pick<RoutingQueue, "preferredAgentTimeoutS">,
): Date {
  return new Date(conversation.enqueuedAt.getTime() + queue.preferredAgentTimeoutS * 1000);
}

/**
 * PREFERRED_AGENT's first question: take the preferred agent, wait for them, or fall back
 * to PROFICIENCY. `reasons` are all exclusion reasons that apply to the preferred agent
 * (see `allExclusions`); `agent` is undefined when the snapshot did not load them.
 *
 * Waiting happens only while the agent would be eligible but for a temporary state —
 * offline (both modes), or also busy/away/full/spaced/holding an offer
 * (WAIT_WHILE_BUSY) — and only before the timeout: at exactly enqueuedAt + timeout the
 * wait is over. Anything lasting (not a member, missing skill, rejected this very
 * conversation, inbox OFF, daily limit) falls back at once: waiting could not help.
 */
export function preferredAgentChoice(
  conversation: WaitingConversation,
  queue: RoutingQueue,
  agent: Pick<RoutingAgent, "id" | "presence" | "loggedIn"> | undefined,
  reasons: readonly ExclusionReason[],
  now: Date,
): PreferredChoice {
  if (conversation.preferredAgentId === null) return { kind: "fallback", reason: "NO_PREFERRED_AGENT" };
  if (agent === undefined) return { kind: "fallback", reason: "PREFERRED_NOT_LOADED" };
  if (reasons.length === 0) return { kind: "preferred", agentId: agent.id };
  const until = preferredWaitUntil(conversation, queue);
  if (now.getTime() >= until.getTime()) return { kind: "fallback", reason: "PREFERRED_TIMEOUT" };
  const offline = isOffline(agent);
  if (offline && reasons.every((r) => OFFLINE_WAIT_REASONS.has(r))) {
    return { kind: "wait", agentId: agent.id, until, reason: "PREFERRED_OFFLINE" };
  }
  if (queue.preferredAgentMode === "WAIT_WHILE_BUSY" && reasons.every((r) => BUSY_WAIT_REASONS.has(r))) {
    return {
      kind: "wait",
      agentId: agent.id,
      until,
      reason: offline ? "PREFERRED_OFFLINE" : "PREFERRED_BUSY",
    };
  }
  return { kind: "fallback", reason: "PREFERRED_INELIGIBLE" };
}
