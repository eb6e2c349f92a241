import { rawClient, type Tx } from "../../db/client.js";
import { rowDecoder } from "../../db/rows.js";
import { message, type tenant } from "../../db/schema/index.js";
import { NotFoundError } from "../errors.js";
import type { Viewer } from "../viewer.js";

/**
 * The reads of an agent's reply (`composeOnConversation`), hand-written for postgres.js.
 * A reply is the API's hottest write; through the query builder these statements cost
 * more Node CPU to build than to run (docs/benchmarks.md "send"). Each is one prepared
 * statement (postgres.js caches them per connection), selects only what composing needs,
 * and is meant to be issued together with the others so they share one round trip.
 */

/** The conversation row as a reply needs it, with its queue's settings. */
export interface ReplyConversation {
  id: string;
  tenantId: string;
  queueId: string | null;
  ticketNumber: number;
  subject: string;
  firstRespondedAt: Date | null;
  slaState: unknown;
  /** The conversation's address, else its queue's default: where a reply goes out from. */
  defaultAddressId: string | null;
  /** The queue's customer-response countdown (null: no queue or none set). */
  countdownMinutes: number | null;
  /** The queue's signature (not archived), used when the agent has none of their own. */
  queueSignature: { html: string | null; text: string } | null;
}

interface LockRow {
  id: string;
  tenant_id: string;
  queue_id: string | null;
  ticket_number: bigint | number;
  subject: string;
  first_responded_at: string | null;
  sla_state: unknown;
  default_address_id: string | null;
  countdown_minutes: number | null;
  queue_signature_id: string | null;
  queue_signature_html: string | null;
  queue_signature_text: string | null;
}

/**
 * Locks the conversation FOR UPDATE, only when the viewer may see it (else NotFound) —
 * the same rule as `visibility()` in conversations.ts: the tenant's, and for a viewer
 * limited to queues, in one of them or offered to / assigned to the viewer. Keep the two
 * in step.
 */
export async function lockForReply(
  tx: Tx,
  viewer: Viewer,
  conversationId: string,
): Promise<ReplyConversation> {
  const sql = rawClient(tx);
  const queueIds = viewer.queueIds === null ? null : [...viewer.queueIds];
  const [r] = await sql<LockRow[]>`
    SELECT c.id, c.tenant_id, c.queue_id, c.ticket_number, c.subject, c.first_responded_at, c.sla_state,
           COALESCE(c.address_id, q.default_address_id) AS default_address_id,
           q.customer_response_countdown_minutes AS countdown_minutes,
           s.id AS queue_signature_id, s.html AS queue_signature_html, s.text AS queue_signature_text
    FROM conversation c
    LEFT JOIN queue q ON q.id = c.queue_id
    LEFT JOIN signature s ON s.id = q.signature_id AND s.archived_at IS NULL
    WHERE c.id = ${conversationId}::uuid AND c.tenant_id = ${viewer.tenantId}::uuid
      AND (${queueIds}::uuid[] IS NULL OR c.queue_id = ANY(${queueIds}::uuid[])
           OR c.assignee_id = ${viewer.userId}::uuid OR c.offered_to_id = ${viewer.userId}::uuid)
    FOR UPDATE OF c`;
  if (!r) throw new NotFoundError("Conversation", conversationId);
  return {
    id: r.id,
    tenantId: r.tenant_id,
    queueId: r.queue_id,
    ticketNumber: Number(r.ticket_number),
    subject: r.subject,
    firstRespondedAt: r.first_responded_at === null ? null : new Date(r.first_responded_at),
    slaState: r.sla_state,
    defaultAddressId: r.default_address_id,
    countdownMinutes: r.countdown_minutes,
    queueSignature: r.queue_signature_id
      ? { html: r.queue_signature_html, text: r.queue_signature_text ?? "" }
      : null,
  };
}

export type ComposeTenant = Pick<
  typeof tenant.$inferSelect,
  | "id"
  | "name"
  | "company"
  | "timeZone"
  | "appendTicketOnFirstReply"
  | "agentsMayEditSubject"
  | "messageIdDomain"
>;

/** The tenant's settings composing reads. */
export async function composeTenant(tx: Tx, tenantId: string): Promise<ComposeTenant> {
  const sql = rawClient(tx);
  const [t] = await sql`
    SELECT id, name, company, time_zone, append_ticket_on_first_reply, agents_may_edit_subject,
           message_id_domain
    FROM tenant WHERE id = ${tenantId}::uuid`;
  if (!t) throw new NotFoundError("Tenant", tenantId);
  return {
    id: t.id,
    name: t.name,
    company: t.company,
    timeZone: t.time_zone,
    appendTicketOnFirstReply: t.append_ticket_on_first_reply,
    agentsMayEditSubject: t.agents_may_edit_subject,
    messageIdDomain: t.message_id_domain,
  };
}

export interface AgentWithSignature {
  agent: { name: string; alias: string | null; email: string };
  /** The agent's own signature (at most one per user, not archived), or null. */
  own: { html: string | null; text: string } | null;
}

/** The replying agent's user row and their own signature, in one statement. */
export async function agentWithSignature(tx: Tx, userId: string): Promise<AgentWithSignature> {
  const sql = rawClient(tx);
  const [u] = await sql`
    SELECT u.name, u.alias, u.email, s.id AS signature_id, s.html AS signature_html,
           s.text AS signature_text
    FROM "user" u
    LEFT JOIN signature s ON s.user_id = u.id AND s.archived_at IS NULL
    WHERE u.id = ${userId}::uuid`;
  if (!u) throw new NotFoundError("User", userId);
  return {
    agent: { name: u.name, alias: u.alias, email: u.email },
    own: u.signature_id ? { html: u.signature_html, text: u.signature_text } : null,
  };
}

/** What composing needs of the conversation's earlier messages (not headers, raw ids …). */
const historyColumns = {
  id: message.id,
  direction: message.direction,
  isAutoReply: message.isAutoReply,
  messageIdHeader: message.messageIdHeader,
  references: message.references,
  from: message.from,
  replyTo: message.replyTo,
  to: message.to,
  cc: message.cc,
  dateHeader: message.dateHeader,
  receivedAt: message.receivedAt,
  subject: message.subject,
  text: message.text,
  html: message.html,
};
type Message = typeof message.$inferSelect;
export type HistoryRow = { [K in keyof typeof historyColumns]: Message[K] };
const decodeHistory = rowDecoder<HistoryRow>(historyColumns);

/** The conversation's messages but notes, oldest first. */
export async function conversationHistory(tx: Tx, conversationId: string): Promise<HistoryRow[]> {
  const sql = rawClient(tx);
  const rows = await sql`
    SELECT id, direction, is_auto_reply, message_id_header, "references", "from", reply_to, "to", cc,
           date_header, received_at, subject, text, html
    FROM message
    WHERE conversation_id = ${conversationId}::uuid AND direction <> 'NOTE'
    ORDER BY received_at, created_at`;
  return rows.map(decodeHistory);
}

/** Every address of the tenant (inbound, From and Reply-To): never a default recipient. */
export async function tenantAddresses(tx: Tx, tenantId: string): Promise<string[]> {
  const sql = rawClient(tx);
  const rows = await sql<{ address: string; from_address: string | null; reply_to: string | null }[]>`
    SELECT address, from_address, reply_to FROM email_address WHERE tenant_id = ${tenantId}::uuid`;
  return rows.flatMap((r) =>
    [r.address, r.from_address, ...(r.reply_to ?? "").split(",")]
      .filter((a): a is string => !!a?.trim())
      .map((a) => a.trim()),
  );
}
