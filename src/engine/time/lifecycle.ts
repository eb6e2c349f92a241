import type { ConversationStatus, Role } from "../domain.js";
import type { FieldProblem } from "../errors.js";

/**
 * The conversation status machine (SPEC §4): who may move a conversation from which
 * status to which, the status timers, and what a new inbound mail does.
 *
 * Manual transitions (agents, supervisors; admins may do what supervisors may):
 *
 *   from \ to | ACTIVE | PAUSED | RESOLVED | CLOSED | REOPENED
 *   NEW       |  any   |   –    |   any    |  any   |    –
 *   ACTIVE    |   –    |  any   |   any    |  any   |    –
 *   PAUSED    |  any   |   –    |   any    |  any   |    –
 *   RESOLVED  |  any   |   –    |    –     |  any   |    –
 *   REOPENED  |  any   |  any   |   any    |  any   |    –
 *   CLOSED    |   –    |   –    |    –     |   –    | supervisor
 *
 * - Nothing goes back to NEW: it only means "nobody has opened this yet".
 * - NEW cannot be PAUSED: pausing means waiting on the customer, which needs a reply
 *   first (and a paused NEW would vanish from the queue unanswered).
 * - RESOLVED → PAUSED makes no sense (reactivate it instead).
 * - CLOSED is final for agents: only new inbound mail within the reopen window or a
 *   supervisor turns it REOPENED (the supervisor is not bound by the window).
 *
 * System transitions (timers and inbound mail, never a person):
 *   ACTIVE/REOPENED → PAUSED (idle timer), PAUSED → CLOSED, RESOLVED → CLOSED (timers),
 *   PAUSED/RESOLVED → ACTIVE (new inbound mail), CLOSED → REOPENED (inbound in window).
 */

export type TransitionActor = Role | "SYSTEM";

type Who = "ANY" | "SUPERVISOR";

const MANUAL: Readonly<Record<ConversationStatus, Partial<Record<ConversationStatus, Who>>>> = {
  NEW: { ACTIVE: "ANY", RESOLVED: "ANY", CLOSED: "ANY" },
  ACTIVE: { PAUSED: "ANY", RESOLVED: "ANY", CLOSED: "ANY" },
  PAUSED: { ACTIVE: "ANY", RESOLVED: "ANY", CLOSED: "ANY" },
  RESOLVED: { ACTIVE: "ANY", CLOSED: "ANY" },
  REOPENED: { ACTIVE: "ANY", PAUSED: "ANY", RESOLVED: "ANY", CLOSED: "ANY" },
  CLOSED: { REOPENED: "SUPERVISOR" },
};

const SYSTEM: Readonly<Record<ConversationStatus, readonly ConversationStatus[]>> = {
  NEW: [],
  ACTIVE: ["PAUSED"],
  REOPENED: ["PAUSED"],
  PAUSED: ["CLOSED", "ACTIVE"],
  RESOLVED: ["CLOSED", "ACTIVE"],
  CLOSED: ["REOPENED"],
};

/** Whether `actor` may move a conversation from `from` to `to` (same status: never). */
export function canTransition(
  from: ConversationStatus,
  to: ConversationStatus,
  actor: TransitionActor,
): boolean {
  if (actor === "SYSTEM") return SYSTEM[from].includes(to);
  const who = MANUAL[from][to];
  if (who === undefined) return false;
  return who === "ANY" || actor === "SUPERVISOR" || actor === "ADMIN";
}

/** Why a transition is refused, for the error shown to the caller; null when allowed. */
export function transitionError(
  from: ConversationStatus,
  to: ConversationStatus,
  actor: TransitionActor,
): string | null {
  if (canTransition(from, to, actor)) return null;
  if (from === to) return `The conversation is already ${from}`;
  if (actor !== "SYSTEM" && MANUAL[from][to] === "SUPERVISOR") {
    return `Only a supervisor can change a ${from} conversation to ${to}`;
  }
  return `A ${from} conversation cannot be changed to ${to}`;
}

/** Manual targets available from a status to an actor (for the UI's status menu). */
export function allowedTransitions(from: ConversationStatus, actor: TransitionActor): ConversationStatus[] {
  const targets: ConversationStatus[] =
    actor === "SYSTEM" ? [...SYSTEM[from]] : (Object.keys(MANUAL[from]) as ConversationStatus[]);
  return targets.filter((to) => canTransition(from, to, actor));
}

// ---------------------------------------------------------------------------------------
// Status timers

/** Days until each timer fires, 1–1,000; null switches the timer off. */
export interface StatusTimerSettings {
  /** ACTIVE (and REOPENED) → PAUSED after this many days without activity. */
  activeToPausedDays: number | null;
  /** PAUSED → CLOSED after this many days in PAUSED. */
  pausedToClosedDays: number | null;
  /** RESOLVED → CLOSED after this many days in RESOLVED. */
  resolvedToClosedDays: number | null;
}

export const DEFAULT_STATUS_TIMERS: Readonly<StatusTimerSettings> = {
  activeToPausedDays: 30,
  pausedToClosedDays: 60,
  resolvedToClosedDays: 30,
};

export interface ReopenSettings {
  reopenEnabled: boolean;
  /** Days after closing during which a new inbound reopens the conversation, 1–1,000. */
  reopenWindowDays: number;
}

export const DEFAULT_REOPEN: Readonly<ReopenSettings> = { reopenEnabled: true, reopenWindowDays: 30 };

