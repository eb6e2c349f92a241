import type { RoutingStrategy } from "../domain.js";
import {
  agentExclusion,
  allExclusions,
  conversationExclusion,
  membershipOf,
  type PreparedAgent,
  prepareAgent,
  queueExclusion,
} from "./eligibility.js";
import { waitingCursor } from "./queue-order.js";
import {
  type CandidateDetail,
  candidateDetail,
  candidateScore,
  compareCandidates,
  preferredAgentChoice,
} from "./strategies.js";
import { tenantLocalDate } from "./tenant-day.js";
import type { ExclusionCounts, ExclusionReason, RoutingSnapshot } from "./types.js";

/**
 * Batch assignment for one queue: walk the waiting conversations in queue order and give
 * each to the best eligible agent, updating loads, offers, daily counts and auto-park
 * spacing in memory as it goes, so a batch never pushes an agent past a limit a
 * one-by-one routing would respect.
 *
 * Cost: agent-level checks run once per agent per pass; each conversation then scans only
 * the agents still open (an agent leaves that set the moment it fills up or is spaced
 * out) and keeps the best few with an insertion top-N instead of sorting. With the
 * default 30 s spacing every agent takes at most one delivery per pass, and the walk
 * stops as soon as no agent is open.
 *
 * The service persists each decision in its own transaction (locking the conversation
 * and the agent's row); a decision that no longer holds there is skipped, so the plan is
 * a proposal, never authority.
 */

/** Ranked candidates kept in a decision: enough to explain, small enough for an event payload. */
export const TOP_CANDIDATES = 5;

export type DecisionKind = "assign" | "offer" | "wait" | "none";

export type DecisionNote =
  | "NO_ELIGIBLE_AGENT"
  | "NO_PREFERRED_AGENT"
  | "PREFERRED_NOT_LOADED"
  | "PREFERRED_INELIGIBLE"
  | "PREFERRED_TIMEOUT"
  | "PREFERRED_OFFLINE"
  | "PREFERRED_BUSY";

export interface DecisionCandidate {
  agentId: string;
  eligible: boolean;
  /** The strategy's primary metric (see strategies.ts); null for an excluded agent. */
  score: number | null;
  reason?: ExclusionReason;
  detail?: CandidateDetail;
}

export interface RoutingDecision {
  conversationId: string;
  kind: DecisionKind;
  /** The chosen agent (assign/offer) or the preferred agent being waited for (wait). */
  agentId?: string;
  /** The queue's strategy. */
  strategy: RoutingStrategy;
  /** The order actually applied: PROFICIENCY when PREFERRED_AGENT fell back. */
  rankedBy: RoutingStrategy;
  /**
   * Up to TOP_CANDIDATES eligible agents best first, plus the preferred agent when
   * excluded. A "wait" does not scan the other agents: it lists only the preferred
   * agent, with eligibleCount 0 and no exclusion counts.
   */
  candidates: DecisionCandidate[];
  eligibleCount: number;
  /** Every other agent of the snapshot, counted by its first exclusion reason. */
  excluded: ExclusionCounts;
  /** wait: when the preferred-agent wait ends (schedule the timer for it). */
  waitUntil?: Date;
  /** offer: when the offer times out. */
  offerExpiresAt?: Date;
  /**
   * The contact's new preferred agent when it changes (SPEC §4/§8: whoever gets it
   * becomes preferred). For an offer, persist it when the offer is accepted.
   */
  newPreferredAgentId?: string;
  note?: DecisionNote;
}

export type StopReason = "AUTO_ASSIGN_OFF" | "OUTSIDE_BUSINESS_HOURS" | "NO_AGENT_AVAILABLE";

export interface RoutingPlan {
  queueId: string;
  /** In queue order; one per conversation walked. */
  decisions: RoutingDecision[];
  /** Conversations not walked because nobody could take anything (see stopReason). */
  unplanned: number;
  stopReason: StopReason | null;
  /** The tenant-local day the daily counters were read for (write increments with it). */
  today: string;
  /** The walk stopped at `maxDeliveries`: more may be deliverable right away. */
  capped: boolean;
}

function addCount(counts: Record<string, number>, reason: ExclusionReason): void {
  counts[reason] = (counts[reason] ?? 0) + 1;
}

function mergeCounts(
  base: ExclusionCounts,
  declined: number,
  missing: number,
  below: number,
): ExclusionCounts {
  const out: ExclusionCounts = { ...base };
  if (declined > 0) out.OFFER_DECLINED = declined;
  if (missing > 0) out.MISSING_SKILL = missing;
  if (below > 0) out.SKILL_BELOW_MINIMUM = below;
  return out;
}

/**
 * `maxDeliveries` caps the assignments and offers of one plan (the service commits a pass
 * in one transaction, and a subscriber sees nothing of it before the commit: small passes
 * commit often). The walk stops there with `capped` set; the rest waits for the next pass.
 */
