import { rawClient } from "../../db/client.js";
import { coalesce } from "../coalesce.js";
import type { EngineContext } from "../context.js";
import { NotFoundError } from "../errors.js";
import type { EventRow } from "../event-hub.js";
import { canSeeQueue, type Viewer } from "../viewer.js";
import { iso, toDate } from "./sql-time.js";
import { DEFAULT_INBOX_LIMIT } from "./types.js";

/** A queue's live figures for wallboards (SPEC §11 subscriptions). */
export interface QueueStats {
  queueId: string;
  waiting: number;
  /** Seconds the longest-waiting conversation has waited; 0 when none waits. */
  oldestWaitSeconds: number;
  offered: number;
  /** ACTIVE + PARKED. */
  assigned: number;
  /** Members (directly or by team) by routing readiness. */
  agentsAvailable: number;
  agentsBusy: number;
  agentsAway: number;
  agentsOffline: number;
  /**
   * Open (not RESOLVED/CLOSED) conversations with an SLA: at risk = a pending target past
   * its warning share, not breached; breached = a target breached (recorded or due by now).
   */
  atRisk: number;
  breached: number;
  at: Date;
}

/**
 * Agents: offline = OFFLINE or logged out; away = AWAY; busy = BUSY, or AVAILABLE but at
 * the inbox limit (or limit OFF); available = AVAILABLE with room.
 */
export async function queueStats(ctx: EngineContext, viewer: Viewer, queueId: string): Promise<QueueStats> {
  return (await computeQueueStats(ctx, viewer, queueId)).stats;
}

/**
 * SLA counts come from the marks every SLA state change stores (`slaMarks`), compared
 * with now: one aggregate over the queue's open conversations, no per-conversation clock.
 */
async function computeQueueStats(
  ctx: EngineContext,
  viewer: Viewer,
  queueId: string,
): Promise<{ stats: QueueStats; memberIds: string[] }> {
  if (!canSeeQueue(viewer, queueId)) throw new NotFoundError("Queue", queueId);
  const sql = rawClient(ctx.db);
  const now = ctx.clock.now();
  const at = sql`${iso(now)}::timestamptz`;
  const [row] = await sql<
    {
      found: boolean;
      waiting: number;
      oldest: Date | string | null;
      offered: number;
      assigned: number;
      available: number;
      busy: number;
      away: number;
      offline: number;
      at_risk: number;
      breached: number;
      member_ids: string[];
    }[]
  >`
    WITH q AS (SELECT id FROM queue WHERE id = ${queueId} AND tenant_id = ${viewer.tenantId}),
    conv AS (
      SELECT count(*) FILTER (WHERE work_state = 'WAITING')::int AS waiting,
             min(coalesce(enqueued_at, created_at)) FILTER (WHERE work_state = 'WAITING') AS oldest,
             count(*) FILTER (WHERE work_state = 'OFFERED')::int AS offered,
             count(*) FILTER (WHERE work_state IN ('ACTIVE', 'PARKED'))::int AS assigned,
             count(*) FILTER (WHERE sla_open AND (sla_breached OR sla_breached_from <= ${at}))::int AS breached,
             count(*) FILTER (WHERE sla_open AND NOT sla_breached
                                AND (sla_breached_from IS NULL OR sla_breached_from > ${at})
                                AND sla_at_risk_from <= ${at})::int AS at_risk
      FROM conversation,
        LATERAL (SELECT sla_policy_id IS NOT NULL AND status NOT IN ('RESOLVED', 'CLOSED') AS sla_open) o
      WHERE tenant_id = ${viewer.tenantId} AND queue_id = (SELECT id FROM q)
        AND work_state <> 'DONE'
    ),
    members AS (
      SELECT u.id, u.presence, u.logged_in,
             CASE WHEN u.inbox_limit_off THEN 0 WHEN u.inbox_limit IS NOT NULL THEN u.inbox_limit
                  WHEN t.inbox_limit_off THEN 0 ELSE coalesce(t.inbox_limit, ${DEFAULT_INBOX_LIMIT}) END AS cap
      FROM "user" u LEFT JOIN team t ON t.id = u.team_id
      WHERE u.tenant_id = ${viewer.tenantId} AND u.archived_at IS NULL AND u.id IN (
        SELECT m.user_id FROM queue_member m WHERE m.queue_id = (SELECT id FROM q) AND m.user_id IS NOT NULL
        UNION
        SELECT u2.id FROM queue_member m JOIN "user" u2 ON u2.team_id = m.team_id WHERE m.queue_id = (SELECT id FROM q)
      )
    ),
    loads AS (
      -- Owned, or offered while unowned (coalesce(assignee, offered_to) = agent), as two
      -- probes of the open-work indexes. Written as the coalesce, no index matched it: one
      -- scan of every tenant's conversations per member (scale probe, session 17).
      SELECT m.*, ((SELECT count(*) FROM conversation c
                    WHERE c.assignee_id = m.id AND c.work_state IN ('ACTIVE', 'PARKED', 'OFFERED'))
                 + (SELECT count(*) FROM conversation c
                    WHERE c.offered_to_id = m.id AND c.assignee_id IS NULL
                      AND c.work_state IN ('ACTIVE', 'PARKED', 'OFFERED')))::int AS load
      FROM members m
    )
    SELECT EXISTS (SELECT 1 FROM q) AS found, conv.*,
      (SELECT count(*) FILTER (WHERE presence = 'AVAILABLE' AND logged_in AND load < cap)::int FROM loads) AS available,
      (SELECT count(*) FILTER (WHERE logged_in AND (presence = 'BUSY' OR (presence = 'AVAILABLE' AND load >= cap)))::int FROM loads) AS busy,
      (SELECT count(*) FILTER (WHERE logged_in AND presence = 'AWAY')::int FROM loads) AS away,
      (SELECT count(*) FILTER (WHERE presence = 'OFFLINE' OR NOT logged_in)::int FROM loads) AS offline,
      (SELECT coalesce(array_agg(id), '{}') FROM members) AS member_ids
    FROM conv`;
  if (!row?.found) throw new NotFoundError("Queue", queueId);
  const stats: QueueStats = {
    queueId,
    waiting: row.waiting,
    oldestWaitSeconds: waitedSeconds(now, toDate(row.oldest)),
    offered: row.offered,
    assigned: row.assigned,
    agentsAvailable: row.available,
    agentsBusy: row.busy,
    agentsAway: row.away,
    agentsOffline: row.offline,
    atRisk: row.at_risk,
    breached: row.breached,
    at: now,
  };
  return { stats, memberIds: row.member_ids };
}

