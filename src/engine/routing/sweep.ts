import { rawClient } from "../../db/client.js";
import type { EngineContext } from "../context.js";
import { expireOffer } from "./actions.js";
import { iso } from "./sql-time.js";

/**
 * The safety net (ARCHITECTURE "Routing concurrency"): not the way work is routed, only
 * what catches a lost signal (a process that died between commit and pass) or a lost
 * timer. Expires overdue offers and signals every queue that has waiting work.
 */
export async function sweepRouting(ctx: EngineContext): Promise<{ expired: number; queues: number }> {
  const sql = rawClient(ctx.db);
  const now = ctx.clock.now();
  const overdue = await sql<{ id: string; tenant_id: string; offered_to_id: string }[]>`
    SELECT id, tenant_id, offered_to_id FROM conversation
    WHERE work_state = 'OFFERED' AND offer_expires_at <= ${iso(now)}::timestamptz LIMIT 1000`;
  let expired = 0;
  for (const c of overdue) {
    if (await expireOffer(ctx, { tenantId: c.tenant_id, conversationId: c.id, agentId: c.offered_to_id })) {
      expired++;
    }
  }
  const queues = await sql<{ tenant_id: string; queue_id: string }[]>`
    SELECT DISTINCT tenant_id, queue_id FROM conversation
    WHERE work_state = 'WAITING' AND queue_id IS NOT NULL`;
  for (const q of queues) ctx.signals.routeQueue(q.tenant_id, q.queue_id);
  return { expired, queues: queues.length };
}
