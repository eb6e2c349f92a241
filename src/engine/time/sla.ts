import type { BusinessCalendar, ConversationStatus } from "../domain.js";
import type { FieldProblem } from "../errors.js";
import { addBusinessMinutesMany, businessMinutesBetween } from "./calendar.js";

/**
 * SLA policies and the SLA clock (SPEC §2 "SLA policies", §11 "SLA warning or breach").
 *
 * Model. Every conversation has one *SLA clock*: business minutes (per the queue's
 * calendar) that pass while the conversation is not PAUSED, RESOLVED or CLOSED. All three
 * targets are readings of that one clock, so a pause stops all of them at once and
 * resuming picks up where it stopped:
 * - first response: due when the clock reads `firstResponseMinutes`;
 * - next response: once a first reply was sent, a customer message that arrives while
 *   none is awaiting an answer records the clock reading; the target is due when the
 *   clock reads that + `nextResponseMinutes`, and an agent reply clears it;
 * - resolution: due when the clock reads `resolutionMinutes`; met when the conversation
 *   is resolved (the clock then stops with reason RESOLVED). Reactivation resumes it.
 *
 * The state is one flat record a database row can hold (`SlaClockState`), changed only by
 * the pure functions below, each returning a new record. While running the clock reads
 * `consumedBusinessMinutes + businessMinutesBetween(runningSince, now)`; a pause banks
 * that sum. Deadlines are computed from the record, the policy and the calendar, so a
 * policy or calendar change simply recomputes them (and reschedules the timer jobs).
 *
 * Edges: a pending target is breached from its due instant on; a reply at exactly the
 * due instant still meets it. A due time is only known while the clock runs and the
 * target's reading falls within the current running period (past or future); otherwise
 * `dueAt` is null (a pause has no due time, and a breach in an earlier running period
 * was announced by the event written when it happened).
 */

/** Largest target: 1,000 days of round-the-clock business time. */
export const SLA_MAX_MINUTES = 1_000 * 24 * 60;
export const DEFAULT_SLA_WARNING_PERCENT = 80;

/** A policy as configured; targets are business minutes, null/absent = no such target. */
export interface SlaPolicy {
  firstResponseMinutes?: number | null;
  nextResponseMinutes?: number | null;
  resolutionMinutes?: number | null;
  /** Warn when this share of a target is used up, 1–99; default 80. */
  warningPercent?: number | null;
}

/** Where the effective policy came from; timeline events name it. */
export type SlaPolicySource = "QUEUE" | "ADDRESS" | "TENANT" | "NONE";

export interface EffectiveSlaPolicy {
  firstResponseMinutes: number | null;
  nextResponseMinutes: number | null;
  resolutionMinutes: number | null;
  warningPercent: number;
  source: SlaPolicySource;
}

/**
 * The policy that applies to a conversation: the queue's if it has one, else the
 * address's (the point of contact the mail came in on), else the tenant default.
 * The most specific policy wins *as a whole* — targets are not merged field by field —
 * so a queue policy without a resolution target means "no resolution SLA here", not
 * "inherit the tenant's". Queue beats address because the queue is where the work is
 * staffed, and a conversation transferred to another queue takes that queue's SLA.
 */
export function resolveSlaPolicy(input: {
  tenantDefault?: SlaPolicy | null;
  address?: SlaPolicy | null;
  queue?: SlaPolicy | null;
}): EffectiveSlaPolicy {
  const pick: [SlaPolicy | null | undefined, SlaPolicySource][] = [
    [input.queue, "QUEUE"],
    [input.address, "ADDRESS"],
    [input.tenantDefault, "TENANT"],
  ];
  for (const [policy, source] of pick) {
    if (policy != null) {
      return {
        firstResponseMinutes: policy.firstResponseMinutes ?? null,
        nextResponseMinutes: policy.nextResponseMinutes ?? null,
        resolutionMinutes: policy.resolutionMinutes ?? null,
        warningPercent: policy.warningPercent ?? DEFAULT_SLA_WARNING_PERCENT,
        source,
      };
    }
  }
  return {
    firstResponseMinutes: null,
    nextResponseMinutes: null,
    resolutionMinutes: null,
    warningPercent: DEFAULT_SLA_WARNING_PERCENT,
    source: "NONE",
  };
}

