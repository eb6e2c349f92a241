import { and, eq, sql } from "drizzle-orm";
import type { Tx } from "../db/client.js";
import { conversation, tenant } from "../db/schema/index.js";
import type { EngineContext } from "./context.js";
import { getConversation } from "./conversations.js";
import type { ConversationStatus } from "./domain.js";
import { ConflictError, NotFoundError } from "./errors.js";
import { appendEvents, type NewEvent } from "./events.js";
import { addressLiveQueue, isLiveQueue } from "./live-queues.js";
import { releaseConversation } from "./routing/actions.js";
import { applyStatusToSla, TIMER_RETRY } from "./sla.js";
import {
  canTransition,
  nextTimer,
  type StatusTimerKind,
  type StatusTimerSettings,
  transitionError,
} from "./time/lifecycle.js";
import type { Viewer } from "./viewer.js";

/**
 * The status machine applied to stored conversations (SPEC §4): agent and supervisor
 * transitions, the status timers as pg-boss jobs, and what finishing a conversation does
 * to routing. The rules themselves are the pure functions of engine/time/lifecycle.ts.
 *
 * Timers: whenever status or activity changes, the transaction schedules one
 * `status-timer` job for `nextTimer(...)`. When it fires it re-reads the conversation and
 * asks `nextTimer` again: nothing pending → nothing; due later (activity since) → it
 * reschedules itself for the new time; due → the system transition. So a stale job is
 * harmless and jobs need no cancelling.
 */

export const STATUS_TIMER_JOB = "status-timer";

export interface StatusTimerJob {
  conversationId: string;
  /** The due time it was scheduled for (ISO), to tell clock skew from a moved deadline. */
  dueAt: string;
  attempt?: number;
}

const EARLY_FIRE_LIMIT = 3;

type ConvRow = typeof conversation.$inferSelect;
type TenantRow = typeof tenant.$inferSelect;

export function timerSettings(t: TenantRow): StatusTimerSettings {
  return {
    activeToPausedDays: t.activeToPausedDays,
    pausedToClosedDays: t.pausedToClosedDays,
    resolvedToClosedDays: t.resolvedToClosedDays,
  };
}

/** Schedules the conversation's pending status timer, if any, on the caller's transaction. */
export async function scheduleStatusTimer(
  tx: Tx,
  ctx: EngineContext,
  conv: Pick<ConvRow, "id" | "tenantId" | "status" | "lastActivityAt" | "statusChangedAt">,
  settings?: StatusTimerSettings,
  attempt = 0,
): Promise<void> {
  let s = settings;
  if (!s) {
    const [t] = await tx.select().from(tenant).where(eq(tenant.id, conv.tenantId));
    if (!t) return;
    s = timerSettings(t);
  }
  const timer = nextTimer(conv, s);
  if (!timer || attempt > EARLY_FIRE_LIMIT) return;
  await ctx.jobs.schedule(
    STATUS_TIMER_JOB,
    { conversationId: conv.id, dueAt: timer.dueAt.toISOString(), attempt } satisfies StatusTimerJob,
    { db: tx, startAfter: timer.dueAt, ...TIMER_RETRY },
  );
}

const FINISHED: readonly ConversationStatus[] = ["RESOLVED", "CLOSED"];

/**
 * Moves a locked conversation to `to` and writes the event; shared by people and timers.
 * Finishing releases routing (work state DONE, the agent's capacity freed); reopening a
 * finished one puts it back in its queue. Returns the queues to route after commit.
 */
