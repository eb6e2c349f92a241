import { type DbOrTx, rawClient } from "../db/client.js";
import type { ActorType } from "./domain.js";
import { metrics } from "./metrics.js";
import { jsonbText } from "./text.js";

/**
 * Event types of the timeline (SPEC §11). Open-ended on purpose: new capabilities add
 * types; clients must ignore ones they do not know.
 */
export type EventType =
  | "message.received"
  | "message.rejected"
  | "message.released"
  | "conversation.created"
  | "conversation.threaded"
  | "conversation.queued"
  | "conversation.status_changed"
  | "conversation.priority_changed"
  | "conversation.transferred"
  | "conversation.tags_changed"
  | "rule.matched"
  | "routing.offered"
  | "routing.accepted"
  | "routing.rejected"
  | "routing.offer_expired"
  | "routing.assigned"
  | "routing.unassigned"
  | "routing.parked"
  | "routing.activated"
  | "agent.presence_changed"
  | "agent.interrupted"
  | "agent.resumed"
  | "message.queued"
  | "message.sent"
  | "message.failed"
  | "message.bounced"
  | "note.added"
  | "auto_reply.sent"
  | "auto_reply.suppressed"
  | "sla.warning"
  | "sla.breached"
  | (string & {});

export interface NewEvent {
  tenantId: string;
  type: EventType;
  conversationId?: string | null;
  queueId?: string | null;
  agentId?: string | null;
  actorType?: ActorType;
  actorId?: string | null;
  payload?: Record<string, unknown>;
  occurredAt: Date;
}

/**
 * Writes events inside the caller's transaction; the NOTIFY trigger fires on commit. One
 * statement over arrays (a routing pass writes dozens): its text never changes, so the
 * prepared statement is reused, and per-row cost is the row itself. Ids come back in the
 * order given (the rows are inserted in ordinality order, ids drawn from the sequence).
 */
export async function appendEvents(db: DbOrTx, events: NewEvent[]): Promise<number[]> {
  if (events.length === 0) return [];
  for (const e of events) metrics.events.inc({ type: e.type });
  const sql = rawClient(db);
  const col = <T>(f: (e: NewEvent) => T) => events.map(f);
  const rows = await sql<{ id: string }[]>`
    INSERT INTO event (tenant_id, type, conversation_id, queue_id, agent_id, actor_type, actor_id, payload, occurred_at)
    SELECT tenant_id, type, conversation_id, queue_id, agent_id, actor_type, actor_id, payload::jsonb, occurred_at::timestamptz
    FROM unnest(${col((e) => e.tenantId)}::uuid[], ${col((e) => e.type)}::text[],
                ${col((e) => e.conversationId ?? null)}::uuid[], ${col((e) => e.queueId ?? null)}::uuid[],
                ${col((e) => e.agentId ?? null)}::uuid[], ${col((e) => e.actorType ?? "SYSTEM")}::text[],
                ${col((e) => e.actorId ?? null)}::uuid[], ${col((e) => jsonbText(e.payload ?? {}))}::text[],
                ${col((e) => e.occurredAt.toISOString())}::text[])
         WITH ORDINALITY AS e(tenant_id, type, conversation_id, queue_id, agent_id, actor_type, actor_id, payload, occurred_at, ord)
    ORDER BY ord
    RETURNING id`;
  return rows.map((r) => Number(r.id));
}