/** Every problem with a policy: targets whole minutes 1–1,440,000 or null, warning 1–99. */
export function validateSlaPolicy(policy: SlaPolicy): FieldProblem[] {
  const problems: FieldProblem[] = [];
  for (const field of ["firstResponseMinutes", "nextResponseMinutes", "resolutionMinutes"] as const) {
    const v = policy[field];
    if (v == null) continue;
    if (!Number.isInteger(v) || v < 1 || v > SLA_MAX_MINUTES) {
      problems.push({
        field,
        message: `must be whole business minutes from 1 to ${SLA_MAX_MINUTES}, or empty`,
      });
    }
  }
  const w = policy.warningPercent;
  if (w != null && (!Number.isInteger(w) || w < 1 || w > 99)) {
    problems.push({ field: "warningPercent", message: "must be a whole percentage from 1 to 99" });
  }
  return problems;
}

/** Why the clock stands still: waiting on the customer (PAUSED) or done (RESOLVED/CLOSED). */
export type SlaPauseReason = "PAUSED" | "RESOLVED";

/** The SLA clock of one conversation, as stored. All business minutes may be fractional. */
export interface SlaClockState {
  /** When the clock first started (the conversation's first inbound). */
  startedAt: Date;
  /** Start of the current running period; null while paused. */
  runningSince: Date | null;
  /** Start of the current pause; null while running. */
  pausedAt: Date | null;
  pauseReason: SlaPauseReason | null;
  /** Business minutes run before `runningSince` (or, while paused, in total). */
  consumedBusinessMinutes: number;
  /** First agent reply, and the clock reading then. */
  firstResponseAt: Date | null;
  firstResponseClock: number | null;
  /** Oldest customer message since the last agent reply (only after the first reply). */
  awaitingReplySince: Date | null;
  awaitingReplyClock: number | null;
}

export function startSlaClock(at: Date): SlaClockState {
  return {
    startedAt: at,
    runningSince: at,
    pausedAt: null,
    pauseReason: null,
    consumedBusinessMinutes: 0,
    firstResponseAt: null,
    firstResponseClock: null,
    awaitingReplySince: null,
    awaitingReplyClock: null,
  };
}

/** The clock reading (business minutes of running time) at `at`. */
export function slaClockReading(state: SlaClockState, cal: BusinessCalendar, at: Date): number {
  if (state.runningSince === null) return state.consumedBusinessMinutes;
  return state.consumedBusinessMinutes + businessMinutesBetween(cal, state.runningSince, at);
}

/** Stops the clock. Pausing a paused clock only updates the reason (PAUSED → RESOLVED). */
export function pauseSlaClock(
  state: SlaClockState,
  cal: BusinessCalendar,
  at: Date,
  reason: SlaPauseReason,
): SlaClockState {
  if (state.runningSince === null)
    return state.pauseReason === reason ? state : { ...state, pauseReason: reason };
  return {
    ...state,
    consumedBusinessMinutes: slaClockReading(state, cal, at),
    runningSince: null,
    pausedAt: at,
    pauseReason: reason,
  };
}

/** Restarts a paused clock at `at`; a running clock is returned unchanged. */
export function resumeSlaClock(state: SlaClockState, at: Date): SlaClockState {
  if (state.runningSince !== null) return state;
  return { ...state, runningSince: at, pausedAt: null, pauseReason: null };
}

/**
 * The clock after a status change: PAUSED stops it while waiting on the customer,
 * RESOLVED and CLOSED stop it as done; NEW, ACTIVE and REOPENED run it.
 */
export function applyStatusToSlaClock(
  state: SlaClockState,
  cal: BusinessCalendar,
  status: ConversationStatus,
  at: Date,
): SlaClockState {
  switch (status) {
    case "PAUSED":
      return pauseSlaClock(state, cal, at, "PAUSED");
    case "RESOLVED":
    case "CLOSED":
      return pauseSlaClock(state, cal, at, "RESOLVED");
    default:
      return resumeSlaClock(state, at);
  }
}

/**
 * A customer message arrived. Before the first reply it is covered by the first-response
 * target; after it, the first unanswered message starts the next-response target (later
 * ones do not push it back).
 */
export function recordInbound(state: SlaClockState, cal: BusinessCalendar, at: Date): SlaClockState {
  if (state.firstResponseAt === null || state.awaitingReplySince !== null) return state;
  return { ...state, awaitingReplySince: at, awaitingReplyClock: slaClockReading(state, cal, at) };
}

/** An agent replied to the customer (notes do not count): meets first or next response. */
export function recordAgentReply(state: SlaClockState, cal: BusinessCalendar, at: Date): SlaClockState {
  if (state.firstResponseAt === null) {
    return { ...state, firstResponseAt: at, firstResponseClock: slaClockReading(state, cal, at) };
  }
  if (state.awaitingReplySince === null) return state;
  return { ...state, awaitingReplySince: null, awaitingReplyClock: null };
}

