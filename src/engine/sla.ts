import { and, eq, isNull } from "drizzle-orm";
import type { DbOrTx, Tx } from "../db/client.js";
import {
  businessCalendar,
  conversation,
  emailAddress,
  queue,
  slaPolicy,
  tenant,
} from "../db/schema/index.js";
import type { EngineContext } from "./context.js";
import type { BusinessCalendar, ConversationStatus, IsoWeekday } from "./domain.js";
import { appendEvents, type NewEvent } from "./events.js";
import { validateCalendar } from "./time/calendar.js";
import {
  applyStatusToSlaClock,
  type EffectiveSlaPolicy,
  recordAgentReply,
  recordInbound,
  resolveSlaPolicy,
  type SlaClockState,
  type SlaPolicySource,
  type SlaStatus,
  type SlaTarget,
  slaDeadlines,
  slaMarks,
  slaState,
  startSlaClock,
} from "./time/sla.js";

/**
 * The SLA service: the pure clock of engine/time/sla.ts applied to stored
 * conversations. The clock state lives in `conversation.sla_state` (JSON), the due
 * instants in the `*_due_at` columns (for ordering), the instants from which it counts as
 * at risk / breached in `sla_at_risk_from` / `sla_breached_from` (queue counts), and one
 * `sla-check` job is scheduled for the next warning or due instant whenever the state
 * changes. The job re-reads the conversation and only announces what `slaState` says
 * has happened by then, once per target and cycle (a stale or duplicate job does
 * nothing), so warnings and breaches are timed events without trusting the job's time.
 */

export const SLA_CHECK_JOB = "sla-check";

export interface SlaCheckJob {
  conversationId: string;
  /** Times this job fired before anything was due (clock skew); bounded to stop a loop. */
  attempt?: number;
}

/** A queue or policy without a calendar counts around the clock. */
export const ALWAYS_OPEN: BusinessCalendar = Object.freeze({
  timeZone: "UTC",
  intervals: ([1, 2, 3, 4, 5, 6, 7] as IsoWeekday[]).map((weekday) => ({
    weekday,
    start: "00:00",
    end: "24:00",
  })),
  holidays: [],
}) as BusinessCalendar;

const EARLY_FIRE_LIMIT = 3;

/**
 * Passed explicitly: pg-boss 10 rejects a send whose retry options are present but
 * undefined ("retryDelay must be an integer"), which is how the scheduler forwards unset ones.
 */
export const TIMER_RETRY = { retryLimit: 5, retryDelaySeconds: 30, retryBackoff: true } as const;

/** What `conversation.sla_state` holds. */
interface StoredSla {
  clock: Record<keyof SlaClockState, string | number | null>;
  source: SlaPolicySource;
  /** Announced notifications: `FIRST_RESPONSE:0:warning`, `NEXT_RESPONSE:<since>:breach`. */
  notified: string[];
}

const DATE_KEYS = ["startedAt", "runningSince", "pausedAt", "firstResponseAt", "awaitingReplySince"] as const;

function encodeClock(s: SlaClockState): StoredSla["clock"] {
  const out: Record<string, string | number | null> = { ...(s as unknown as Record<string, never>) };
  for (const k of DATE_KEYS) out[k] = s[k] ? (s[k] as Date).toISOString() : null;
  return out as StoredSla["clock"];
}

function decodeClock(c: StoredSla["clock"]): SlaClockState {
  const out: Record<string, unknown> = { ...c };
  for (const k of DATE_KEYS) out[k] = c[k] ? new Date(c[k] as string) : null;
  return out as unknown as SlaClockState;
}

type ConvRow = typeof conversation.$inferSelect;

interface SlaEnv {
  policy: EffectiveSlaPolicy;
  calendar: BusinessCalendar;
}