async function applyTransition(
  tx: Tx,
  ctx: EngineContext,
  conv: ConvRow,
  t: TenantRow,
  to: ConversationStatus,
  actor: { type: "USER"; id: string } | { type: "SYSTEM" },
  reason: string,
): Promise<string[]> {
  const now = ctx.clock.now();
  const finishing = FINISHED.includes(to);
  const reviving = !finishing && conv.workState === "DONE";
  // Finishing hands the conversation back through routing: work state DONE, the running
  // handle-time segment folded in, the owner's capacity freed and — where the queue says
  // so — the agent's next parked conversation presented. Every queue of that agent gains
  // capacity, so all of them are routed after commit.
  const released =
    finishing && conv.workState !== "DONE"
      ? await releaseConversation(tx, ctx, conv.id, `status:${to.toLowerCase()}`)
      : { queueIds: [] as string[] };
  // Back into its queue only while that queue is live, key-share locked as ingest does (an
  // archive waits for this, then sees the work and is refused). Its queue archived, the
  // address's live queue takes it, as it takes a customer's reply (ingest); with none, it
  // waits outside every queue, in the unrouted list. Until 2026-11-23 it went back WAITING
  // into the archived queue, where no agent is ever offered it (re-probes, session 17).
  const archivedQueue =
    reviving && conv.queueId && !(await isLiveQueue(tx, conv.tenantId, conv.queueId)) ? conv.queueId : null;
  const queueId = archivedQueue ? await addressLiveQueue(tx, conv.tenantId, conv.addressId) : conv.queueId;
  const [updated] = await tx
    .update(conversation)
    .set({
      status: to,
      statusChangedAt: now,
      lastActivityAt: actor.type === "USER" ? now : conv.lastActivityAt,
      resolvedAt: to === "RESOLVED" ? now : finishing ? conv.resolvedAt : null,
      closedAt: to === "CLOSED" ? now : null,
      ...(reviving
        ? { workState: "WAITING" as const, enqueuedAt: now, assigneeId: null, offerExcludedIds: [], queueId }
        : {}),
    })
    .where(eq(conversation.id, conv.id))
    .returning();
  const actorOf = { actorType: actor.type, actorId: actor.type === "USER" ? actor.id : null };
  const events: NewEvent[] = [
    {
      tenantId: conv.tenantId,
      type: "conversation.status_changed",
      conversationId: conv.id,
      queueId: updated!.queueId,
      agentId: conv.assigneeId,
      ...actorOf,
      occurredAt: now,
      payload: { from: conv.status, to, reason },
    },
  ];
  if (reviving && queueId) {
    events.push({
      tenantId: conv.tenantId,
      type: "conversation.queued",
      conversationId: conv.id,
      queueId,
      ...actorOf,
      occurredAt: now,
      payload: archivedQueue
        ? { reason: "reopened", previousQueueId: archivedQueue, previousQueue: "archived" }
        : { reason: "reopened" },
    });
  } else if (archivedQueue) {
    events.push({
      tenantId: conv.tenantId,
      type: "conversation.unrouted",
      conversationId: conv.id,
      occurredAt: now,
      payload: { reason: "queue_archived", requestedQueueId: archivedQueue },
    });
  }
  await appendEvents(tx, events);
  await applyStatusToSla(tx, ctx, conv.id, to, now);
  await scheduleStatusTimer(tx, ctx, updated!, timerSettings(t));
  const toRoute = new Set(released.queueIds);
  if ((released.queueIds.length > 0 || reviving) && queueId) toRoute.add(queueId);
  return [...toRoute];
}

/**
 * An agent, supervisor or admin changes a conversation's status. Illegal moves (per
 * `canTransition` and the caller's role) are a ConflictError naming why; a conversation
 * outside the caller's queues is not found.
 */
export async function setConversationStatus(
  ctx: EngineContext,
  viewer: Viewer,
  conversationId: string,
  to: ConversationStatus,
): Promise<ConvRow> {
  await getConversation(ctx, viewer, conversationId);
  const { row, route } = await ctx.db.transaction(async (tx) => {
    const [conv] = await tx
      .select()
      .from(conversation)
      .where(and(eq(conversation.id, conversationId), eq(conversation.tenantId, viewer.tenantId)))
      .for("update");
    const [t] = await tx.select().from(tenant).where(eq(tenant.id, viewer.tenantId));
    if (!conv || !t) throw new NotFoundError("Conversation", conversationId);
    const refused = transitionError(conv.status, to, viewer.role);
    if (refused !== null) throw new ConflictError(refused, "ILLEGAL_TRANSITION");
    const route = await applyTransition(tx, ctx, conv, t, to, { type: "USER", id: viewer.userId }, "manual");
    const [row] = await tx.select().from(conversation).where(eq(conversation.id, conversationId));
    return { row: row!, route };
  });
  for (const queueId of route) ctx.signals.routeQueue(row.tenantId, queueId);
  ctx.hub.wake();
  return row;
}