/** How long the live figures fold events into one recomputation (see `coalesce`). */
export const QUEUE_STATS_WINDOW_MS = 250;

const STATS_EVENT = /^(routing\.|conversation\.|message\.received|sla\.)/;

/**
 * Events that can change a queue's figures: work in the queue (or transferred out of it),
 * SLA warnings and breaches there, any agent's presence (membership edits write no event,
 * so presence is not narrowed to today's members), and routing of a member elsewhere
 * (their load decides busy or available here).
 */
function affectsQueue(e: EventRow, queueId: string, memberIds: ReadonlySet<string>): boolean {
  if (e.type.startsWith("agent.")) return true;
  if (!STATS_EVENT.test(e.type)) return false;
  if (e.queueId === queueId || e.payload?.fromQueueId === queueId) return true;
  return e.type.startsWith("routing.") && e.agentId !== null && memberIds.has(e.agentId);
}

/**
 * The queueStats subscription: the figures now, then again after events that can change
 * them, at most once per `windowMs` however many events arrive (the last figures always
 * follow the last event). NotFoundError for a queue the viewer may not see.
 */
export async function watchQueueStats(
  ctx: EngineContext,
  viewer: Viewer,
  queueId: string,
  windowMs = QUEUE_STATS_WINDOW_MS,
): Promise<AsyncIterableIterator<QueueStats>> {
  // The stream position first: a change landing while the first figures are computed is
  // replayed as a trigger rather than lost.
  const from = await ctx.hub.head(viewer.tenantId);
  const first = await computeQueueStats(ctx, viewer, queueId);
  let members: ReadonlySet<string> = new Set(first.memberIds);
  const events = ctx.hub.subscribe(viewer.tenantId, (e) => affectsQueue(e, queueId, members), { from });
  return coalesce(
    events,
    async () => {
      const next = await computeQueueStats(ctx, viewer, queueId);
      members = new Set(next.memberIds);
      return next.stats;
    },
    windowMs,
    { value: first.stats },
  );
}

function waitedSeconds(now: Date, oldest: Date | null): number {
  return oldest === null ? 0 : Math.max(0, Math.floor((now.getTime() - oldest.getTime()) / 1000));
}
