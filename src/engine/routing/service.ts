import type postgres from "postgres";
import { type DbOrTx, rawClient } from "../../db/client.js";
import type { EngineContext } from "../context.js";
import { appendEvents, type NewEvent } from "../events.js";
import { planAssignments, type RoutingDecision, type RoutingPlan } from "./assign.js";
import { type LoadedQueue, loadQueue, loadSnapshot, WAITING_PAGE } from "./snapshot.js";
import { iso } from "./sql-time.js";

/**
 * The routing service (ARCHITECTURE "Routing concurrency"): one pass over one queue in
 * one transaction.
 *
 * 1. `pg_advisory_xact_lock` on the tenant. Agents span queues, so a per-queue lock could
 *    let two passes over two queues fill the same agent twice; every change that adds
 *    load to an agent (a pass, a supervisor assignment, a pick from the queue) takes this
 *    lock, so the snapshot's loads can only be too high (a concurrent release), never too
 *    low.
 * 2. Snapshot with one query per record type, `planAssignments` (pure).
 * 3. The chosen agents' `agent_state` rows are locked (sorted, so two passes never
 *    deadlock) and their ACTIVE conversation re-read, so a delivery becomes ACTIVE only
 *    when the agent really has none (actions lock the same row to activate).
 * 4. Set-based UPDATEs guarded by `work_state = 'WAITING'`: a conversation that left the
 *    queue since the snapshot (picked, transferred, resolved) is skipped, never stolen.
 * 5. Events with the explanation, offer-timeout / preferred-wait / spacing timers, all in
 *    the same transaction; subscribers are woken after commit.
 */

export const ROUTING_JOBS = {
  /** The offers of one pass time out: { tenantId, queueId, expiresAt }. */
  offerTimeout: "routing-offer-timeout",
  /** Re-route a queue later (preferred-agent wait end, spacing window end): { tenantId, queueId }. */
  wake: "routing-wake",
  /** Customer-response countdown: { tenantId, conversationId, startedAt }. */
  countdown: "routing-countdown",
  /** Safety-net sweep over every queue with waiting work. */
  sweep: "routing-sweep",
} as const;

export interface PassResult {
  queueId: string;
  delivered: number;
  offered: number;
  /** Decisions the guarded UPDATE skipped because the conversation had left the queue. */
  skipped: number;
  /** Per delivered conversation: planning + apply time of the pass divided by deliveries. */
  decisionMs: number;
  /** A full page was planned and delivered: run again for the rest. */
  more: boolean;
  stopReason: RoutingPlan["stopReason"];
  /**
   * Nobody could take anything from this queue (no agent with room, auto-assign off,
   * outside business hours): new demand alone cannot change that (routing/trigger.ts).
   */
  noSupply: boolean;
  /** Wall-clock ms when the pass committed (for commit-to-subscriber measurements). */
  committedAt: number;
}

/** Postgres advisory-lock key for a tenant's routing (one namespace, hashed uuid). */
export async function lockTenantRouting(tx: DbOrTx, tenantId: string): Promise<void> {
  const sql = rawClient(tx);
  await sql`SELECT pg_advisory_xact_lock(hashtextextended(${`routing:${tenantId}`}, 0))`;
}

/**
 * Deliveries per pass (one transaction). Nothing of a pass reaches a subscriber before it
 * commits, so a 400-delivery pass made its first agent wait for all 400; small passes
 * commit every few milliseconds and keep the event bursts (hub read, inbox resolution)
 * small. A capped pass is re-queued at once by the trigger, so throughput stays.
 */
export const PASS_DELIVERY_CAP = 40;

interface Delivery {
  d: RoutingDecision;
  agentId: string;
  activate: boolean;
}

/** One routing pass over one queue; call it outside any transaction (it opens its own). */
export async function routeQueueOnce(
  ctx: EngineContext,
  tenantId: string,
  queueId: string,
): Promise<PassResult> {
  const result = await ctx.db.transaction(async (tx) => {
    const sql = rawClient(tx);
    const now = ctx.clock.now();
    // Pipelined on the transaction's connection: the server runs the queue read only once
    // the lock is held (statements of one connection run in order, each with a fresh snapshot).
    const [, loaded] = await Promise.all([
      lockTenantRouting(tx, tenantId),
      loadQueue(sql, tenantId, queueId, now),
    ]);
    const empty: PassResult = {
      queueId,
      delivered: 0,
      offered: 0,
      skipped: 0,
      decisionMs: 0,
      more: false,
      stopReason: null,
      noSupply: false,
      committedAt: 0,
    };
    if (!loaded || loaded.archived) return empty;
    const t0 = performance.now();
    const snapshot = await loadSnapshot(sql, loaded, WAITING_PAGE, PASS_DELIVERY_CAP);
    // A page limit of 0: the agents were read and none can take anything (the waiting
    // conversations were not even loaded).
    if (snapshot.waiting.length === 0) return { ...empty, noSupply: snapshot.pageLimit === 0 };
    const plan = planAssignments(snapshot, now, PASS_DELIVERY_CAP);
    const applied = await applyPlan(tx, ctx, loaded, plan, now);
    const ms = performance.now() - t0;
    return {
      ...applied,
      queueId,
      decisionMs: applied.delivered + applied.offered > 0 ? ms / (applied.delivered + applied.offered) : 0,
      more:
        applied.delivered + applied.offered > 0 &&
        (plan.capped || (snapshot.pageLimit > 0 && snapshot.waiting.length === snapshot.pageLimit)),
      stopReason: plan.stopReason,
      noSupply: applied.delivered + applied.offered === 0 && plan.stopReason !== null,
      committedAt: 0,
    };
  });
  result.committedAt = Date.now();
  ctx.hub.wake();
  return result;
}