export type SlaTarget = "FIRST_RESPONSE" | "NEXT_RESPONSE" | "RESOLUTION";

/**
 * RUNNING: pending, clock counting; PAUSED: pending, clock stopped;
 * MET / MISSED: done (replied, or resolved) on time / late.
 */
export type SlaPhase = "RUNNING" | "PAUSED" | "MET" | "MISSED";

export interface SlaTargetState {
  target: SlaTarget;
  phase: SlaPhase;
  /** The target in business minutes. */
  targetMinutes: number;
  /** When the target is (was) due; null while paused, once done, or if already passed before the current running period. */
  dueAt: Date | null;
  /** When the warning is (was) due, on the same terms as `dueAt`. */
  warnAt: Date | null;
  /** Business minutes used toward the target. */
  elapsedBusinessMinutes: number;
  /** Minutes left; negative once overdue (for ordering queues by SLA remaining). */
  remainingBusinessMinutes: number;
  warned: boolean;
  breached: boolean;
}

export interface SlaStatus {
  firstResponse: SlaTargetState | null;
  nextResponse: SlaTargetState | null;
  resolution: SlaTargetState | null;
}

interface Pending {
  target: SlaTarget;
  /** Clock reading at which the target started (0, or the awaited message's). */
  origin: number;
  minutes: number;
  /** Clock reading when it was done (reply/resolution), or null while pending. */
  doneAt: number | null;
}

function targets(state: SlaClockState, policy: EffectiveSlaPolicy): Pending[] {
  const out: Pending[] = [];
  if (policy.firstResponseMinutes !== null) {
    out.push({
      target: "FIRST_RESPONSE",
      origin: 0,
      minutes: policy.firstResponseMinutes,
      doneAt: state.firstResponseClock,
    });
  }
  if (policy.nextResponseMinutes !== null && state.awaitingReplyClock !== null) {
    out.push({
      target: "NEXT_RESPONSE",
      origin: state.awaitingReplyClock,
      minutes: policy.nextResponseMinutes,
      doneAt: null,
    });
  }
  if (policy.resolutionMinutes !== null) {
    out.push({
      target: "RESOLUTION",
      origin: 0,
      minutes: policy.resolutionMinutes,
      doneAt: state.pauseReason === "RESOLVED" ? state.consumedBusinessMinutes : null,
    });
  }
  return out;
}

/**
 * Warning and due instants of the pending targets, all from one calendar walk; null
 * where there is none (see `slaDeadlines`).
 */
export interface SlaDeadlines {
  firstResponseDueAt: Date | null;
  firstResponseWarnAt: Date | null;
  nextResponseDueAt: Date | null;
  nextResponseWarnAt: Date | null;
  resolutionDueAt: Date | null;
  resolutionWarnAt: Date | null;
}

const KEYS = {
  FIRST_RESPONSE: ["firstResponseDueAt", "firstResponseWarnAt"],
  NEXT_RESPONSE: ["nextResponseDueAt", "nextResponseWarnAt"],
  RESOLUTION: ["resolutionDueAt", "resolutionWarnAt"],
} as const;

/** Clock reading at which the warning fires. */
function warnReading(p: Pending, percent: number): number {
  return p.origin + (p.minutes * percent) / 100;
}

/**
 * The instants at which pending targets warn and fall due — what the timer jobs are
 * scheduled for. Null for targets not configured, done, paused, or already passed
 * before the current running period.
 */
export function slaDeadlines(
  state: SlaClockState,
  policy: EffectiveSlaPolicy,
  cal: BusinessCalendar,
): SlaDeadlines {
  const out: SlaDeadlines = {
    firstResponseDueAt: null,
    firstResponseWarnAt: null,
    nextResponseDueAt: null,
    nextResponseWarnAt: null,
    resolutionDueAt: null,
    resolutionWarnAt: null,
  };
  const since = state.runningSince;
  if (since === null) return out;
  const keys: (keyof SlaDeadlines)[] = [];
  const amounts: number[] = [];
  for (const p of targets(state, policy)) {
    if (p.doneAt !== null) continue;
    const [dueKey, warnKey] = KEYS[p.target];
    const due = p.origin + p.minutes - state.consumedBusinessMinutes;
    const warn = warnReading(p, policy.warningPercent) - state.consumedBusinessMinutes;
    // A reading already passed before this period began has no instant in it.
    if (due > 0) {
      keys.push(dueKey);
      amounts.push(due);
    }
    if (warn > 0) {
      keys.push(warnKey);
      amounts.push(warn);
    }
  }
  if (amounts.length === 0) return out;
  const at = addBusinessMinutesMany(cal, since, amounts);
  keys.forEach((k, i) => {
    out[k] = at[i] as Date;
  });
  return out;
}

