import { type DbOrTx, rawClient } from "../../db/client.js";
import type { EngineContext } from "../context.js";

/**
 * Configuration changes that can add supply — an agent's inbox limit, team or skills, a
 * team's default limit — must route the queues they touch right after commit (issue #4
 * item 10: "membership or limit change"), not wait for the sweep.
 *
 * The queues an agent serves: its direct memberships and those of its (current) team. For
 * a team: the team's memberships and the direct memberships of its agents (a team limit
 * is the default of every agent in it, wherever the agent is a member).
 */
export async function queuesServed(
  db: DbOrTx,
  tenantId: string,
  who: { agentIds?: readonly string[]; teamIds?: readonly string[] },
): Promise<string[]> {
  const agentIds = [...(who.agentIds ?? [])];
  const teamIds = [...(who.teamIds ?? [])];
  if (agentIds.length === 0 && teamIds.length === 0) return [];
  const sql = rawClient(db);
  const rows = await sql<{ queue_id: string }[]>`
    SELECT DISTINCT m.queue_id FROM queue_member m
    JOIN queue q ON q.id = m.queue_id AND q.archived_at IS NULL
    WHERE m.tenant_id = ${tenantId} AND (
      m.user_id = ANY(${agentIds}::uuid[])
      OR m.team_id = ANY(${teamIds}::uuid[])
      OR m.team_id IN (SELECT u.team_id FROM "user" u
                       WHERE u.id = ANY(${agentIds}::uuid[]) AND u.tenant_id = ${tenantId} AND u.team_id IS NOT NULL)
      OR m.user_id IN (SELECT u.id FROM "user" u
                       WHERE u.team_id = ANY(${teamIds}::uuid[]) AND u.tenant_id = ${tenantId}))`;
  return rows.map((r) => r.queue_id);
}

/**
 * After commit: route every queue the agents or teams serve. The change is committed
 * already, so a failure here is logged, not thrown (the routing sweep is the safety net).
 */
export async function routeQueuesServed(
  ctx: EngineContext,
  tenantId: string,
  who: { agentIds?: readonly string[]; teamIds?: readonly string[] },
): Promise<void> {
  try {
    for (const q of await queuesServed(ctx.db, tenantId, who)) ctx.signals.routeQueue(tenantId, q);
  } catch (err) {
    ctx.log.warn({ err, tenantId, ...who }, "could not signal routing after a supply change");
  }
}