export function planAssignments(
  snapshot: RoutingSnapshot,
  now: Date,
  maxDeliveries: number = Number.POSITIVE_INFINITY,
): RoutingPlan {
  const { queue } = snapshot;
  const today = tenantLocalDate(now, snapshot.timeZone);
  const plan: RoutingPlan = {
    queueId: queue.id,
    decisions: [],
    unplanned: 0,
    stopReason: null,
    today,
    capped: false,
  };
  const queueReason = queueExclusion(queue, snapshot);
  if (queueReason !== null) {
    plan.unplanned = snapshot.waiting.length;
    plan.stopReason = queueReason;
    return plan;
  }

  const nowMs = now.getTime();
  const membership = membershipOf(queue);
  const byId = new Map<string, PreparedAgent>();
  const open: PreparedAgent[] = [];
  // Agent-level exclusions, kept current as agents close during the walk.
  const agentCounts: Record<string, number> = {};
  for (const a of snapshot.agents) {
    // A repeated row (a join fanning out) must not count one agent's capacity twice.
    if (byId.has(a.id)) continue;
    const p = prepareAgent(a, queue, membership, today, snapshot);
    byId.set(a.id, p);
    const reason = agentExclusion(p, queue, nowMs);
    if (reason === null) open.push(p);
    else addCount(agentCounts, reason);
  }

  const strategy = queue.strategy;
  const cursor = waitingCursor(snapshot.waiting, now, queue.order);
  const top: PreparedAgent[] = [];
  let delivered = 0;

  for (let conv = cursor.next(); conv !== undefined; conv = cursor.next()) {
    if (delivered >= maxDeliveries) {
      plan.unplanned = cursor.remaining + 1;
      plan.capped = true;
      break;
    }
    if (open.length === 0) {
      plan.unplanned = cursor.remaining + 1;
      plan.stopReason = "NO_AGENT_AVAILABLE";
      break;
    }
    const preferredId = conv.preferredAgentId;
    let rankedBy: RoutingStrategy = strategy;
    let note: DecisionNote | undefined;
    let preferredExcluded: DecisionCandidate | undefined;

    if (strategy === "PREFERRED_AGENT") {
      const pref = preferredId === null ? undefined : byId.get(preferredId);
      const reasons = pref === undefined ? [] : allExclusions(pref, conv, queue, membership, nowMs);
      const choice = preferredAgentChoice(conv, queue, pref?.agent, reasons, now);
      if (pref !== undefined && reasons.length > 0) {
        preferredExcluded = { agentId: pref.id, eligible: false, score: null, reason: reasons[0]! };
      }
      if (choice.kind === "wait") {
        plan.decisions.push({
          conversationId: conv.id,
          kind: "wait",
          agentId: choice.agentId,
          strategy,
          rankedBy: strategy,
          candidates: preferredExcluded === undefined ? [] : [preferredExcluded],
          eligibleCount: 0,
          excluded: {},
          waitUntil: choice.until,
          note: choice.reason,
        });
        continue;
      }
      if (choice.kind === "fallback") {
        rankedBy = "PROFICIENCY";
        note = choice.reason;
      }
    }

    // Scan the open agents, keeping the best TOP_CANDIDATES in order.
    top.length = 0;
    let eligibleCount = 0;
    let declined = 0;
    let missing = 0;
    let below = 0;
    for (const p of open) {
      const reason = conversationExclusion(p, conv);
      if (reason !== null) {
        if (reason === "OFFER_DECLINED") declined++;
        else if (reason === "MISSING_SKILL") missing++;
        else below++;
        continue;
      }
      eligibleCount++;
      if (
        top.length === TOP_CANDIDATES &&
        compareCandidates(rankedBy, p, top[top.length - 1]!, preferredId) >= 0
      ) {
        continue;
      }
      let at = top.length;
      while (at > 0 && compareCandidates(rankedBy, p, top[at - 1]!, preferredId) < 0) at--;
      top.splice(at, 0, p);
      if (top.length > TOP_CANDIDATES) top.pop();
    }

    const skillCount = conv.requiredSkills.length;
    const candidates: DecisionCandidate[] = top.map((p) => ({
      agentId: p.id,
      eligible: true,
      score: candidateScore(rankedBy, p, skillCount),
      detail: candidateDetail(p, skillCount, preferredId),
    }));
    if (preferredExcluded !== undefined) candidates.push(preferredExcluded);
    const excluded = mergeCounts(agentCounts, declined, missing, below);
    const chosen = top[0];

    if (chosen === undefined) {
      plan.decisions.push({
        conversationId: conv.id,
        kind: "none",
        strategy,
        rankedBy,
        candidates,
        eligibleCount: 0,
        excluded,
        note: "NO_ELIGIBLE_AGENT",
      });
      continue;
    }

    const decision: RoutingDecision = {
      conversationId: conv.id,
      kind: queue.offerRequired ? "offer" : "assign",
      agentId: chosen.id,
      strategy,
      rankedBy,
      candidates,
      eligibleCount,
      excluded,
    };
    if (queue.offerRequired) decision.offerExpiresAt = new Date(nowMs + queue.offerTimeoutS * 1000);
    if (chosen.id !== preferredId) decision.newPreferredAgentId = chosen.id;
    if (note !== undefined) decision.note = note;
    plan.decisions.push(decision);
    delivered++;

    // Mirror what persisting the decision does to the agent's row.
    chosen.load++;
    if (queue.offerRequired) chosen.offered++;
    else if (chosen.active === 0) chosen.active = 1; // delivered into an idle agent: it becomes ACTIVE
    chosen.dailyToday++;
    chosen.lastAssignedMs = nowMs;
    chosen.lastAutoDeliveredMs = nowMs;
    const closed = agentExclusion(chosen, queue, nowMs);
    if (closed !== null) {
      const idx = open.indexOf(chosen);
      open[idx] = open[open.length - 1]!;
      open.pop();
      addCount(agentCounts, closed);
    }
  }
  return plan;
}