async function loadCalendar(
  db: DbOrTx,
  tenantId: string,
  id: string | null,
): Promise<BusinessCalendar | null> {
  if (!id) return null;
  const [row] = await db
    .select({
      timeZone: businessCalendar.timeZone,
      intervals: businessCalendar.intervals,
      holidays: businessCalendar.holidays,
    })
    .from(businessCalendar)
    .where(and(eq(businessCalendar.id, id), eq(businessCalendar.tenantId, tenantId)));
  // A calendar that never opens, or was stored before today's validation rules, would make
  // every deadline computation throw (and so stall ingest): count around the clock instead.
  return row && row.intervals.length > 0 && validateCalendar(row).length === 0 ? row : null;
}

/** The policy and calendar a conversation's SLA is measured with (queue calendar, else policy's). */
async function loadEnv(db: DbOrTx, conv: ConvRow, source: SlaPolicySource): Promise<SlaEnv | null> {
  if (!conv.slaPolicyId) return null;
  const [p] = await db
    .select()
    .from(slaPolicy)
    .where(and(eq(slaPolicy.id, conv.slaPolicyId), eq(slaPolicy.tenantId, conv.tenantId)));
  if (!p) return null;
  const [q] = conv.queueId
    ? await db.select({ calendarId: queue.calendarId }).from(queue).where(eq(queue.id, conv.queueId))
    : [];
  const calendar =
    (await loadCalendar(db, conv.tenantId, q?.calendarId ?? null)) ??
    (await loadCalendar(db, conv.tenantId, p.calendarId)) ??
    ALWAYS_OPEN;
  const policy = resolveSlaPolicy({ tenantDefault: p });
  return { policy: { ...policy, source }, calendar };
}

/** Queue > address > tenant default (SPEC §2); archived policies do not apply. */
export async function resolveConversationPolicy(
  db: DbOrTx,
  tenantId: string,
  queueId: string | null,
  addressId: string | null,
): Promise<{ policyId: string; source: SlaPolicySource } | null> {
  const live = async (id: string | null) => {
    if (!id) return false;
    const [row] = await db
      .select({ id: slaPolicy.id })
      .from(slaPolicy)
      .where(and(eq(slaPolicy.id, id), eq(slaPolicy.tenantId, tenantId), isNull(slaPolicy.archivedAt)));
    return !!row;
  };
  const [q] = queueId
    ? await db.select({ p: queue.slaPolicyId }).from(queue).where(eq(queue.id, queueId))
    : [];
  if (await live(q?.p ?? null)) return { policyId: q!.p!, source: "QUEUE" };
  const [a] = addressId
    ? await db
        .select({ p: emailAddress.slaPolicyId })
        .from(emailAddress)
        .where(eq(emailAddress.id, addressId))
    : [];
  if (await live(a?.p ?? null)) return { policyId: a!.p!, source: "ADDRESS" };
  const [t] = await db.select({ p: tenant.defaultSlaPolicyId }).from(tenant).where(eq(tenant.id, tenantId));
  if (await live(t?.p ?? null)) return { policyId: t!.p!, source: "TENANT" };
  return null;
}

function cycleOf(target: SlaTarget, clock: SlaClockState): string {
  return target === "NEXT_RESPONSE" ? (clock.awaitingReplySince?.toISOString() ?? "-") : "0";
}