/** Every configured target's standing at `now`: what the API and queue ordering show. */
export function slaState(
  state: SlaClockState,
  policy: EffectiveSlaPolicy,
  cal: BusinessCalendar,
  now: Date,
): SlaStatus {
  const reading = slaClockReading(state, cal, now);
  const deadlines = slaDeadlines(state, policy, cal);
  const status: SlaStatus = { firstResponse: null, nextResponse: null, resolution: null };
  for (const p of targets(state, policy)) {
    const [dueKey, warnKey] = KEYS[p.target];
    const used = (p.doneAt ?? reading) - p.origin;
    const warnAt = (p.minutes * policy.warningPercent) / 100;
    let phase: SlaPhase;
    if (p.doneAt !== null) phase = used <= p.minutes ? "MET" : "MISSED";
    else phase = state.runningSince === null ? "PAUSED" : "RUNNING";
    const done = p.doneAt !== null;
    const entry: SlaTargetState = {
      target: p.target,
      phase,
      targetMinutes: p.minutes,
      dueAt: done ? null : deadlines[dueKey],
      warnAt: done ? null : deadlines[warnKey],
      elapsedBusinessMinutes: used,
      remainingBusinessMinutes: p.minutes - used,
      warned: used >= warnAt,
      breached: done ? used > p.minutes : used >= p.minutes,
    };
    if (p.target === "FIRST_RESPONSE") status.firstResponse = entry;
    else if (p.target === "NEXT_RESPONSE") status.nextResponse = entry;
    else status.resolution = entry;
  }
  return status;
}

/**
 * When a conversation counts as at risk and as breached for queue figures, so a queue's
 * counts are one SQL aggregate over stored instants instead of a calendar walk per
 * conversation. Valid from the state change that produced them until the next one (the
 * clock only changes through the functions above, and every change recomputes these):
 *
 * - breached from `breachedFrom` on: a pending target's due instant while the clock runs,
 *   or the start of the current period / pause when a target was already breached then
 *   (overdue before a pause, or done late — MISSED);
 * - at risk from `atRiskFrom` on, unless breached: a pending target's warning instant, or
 *   the start of the current period / pause when a pending target was already warned.
 *
 * A paused clock (PAUSED, or RESOLVED/CLOSED) does not run, so it only carries what was
 * already reached when it stopped; null = cannot happen without another state change.
 * For any `now` after the state change, `breachedFrom <= now` equals `slaState(…, now)`
 * having a breached target and `atRiskFrom <= now` a warned pending (RUNNING or PAUSED) one.
 */
export interface SlaMarks {
  atRiskFrom: Date | null;
  breachedFrom: Date | null;
}

export function slaMarks(state: SlaClockState, policy: EffectiveSlaPolicy, cal: BusinessCalendar): SlaMarks {
  const since = state.runningSince;
  // Some instant at or before the state change: where "already reached" is anchored.
  const already = since ?? state.pausedAt ?? state.startedAt;
  let breachedFrom: Date | null = null;
  let atRiskFrom: Date | null = null;
  const amounts: number[] = [];
  const isBreach: boolean[] = [];
  for (const p of targets(state, policy)) {
    if (p.doneAt !== null) {
      if (p.doneAt - p.origin > p.minutes) breachedFrom = already;
      continue;
    }
    const due = p.origin + p.minutes - state.consumedBusinessMinutes;
    const warn = warnReading(p, policy.warningPercent) - state.consumedBusinessMinutes;
    if (since === null) {
      if (due <= 0) breachedFrom = already;
      if (warn <= 0) atRiskFrom = already;
      continue;
    }
    amounts.push(Math.max(0, due), Math.max(0, warn));
    isBreach.push(true, false);
  }
  if (since !== null && amounts.length > 0) {
    const at = addBusinessMinutesMany(cal, since, amounts);
    at.forEach((instant, i) => {
      if (isBreach[i]) breachedFrom = earliest(breachedFrom, instant);
      else atRiskFrom = earliest(atRiskFrom, instant);
    });
  }
  return { atRiskFrom, breachedFrom };
}

function earliest(a: Date | null, b: Date): Date {
  return a === null || b < a ? b : a;
}