async function applyPlan(
  tx: DbOrTx,
  ctx: EngineContext,
  loaded: LoadedQueue,
  plan: RoutingPlan,
  now: Date,
): Promise<{ delivered: number; offered: number; skipped: number }> {
  const sql = rawClient(tx);
  const { queue } = loaded;
  const tenantId = queue.tenantId;
  const chosen = plan.decisions.filter((d) => (d.kind === "assign" || d.kind === "offer") && d.agentId);
  const events: NewEvent[] = [];

  // Preferred-agent waits: wake the queue when the wait ends (the pass re-checks then).
  let earliestWait: Date | null = null;
  for (const d of plan.decisions) {
    if (d.kind === "wait" && d.waitUntil && (earliestWait === null || d.waitUntil < earliestWait)) {
      earliestWait = d.waitUntil;
    }
  }
  if (earliestWait) await scheduleWake(tx, ctx, tenantId, queue.id, earliestWait);
  // Agents held back only by auto-park spacing become free when their window ends.
  const spacingBlocked = plan.decisions.some((d) => d.kind === "none" && d.excluded.AUTO_PARK_SPACING);
  if (
    queue.autoParking &&
    queue.autoParkSpacingS > 0 &&
    (spacingBlocked || (plan.stopReason === "NO_AGENT_AVAILABLE" && chosen.length > 0))
  ) {
    await scheduleWake(tx, ctx, tenantId, queue.id, new Date(now.getTime() + queue.autoParkSpacingS * 1000));
  }
  if (chosen.length === 0) return { delivered: 0, offered: 0, skipped: 0 };
  const agentIds = [...new Set(chosen.map((d) => d.agentId!))].sort();
  // Three statements pipelined in one round trip; the server runs them in order, so the
  // ACTIVE re-read takes its snapshot only once the agents' rows are locked.
  const [, states, actives] = await Promise.all([
    sql`
      INSERT INTO agent_state (user_id, tenant_id)
      SELECT unnest(${agentIds}::uuid[]), ${tenantId}
      ON CONFLICT (user_id) DO NOTHING`,
    sql<{ user_id: string; interrupted: boolean }[]>`
      SELECT user_id, interrupted_at IS NOT NULL AS interrupted FROM agent_state
      WHERE user_id = ANY(${agentIds}::uuid[]) ORDER BY user_id FOR NO KEY UPDATE`,
    sql<{ assignee_id: string }[]>`
      SELECT assignee_id FROM conversation
      WHERE assignee_id = ANY(${agentIds}::uuid[]) AND work_state = 'ACTIVE'`,
  ]);
  const busy = new Set(states.filter((s) => s.interrupted).map((s) => s.user_id));
  for (const a of actives) busy.add(a.assignee_id);

  const deliveries: Delivery[] = [];
  for (const d of chosen) {
    const agentId = d.agentId!;
    const activate = d.kind === "assign" && !busy.has(agentId);
    if (activate) busy.add(agentId);
    deliveries.push({ d, agentId, activate });
  }
  const assigns = deliveries.filter((x) => x.d.kind === "assign");
  const offers = deliveries.filter((x) => x.d.kind === "offer");

  const done = new Set<string>();
  if (assigns.length > 0) {
    // Whoever gets it becomes the contact's preferred agent (SPEC §8): same statement.
    const rows = await sql<{ id: string }[]>`
      WITH d AS (
        SELECT unnest(${assigns.map((x) => x.d.conversationId)}::uuid[]) AS id,
               unnest(${assigns.map((x) => x.agentId)}::uuid[]) AS agent_id,
               unnest(${assigns.map((x) => (x.activate ? 1 : 0))}::int[]) = 1 AS activate
      ),
      upd AS (
        UPDATE conversation c SET
          work_state = CASE WHEN d.activate THEN 'ACTIVE' ELSE 'PARKED' END,
          assignee_id = d.agent_id, assigned_at = ${iso(now)}::timestamptz, offered_to_id = NULL, offer_expires_at = NULL,
          active_since = CASE WHEN d.activate THEN ${iso(now)}::timestamptz ELSE NULL END,
          last_activity_at = ${iso(now)}::timestamptz, updated_at = ${iso(now)}::timestamptz
        FROM d
        WHERE c.id = d.id AND c.work_state = 'WAITING' AND c.queue_id = ${queue.id}
        RETURNING c.id, c.contact_id, d.agent_id
      ),
      pref AS (
        UPDATE contact ct SET preferred_agent_id = upd.agent_id, preferred_agent_at = ${iso(now)}::timestamptz
        FROM upd
        WHERE ct.id = upd.contact_id AND ct.preferred_agent_id IS DISTINCT FROM upd.agent_id
      )
      SELECT id FROM upd`;
    for (const r of rows) done.add(r.id);
  }
  if (offers.length > 0) {
    const expires = new Date(now.getTime() + queue.offerTimeoutS * 1000);
    const rows = await sql<{ id: string }[]>`
      UPDATE conversation c SET work_state = 'OFFERED', offered_to_id = d.agent_id,
        offer_expires_at = ${iso(expires)}::timestamptz, updated_at = ${iso(now)}::timestamptz
      FROM (SELECT unnest(${offers.map((x) => x.d.conversationId)}::uuid[]) AS id,
                   unnest(${offers.map((x) => x.agentId)}::uuid[]) AS agent_id) d
      WHERE c.id = d.id AND c.work_state = 'WAITING' AND c.queue_id = ${queue.id}
      RETURNING c.id`;
    for (const r of rows) done.add(r.id);
    if (rows.length > 0) {
      // One timer for the whole pass: every offer made here shares this deadline.
      await ctx.jobs.schedule(
        ROUTING_JOBS.offerTimeout,
        { tenantId, queueId: queue.id, expiresAt: expires.toISOString() },
        // One job per queue and second: passes within the same second share it.
        { db: tx, startAfter: expires, singletonKey: `${queue.id}:${Math.floor(expires.getTime() / 1000)}` },
      );
    }
  }
  const applied = deliveries.filter((x) => done.has(x.d.conversationId));
  for (const x of applied) {
    const d = x.d;
    events.push({
      tenantId,
      type: d.kind === "offer" ? "routing.offered" : "routing.assigned",
      conversationId: d.conversationId,
      queueId: queue.id,
      agentId: x.agentId,
      occurredAt: now,
      payload: {
        mode: "AUTO",
        strategy: d.strategy,
        rankedBy: d.rankedBy,
        candidates: d.candidates,
        eligibleCount: d.eligibleCount,
        excluded: d.excluded,
        ...(d.note ? { note: d.note } : {}),
        ...(d.kind === "offer" ? { offerExpiresAt: d.offerExpiresAt?.toISOString() } : {}),
        ...(d.kind === "assign" ? { workState: x.activate ? "ACTIVE" : "PARKED" } : {}),
      },
    });
  }
  // Independent writes: pipelined.
  await Promise.all([
    bumpAgentCounters(
      sql,
      tenantId,
      queue.id,
      applied.map((x) => x.agentId),
      plan.today,
      now,
    ),
    appendEvents(tx, events),
  ]);
  const offered = applied.filter((x) => x.d.kind === "offer").length;
  return {
    delivered: applied.length - offered,
    offered,
    skipped: deliveries.length - applied.length,
  };
}

