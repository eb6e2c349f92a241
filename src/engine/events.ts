import type { DbOrTx } from "../db/client.js";
import { event } from "../db/schema/index.js";
import type { ActorType } from "./domain.js";

/**
 * Event types of the timeline (SPEC §11). Open-ended on purpose: new capabilities add
 * types; clients must ignore ones they do not know.
 */
export type EventType =
  | "message.received"
  | "message.rejected"
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

/** Writes events inside the caller's transaction; the NOTIFY trigger fires on commit. */
export async function appendEvents(db: DbOrTx, events: NewEvent[]): Promise<number[]> {
  if (events.length === 0) return [];
  const rows = await db
    .insert(event)
    .values(
      events.map((e) => ({
        tenantId: e.tenantId,
        type: e.type,
        conversationId: e.conversationId ?? null,
        queueId: e.queueId ?? null,
        agentId: e.agentId ?? null,
        actorType: e.actorType ?? "SYSTEM",
        actorId: e.actorId ?? null,
        payload: e.payload ?? {},
        occurredAt: e.occurredAt,
      })),
    )
    .returning({ id: event.id });
  return rows.map((r) => r.id);
}