/** Writes state and due columns, and schedules the next check (earliest un-announced instant). */
async function save(
  tx: Tx,
  ctx: EngineContext,
  conv: ConvRow,
  env: SlaEnv,
  stored: StoredSla,
  clock: SlaClockState,
  attempt: number,
): Promise<void> {
  const d = slaDeadlines(clock, env.policy, env.calendar);
  const marks = slaMarks(clock, env.policy, env.calendar);
  await tx
    .update(conversation)
    .set({
      slaState: { ...stored, clock: encodeClock(clock) } as unknown as Record<string, unknown>,
      firstResponseDueAt: d.firstResponseDueAt,
      nextResponseDueAt: d.nextResponseDueAt,
      resolutionDueAt: d.resolutionDueAt,
      slaAtRiskFrom: marks.atRiskFrom,
      slaBreachedFrom: marks.breachedFrom,
    })
    .where(eq(conversation.id, conv.id));
  const pending: [string, Date | null][] = [
    [`FIRST_RESPONSE:${cycleOf("FIRST_RESPONSE", clock)}:warning`, d.firstResponseWarnAt],
    [`FIRST_RESPONSE:${cycleOf("FIRST_RESPONSE", clock)}:breach`, d.firstResponseDueAt],
    [`NEXT_RESPONSE:${cycleOf("NEXT_RESPONSE", clock)}:warning`, d.nextResponseWarnAt],
    [`NEXT_RESPONSE:${cycleOf("NEXT_RESPONSE", clock)}:breach`, d.nextResponseDueAt],
    [`RESOLUTION:0:warning`, d.resolutionWarnAt],
    [`RESOLUTION:0:breach`, d.resolutionDueAt],
  ];
  let next: Date | null = null;
  for (const [key, at] of pending) {
    if (at && !stored.notified.includes(key) && (next === null || at < next)) next = at;
  }
  if (next === null || attempt > EARLY_FIRE_LIMIT) return;
  await ctx.jobs.schedule(SLA_CHECK_JOB, { conversationId: conv.id, attempt } satisfies SlaCheckJob, {
    db: tx,
    startAfter: next,
    ...TIMER_RETRY,
  });
}

/** Starts the SLA of a new conversation at the mail's received time (a backlog does not eat into it). */
export async function startConversationSla(
  tx: Tx,
  ctx: EngineContext,
  conversationId: string,
): Promise<void> {
  const [conv] = await tx.select().from(conversation).where(eq(conversation.id, conversationId));
  if (!conv) return;
  const resolved = await resolveConversationPolicy(tx, conv.tenantId, conv.queueId, conv.addressId);
  if (!resolved) return;
  const row = { ...conv, slaPolicyId: resolved.policyId };
  const env = await loadEnv(tx, row, resolved.source);
  if (!env) return;
  await tx.update(conversation).set({ slaPolicyId: resolved.policyId }).where(eq(conversation.id, conv.id));
  const stored: StoredSla = {
    clock: encodeClock(startSlaClock(conv.receivedAt)),
    source: resolved.source,
    notified: [],
  };
  await save(tx, ctx, row, env, stored, startSlaClock(conv.receivedAt), 0);
}

async function update(
  tx: Tx,
  ctx: EngineContext,
  conversationId: string,
  change: (clock: SlaClockState, cal: BusinessCalendar) => SlaClockState,
  known?: { slaState: unknown },
): Promise<void> {
  // The caller read the (locked) row already: without a clock there is nothing to change.
  if (known && !(known.slaState as StoredSla | null)?.clock) return;
  const [conv] = await tx.select().from(conversation).where(eq(conversation.id, conversationId));
  const stored = conv?.slaState as unknown as StoredSla | null;
  if (!conv || !stored?.clock) return;
  const env = await loadEnv(tx, conv, stored.source);
  if (!env) return;
  const before = decodeClock(stored.clock);
  const after = change(before, env.calendar);
  if (after === before) return;
  await save(tx, ctx, conv, env, stored, after, 0);
}

/** A status change: PAUSED stops the clock, RESOLVED/CLOSED stop it as done, others run it. */
export function applyStatusToSla(
  tx: Tx,
  ctx: EngineContext,
  conversationId: string,
  status: ConversationStatus,
  at: Date,
): Promise<void> {
  return update(tx, ctx, conversationId, (clock, cal) => applyStatusToSlaClock(clock, cal, status, at));
}

/** A customer message on an existing conversation (after its status was updated). */
export function recordInboundSla(
  tx: Tx,
  ctx: EngineContext,
  conversationId: string,
  at: Date,
): Promise<void> {
  return update(tx, ctx, conversationId, (clock, cal) => recordInbound(clock, cal, at));
}

/**
 * An agent reply went out (notes do not count): meets the first or the pending next
 * response. For the outbound service, inside the transaction that records the reply;
 * `known` is the conversation's `sla_state` when the caller holds the locked row (then a
 * conversation without an SLA clock costs no read).
 */