export const STATUS_TIMER_MAX_DAYS = 1_000;

/** Every problem with timer/reopen settings; only the fields present are checked. */
export function validateStatusTimers(
  settings: Partial<StatusTimerSettings & ReopenSettings>,
): FieldProblem[] {
  const problems: FieldProblem[] = [];
  const days = (v: unknown) =>
    Number.isInteger(v) && (v as number) >= 1 && (v as number) <= STATUS_TIMER_MAX_DAYS;
  for (const field of ["activeToPausedDays", "pausedToClosedDays", "resolvedToClosedDays"] as const) {
    const v = settings[field];
    if (v !== undefined && v !== null && !days(v)) {
      problems.push({ field, message: `must be whole days from 1 to ${STATUS_TIMER_MAX_DAYS}, or off` });
    }
  }
  if (settings.reopenWindowDays !== undefined && !days(settings.reopenWindowDays)) {
    problems.push({
      field: "reopenWindowDays",
      message: `must be whole days from 1 to ${STATUS_TIMER_MAX_DAYS}`,
    });
  }
  if (settings.reopenEnabled !== undefined && typeof settings.reopenEnabled !== "boolean") {
    problems.push({ field: "reopenEnabled", message: "must be true or false" });
  }
  return problems;
}

const DAY_MS = 86_400_000;

export interface TimerSubject {
  status: ConversationStatus;
  /** Last message in or out, or agent action on the conversation. */
  lastActivityAt: Date;
  /** When the status last changed. */
  statusChangedAt: Date;
}

export type StatusTimerKind = "ACTIVE_TO_PAUSED" | "PAUSED_TO_CLOSED" | "RESOLVED_TO_CLOSED";

export interface StatusTimer {
  kind: StatusTimerKind;
  to: ConversationStatus;
  /** May lie in the past (a conversation that was overdue when the timer was switched on): fire now. */
  dueAt: Date;
}

/**
 * The one status timer pending for a conversation, or null. Days are elapsed 24-hour
 * days, not business days: these timers tidy up, they do not measure service. The idle
 * timer counts from the later of last activity and the status change, so reactivating
 * an old conversation by hand gives it a fresh 30 days. NEW has no timer: an unopened
 * conversation must stay in its queue however long it waits.
 * The job that fires re-reads the conversation and calls this again (a stale timer does
 * nothing), so it is safe to compute eagerly.
 */
export function nextTimer(conversation: TimerSubject, settings: StatusTimerSettings): StatusTimer | null {
  const after = (from: Date, days: number) => new Date(from.getTime() + days * DAY_MS);
  switch (conversation.status) {
    case "ACTIVE":
    case "REOPENED": {
      const days = settings.activeToPausedDays;
      if (days === null) return null;
      const since = Math.max(conversation.lastActivityAt.getTime(), conversation.statusChangedAt.getTime());
      return { kind: "ACTIVE_TO_PAUSED", to: "PAUSED", dueAt: after(new Date(since), days) };
    }
    case "PAUSED": {
      const days = settings.pausedToClosedDays;
      if (days === null) return null;
      return { kind: "PAUSED_TO_CLOSED", to: "CLOSED", dueAt: after(conversation.statusChangedAt, days) };
    }
    case "RESOLVED": {
      const days = settings.resolvedToClosedDays;
      if (days === null) return null;
      return { kind: "RESOLVED_TO_CLOSED", to: "CLOSED", dueAt: after(conversation.statusChangedAt, days) };
    }
    default:
      return null;
  }
}

// ---------------------------------------------------------------------------------------
// Inbound mail on an existing conversation

/**
 * SAME: append, status unchanged (NEW, ACTIVE, REOPENED).
 * REACTIVATE: append and set ACTIVE (PAUSED, RESOLVED — the customer is waiting again).
 * REOPEN: append and set REOPENED (CLOSED, within the window, reopening on).
 * NEW_LINKED: start a new conversation linked to the closed one.
 */
export type InboundEffect = "SAME" | "REACTIVATE" | "REOPEN" | "NEW_LINKED";

/**
 * What a new inbound mail threaded onto a conversation does (SPEC §4). The window is
 * inclusive: a mail exactly `reopenWindowDays` × 24 h after closing still reopens. A
 * CLOSED conversation without a known closing time is treated as outside the window —
 * never merging into a conversation we cannot date is the safe side. Mail timestamped
 * before the closing (clock skew) reopens.
 */
export function onInboundMail(
  status: ConversationStatus,
  closedAt: Date | null,
  now: Date,
  settings: ReopenSettings,
): InboundEffect {
  switch (status) {
    case "PAUSED":
    case "RESOLVED":
      return "REACTIVATE";
    case "CLOSED": {
      if (!settings.reopenEnabled || closedAt === null) return "NEW_LINKED";
      const within = now.getTime() - closedAt.getTime() <= settings.reopenWindowDays * DAY_MS;
      return within ? "REOPEN" : "NEW_LINKED";
    }
    default:
      return "SAME";
  }
}

/** The status a conversation takes after an inbound effect (null for NEW_LINKED: the old one is untouched). */
export function statusAfterInbound(
  status: ConversationStatus,
  effect: InboundEffect,
): ConversationStatus | null {
  switch (effect) {
    case "SAME":
      return status;
    case "REACTIVATE":
      return "ACTIVE";
    case "REOPEN":
      return "REOPENED";
    default:
      return null;
  }
}
