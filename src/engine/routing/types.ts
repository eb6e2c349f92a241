import type { PreferredAgentMode, Presence, QueueOrder, RoutingStrategy } from "../domain.js";

/**
 * The routing core's input records. Each one is meant to be loaded by one SQL query per
 * routing pass (one row per agent, one row for the queue, one row per waiting
 * conversation), so every field is a column or a simple aggregate; nothing here is
 * derived by the caller beyond that. The core never mutates these records.
 */

/** A stored inbox limit: a number of conversations, or OFF (no automatic delivery). */
export type InboxLimit = number | "OFF";

/** Used when neither the agent nor the team sets an inbox limit (a tenant may override it). */
export const DEFAULT_INBOX_LIMIT = 5;

export interface AgentSkill {
  skillId: string;
  /** Higher is better; the scale is the tenant's (the core only compares levels). */
  proficiency: number;
}

/**
 * One agent as seen by one routing pass. SQL: users ⋈ presence ⋈ team, with the skills
 * as a `json_agg`, the work counts as `count(*) filter (where work_state = …)` over the
 * conversations the agent owns or is offered, and the daily counter of (agent, queue).
 */
export interface RoutingAgent {
  id: string;
  teamId: string | null;
  presence: Presence;
  loggedIn: boolean;
  /** The agent's own override; null inherits the team default. */
  inboxLimit: InboxLimit | null;
  /** The team's default; null falls back to the tenant default. */
  teamInboxLimit: InboxLimit | null;
  skills: readonly AgentSkill[];
  /** Conversations the agent owns in work state ACTIVE (0 or 1 when the invariant holds). */
  activeCount: number;
  /** Conversations the agent owns in work state PARKED. */
  parkedCount: number;
  /** Conversations currently OFFERED to the agent and not yet accepted/rejected. */
  offeredCount: number;
  /**
   * Automatic deliveries (assignments and offers made) from this queue to this agent on
   * `dailyCountDate`. Kept per (agent, queue) because the limit is a queue setting;
   * counted when delivered, so a rejected offer still used one (one UPDATE per decision).
   */
  dailyCount: number;
  /** "YYYY-MM-DD" in the tenant's time zone of the last increment; any other day means 0. */
  dailyCountDate: string | null;
  /** Last time the agent became owner of a conversation (any route); tie-breaks fairness. */
  lastAssignedAt: Date | null;
  /** Last automatic delivery (assign or offer) to the agent, across all queues. */
  lastAutoDeliveredAt: Date | null;
}

export interface RequiredSkill {
  skillId: string;
  /** Inclusive floor on the agent's level; null means holding the skill is enough. */
  minProficiency: number | null;
}

/**
 * One WAITING conversation of the queue. SQL: conversations where work_state = WAITING,
 * with the required skills and the agents that rejected or let an offer for it time out
 * as arrays, and the contact's preferred agent joined in.
 */
export interface WaitingConversation {
  id: string;
  priority: number;
  /** When it (last) entered the queue; also starts the preferred-agent wait. */
  enqueuedAt: Date;
  /** The SLA deadline currently running (first or next response), if any. */
  slaDueAt: Date | null;
  requiredSkills: readonly RequiredSkill[];
  preferredAgentId: string | null;
  /** Agents that rejected or timed out an offer of this conversation since it was queued. */
  excludedAgentIds: readonly string[];
}

/** How the next parked conversation is chosen when the active one is resolved. */
export const PRESENT_NEXT_POLICIES = ["NONE", "OLDEST_PARKED", "MOST_URGENT"] as const;
export type PresentNextPolicy = (typeof PRESENT_NEXT_POLICIES)[number];

/** A queue's routing settings: one row of the queue table. */
export interface RoutingQueue {
  id: string;
  strategy: RoutingStrategy;
  order: QueueOrder;
  /** Agents that are members directly. */
  memberAgentIds: readonly string[];
  /** Teams whose every agent is a member. */
  memberTeamIds: readonly string[];
  /** Off: conversations wait for a manual pick or a supervisor; the core delivers nothing. */
  autoAssign: boolean;
  /** Presences the queue routes to; the column defaults to ["AVAILABLE"]. */
  routablePresences: readonly Presence[];
  onlyLoggedIn: boolean;
  /** Automatic deliveries from this queue per agent per tenant-local day; null = unlimited. */
  dailyLimit: number | null;
  /** Deliver only while the queue's calendar is open (the caller computes `businessOpen`). */
  businessHoursOnly: boolean;
  /** Accept/reject required: conversations are offered rather than assigned. */
  offerRequired: boolean;
  offerTimeoutS: number;
  /** Off: an agent receives an automatic delivery only when nothing of theirs is ACTIVE. */
  autoParking: boolean;
  /** Minimum seconds between two automatic deliveries to the same agent; 0 disables. */
  autoParkSpacingS: number;
  preferredAgentMode: PreferredAgentMode;
  preferredAgentTimeoutS: number;
  presentNext: PresentNextPolicy;
}

/** Defaults for a new queue (and for the table's column defaults). */
export const DEFAULT_QUEUE_ROUTING: Omit<RoutingQueue, "id" | "memberAgentIds" | "memberTeamIds"> = {
  strategy: "LEAST_ACTIVE",
  order: "PRIORITY_SCORE",
  autoAssign: true,
  routablePresences: ["AVAILABLE"],
  onlyLoggedIn: true,
  dailyLimit: null,
  businessHoursOnly: false,
  offerRequired: false,
  offerTimeoutS: 120,
  autoParking: true,
  autoParkSpacingS: 30,
  preferredAgentMode: "WAIT_WHILE_OFFLINE",
  preferredAgentTimeoutS: 3600,
  presentNext: "MOST_URGENT",
};

/** What the caller computes outside the core (time zone rules and calendars are I/O-free but not ours). */
export interface RoutingContext {
  /** The tenant's IANA time zone; the daily limit resets at its local midnight. */
  timeZone: string;
  /** Whether the queue's business-hours calendar is open now. */
  businessOpen: boolean;
  /** Tenant fallback when neither agent nor team sets an inbox limit. */
  defaultInboxLimit?: InboxLimit;
}

/** Everything one routing pass over one queue needs. */
export interface RoutingSnapshot extends RoutingContext {
  queue: RoutingQueue;
  /** The queue's members plus any preferred agent the waiting conversations name. */
  agents: readonly RoutingAgent[];
  waiting: readonly WaitingConversation[];
}

/**
 * Why an agent cannot take a conversation automatically. The order is the order of the
 * checks: agent-level reasons first (they do not depend on the conversation), then the
 * conversation-level ones; an agent is reported with the first that applies.
 */
export const EXCLUSION_REASONS = [
  "AUTO_ASSIGN_OFF",
  "OUTSIDE_BUSINESS_HOURS",
  "NOT_MEMBER",
  "INBOX_OFF",
  "PRESENCE",
  "NOT_LOGGED_IN",
  "AT_CAPACITY",
  "PENDING_OFFER",
  "HAS_ACTIVE",
  "DAILY_LIMIT",
  "AUTO_PARK_SPACING",
  "OFFER_DECLINED",
  "MISSING_SKILL",
  "SKILL_BELOW_MINIMUM",
] as const;
export type ExclusionReason = (typeof EXCLUSION_REASONS)[number];

/** Counts of excluded agents by reason; only reasons that occurred are present. */
export type ExclusionCounts = Partial<Record<ExclusionReason, number>>;