export function recordAgentReplySla(
  tx: Tx,
  ctx: EngineContext,
  conversationId: string,
  at: Date,
  known?: { slaState: unknown },
): Promise<void> {
  return update(tx, ctx, conversationId, (clock, cal) => recordAgentReply(clock, cal, at), known);
}

/** The `sla-check` job: announce warnings and breaches that are due by now, once each. */
export async function runSlaCheck(ctx: EngineContext, job: SlaCheckJob): Promise<NewEvent[]> {
  const events = await ctx.db.transaction(async (tx) => {
    const [conv] = await tx
      .select()
      .from(conversation)
      .where(eq(conversation.id, job.conversationId))
      .for("update");
    const stored = conv?.slaState as unknown as StoredSla | null;
    if (!conv || !stored?.clock) return [];
    const env = await loadEnv(tx, conv, stored.source);
    if (!env) return [];
    const now = ctx.clock.now();
    const clock = decodeClock(stored.clock);
    const status = slaState(clock, env.policy, env.calendar, now);
    const out: NewEvent[] = [];
    const notified = [...stored.notified];
    let breached = false;
    for (const s of [status.firstResponse, status.nextResponse, status.resolution]) {
      // A clock paused after a target fell due but before this check ran still breached it
      // (the reading stopped past the target): announce the breach; warnings of a paused
      // clock are moot and stay silent.
      const pausedOverdue = s?.phase === "PAUSED" && s.breached;
      if (s?.phase !== "RUNNING" && !pausedOverdue) continue;
      const base = `${s.target}:${cycleOf(s.target, clock)}`;
      const payload = {
        target: s.target,
        targetMinutes: s.targetMinutes,
        elapsedBusinessMinutes: Math.round(s.elapsedBusinessMinutes * 100) / 100,
        dueAt: s.dueAt?.toISOString() ?? null,
        policySource: stored.source,
      };
      if (!pausedOverdue && s.warned && !s.breached && !notified.includes(`${base}:warning`)) {
        notified.push(`${base}:warning`);
        out.push({ ...eventBase(conv, now), type: "sla.warning", payload });
      }
      if (s.breached && !notified.includes(`${base}:breach`)) {
        // A breach also settles the warning: no late warning after the breach.
        if (!notified.includes(`${base}:warning`)) notified.push(`${base}:warning`);
        notified.push(`${base}:breach`);
        breached = true;
        out.push({ ...eventBase(conv, now), type: "sla.breached", payload });
      }
    }
    if (breached)
      await tx.update(conversation).set({ slaBreached: true }).where(eq(conversation.id, conv.id));
    await save(
      tx,
      ctx,
      conv,
      env,
      { ...stored, notified },
      clock,
      out.length > 0 ? 0 : (job.attempt ?? 0) + 1,
    );
    await appendEvents(tx, out);
    return out;
  });
  if (events.length > 0) ctx.hub.wake();
  return events;
}

function eventBase(conv: ConvRow, at: Date) {
  return { tenantId: conv.tenantId, conversationId: conv.id, queueId: conv.queueId, occurredAt: at };
}

export interface ConversationSla extends SlaStatus {
  policyId: string;
  policySource: SlaPolicySource;
  /** Any target breached at some point (sticky). */
  breached: boolean;
}

/** A conversation's SLA standing at the engine clock's now; null without an SLA. */
export async function conversationSla(ctx: EngineContext, conv: ConvRow): Promise<ConversationSla | null> {
  const stored = conv.slaState as unknown as StoredSla | null;
  if (!stored?.clock || !conv.slaPolicyId) return null;
  const env = await loadEnv(ctx.db, conv, stored.source);
  if (!env) return null;
  const status = slaState(decodeClock(stored.clock), env.policy, env.calendar, ctx.clock.now());
  return {
    ...status,
    policyId: conv.slaPolicyId,
    policySource: stored.source,
    breached:
      conv.slaBreached ||
      [status.firstResponse, status.nextResponse, status.resolution].some((s) => s?.breached),
  };
}