export type StatusTimerOutcome = "fired" | "not-due" | "none";

/**
 * The `status-timer` job. Re-reads the conversation: fires the system transition when
 * its timer is due by the engine clock, reschedules when activity moved it later, and
 * does nothing when no timer applies any more (status changed, timer switched off).
 */
export async function runStatusTimer(
  ctx: EngineContext,
  job: StatusTimerJob,
): Promise<{ outcome: StatusTimerOutcome; kind?: StatusTimerKind }> {
  const result = await ctx.db.transaction(async (tx) => {
    const [conv] = await tx
      .select()
      .from(conversation)
      .where(eq(conversation.id, job.conversationId))
      .for("update");
    if (!conv) return { outcome: "none" as const, route: [] as string[] };
    const [t] = await tx.select().from(tenant).where(eq(tenant.id, conv.tenantId));
    if (!t) return { outcome: "none" as const, route: [] as string[] };
    const settings = timerSettings(t);
    const timer = nextTimer(conv, settings);
    if (!timer || !canTransition(conv.status, timer.to, "SYSTEM"))
      return { outcome: "none" as const, route: [] as string[] };
    if (timer.dueAt.getTime() > ctx.clock.now().getTime()) {
      // Fired early: the deadline moved (new activity) or the clocks disagree. Only the
      // latter can repeat for the same deadline, so that is what the attempt bound counts.
      const same = timer.dueAt.toISOString() === job.dueAt;
      await scheduleStatusTimer(tx, ctx, conv, settings, same ? (job.attempt ?? 0) + 1 : 0);
      return { outcome: "not-due" as const, route: [] as string[] };
    }
    const route = await applyTransition(
      tx,
      ctx,
      conv,
      t,
      timer.to,
      { type: "SYSTEM" },
      `timer:${timer.kind}`,
    );
    return {
      outcome: "fired" as const,
      kind: timer.kind,
      route,
      queueId: conv.queueId,
      tenantId: conv.tenantId,
    };
  });
  if (result.outcome === "fired") {
    if ("tenantId" in result)
      for (const queueId of result.route) ctx.signals.routeQueue(result.tenantId, queueId);
    ctx.hub.wake();
  }
  return "kind" in result ? { outcome: result.outcome, kind: result.kind } : { outcome: result.outcome };
}

/** Conversations of a tenant whose status timer is due at the engine clock's now (a safety-net sweep). */
export async function dueStatusTimerIds(ctx: EngineContext, limit = 500): Promise<string[]> {
  const now = ctx.clock.now().toISOString();
  const rows = await ctx.db.execute<{ id: string }>(sql`
    SELECT c.id FROM conversation c JOIN tenant t ON t.id = c.tenant_id
    WHERE (c.status IN ('ACTIVE', 'REOPENED') AND t.active_to_paused_days IS NOT NULL
             AND greatest(c.last_activity_at, c.status_changed_at) + make_interval(days => t.active_to_paused_days) <= ${now}::timestamptz)
       OR (c.status = 'PAUSED' AND t.paused_to_closed_days IS NOT NULL
             AND c.status_changed_at + make_interval(days => t.paused_to_closed_days) <= ${now}::timestamptz)
       OR (c.status = 'RESOLVED' AND t.resolved_to_closed_days IS NOT NULL
             AND c.status_changed_at + make_interval(days => t.resolved_to_closed_days) <= ${now}::timestamptz)
    LIMIT ${limit}`);
  return rows.map((r) => r.id);
}