/**
 * Counts one automatic delivery per entry (an agent may appear several times): the
 * agent's last delivery times, and its tenant-local daily counter for this queue, which
 * restarts when the stored day is not today. Two statements, pipelined.
 */
async function bumpAgentCounters(
  sql: postgres.Sql,
  tenantId: string,
  queueId: string,
  agentIds: string[],
  today: string,
  now: Date,
): Promise<void> {
  if (agentIds.length === 0) return;
  const counts = new Map<string, number>();
  for (const id of agentIds) counts.set(id, (counts.get(id) ?? 0) + 1);
  const ids = [...counts.keys()].sort();
  const n = ids.map((id) => counts.get(id)!);
  await Promise.all([
    sql`
      UPDATE agent_state s SET
        last_assigned_at = ${iso(now)}::timestamptz, last_auto_delivered_at = ${iso(now)}::timestamptz,
        updated_at = ${iso(now)}::timestamptz
      WHERE s.user_id = ANY(${ids}::uuid[])`,
    // The batch form of incrementDailyCount (tenant-day.ts): another day's count restarts.
    sql`
      INSERT INTO agent_queue_daily AS c (user_id, queue_id, tenant_id, day, count)
      SELECT d.id, ${queueId}, ${tenantId}, ${today}::date, d.n
      FROM unnest(${ids}::uuid[], ${n}::int[]) AS d(id, n)
      ON CONFLICT (user_id, queue_id) DO UPDATE SET
        count = CASE WHEN c.day = EXCLUDED.day THEN c.count + EXCLUDED.count ELSE EXCLUDED.count END,
        day = EXCLUDED.day, updated_at = ${iso(now)}::timestamptz`,
  ]);
}

export async function scheduleWake(
  tx: DbOrTx,
  ctx: EngineContext,
  tenantId: string,
  queueId: string,
  at: Date,
): Promise<void> {
  // One pending wake-up per queue and second: repeated passes do not pile up timers.
  await ctx.jobs.schedule(
    ROUTING_JOBS.wake,
    { tenantId, queueId },
    { db: tx, startAfter: at, singletonKey: `${queueId}:${Math.floor(at.getTime() / 1000)}` },
  );
}
