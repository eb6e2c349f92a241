import { rawClient } from "../../db/client.js";
import type { EngineContext } from "../context.js";
import { NotFoundError } from "../errors.js";
import { canSeeQueue, type Viewer } from "../viewer.js";
import { toDate } from "./sql-time.js";
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
  at: Date;
}

/**
 * Agents: offline = OFFLINE or logged out; away = AWAY; busy = BUSY, or AVAILABLE but at
 * the inbox limit (or limit OFF); available = AVAILABLE with room.
 */
export async function queueStats(ctx: EngineContext, viewer: Viewer, queueId: string): Promise<QueueStats> {
  if (!canSeeQueue(viewer, queueId)) throw new NotFoundError("Queue", queueId);
  const sql = rawClient(ctx.db);
  const now = ctx.clock.now();
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
    }[]
  >`
    WITH q AS (SELECT id FROM queue WHERE id = ${queueId} AND tenant_id = ${viewer.tenantId}),
    conv AS (
      SELECT count(*) FILTER (WHERE work_state = 'WAITING')::int AS waiting,
             min(coalesce(enqueued_at, created_at)) FILTER (WHERE work_state = 'WAITING') AS oldest,
             count(*) FILTER (WHERE work_state = 'OFFERED')::int AS offered,
             count(*) FILTER (WHERE work_state IN ('ACTIVE', 'PARKED'))::int AS assigned
      FROM conversation WHERE tenant_id = ${viewer.tenantId} AND queue_id = (SELECT id FROM q)
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
      SELECT m.*, (SELECT count(*) FROM conversation c
                   WHERE coalesce(c.assignee_id, c.offered_to_id) = m.id
                     AND c.work_state IN ('ACTIVE', 'PARKED', 'OFFERED'))::int AS load
      FROM members m
    )
    SELECT EXISTS (SELECT 1 FROM q) AS found, conv.*,
      (SELECT count(*) FILTER (WHERE presence = 'AVAILABLE' AND logged_in AND load < cap)::int FROM loads) AS available,
      (SELECT count(*) FILTER (WHERE logged_in AND (presence = 'BUSY' OR (presence = 'AVAILABLE' AND load >= cap)))::int FROM loads) AS busy,
      (SELECT count(*) FILTER (WHERE logged_in AND presence = 'AWAY')::int FROM loads) AS away,
      (SELECT count(*) FILTER (WHERE presence = 'OFFLINE' OR NOT logged_in)::int FROM loads) AS offline
    FROM conv`;
  if (!row?.found) throw new NotFoundError("Queue", queueId);
  return {
    queueId,
    waiting: row.waiting,
    oldestWaitSeconds: waitedSeconds(now, toDate(row.oldest)),
    offered: row.offered,
    assigned: row.assigned,
    agentsAvailable: row.available,
    agentsBusy: row.busy,
    agentsAway: row.away,
    agentsOffline: row.offline,
    at: now,
  };
}

function waitedSeconds(now: Date, oldest: Date | null): number {
  return oldest === null ? 0 : Math.max(0, Math.floor((now.getTime() - oldest.getTime()) / 1000));
}
