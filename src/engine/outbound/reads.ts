import { rawClient, type Tx } from "../../db/client.js";
import { rowDecoder } from "../../db/fast.js";
import { message, type tenant } from "../../db/schema/index.js";
import { NotFoundError } from "../errors.js";
import type { Viewer } from "../viewer.js";
import type { SendingAddressRow } from "./store.js";

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

export interface ReplyContext {
  conversation: ReplyConversation;
  tenant: ComposeTenant;
  agent: { name: string; alias: string | null; email: string };
  /** The agent's own signature (at most one per user, not archived), or null. */
  ownSignature: { html: string | null; text: string } | null;
  /** The sending address row, unchecked (`checkSendingAddress`); undefined when none matched. */
  sending: SendingAddressRow | undefined;
}

/**
 * Everything a reply reads but the history, in one statement: the conversation locked
 * FOR UPDATE — only when the viewer may see it, else NotFound — with its queue's default
 * address, countdown and signature, the tenant's compose settings, the agent and their own
 * signature, and the sending address (`fromAddressId`, else the conversation's address,
 * else its queue's default) with its account and branded template.
 *
 * Visibility is the rule of `visibility()` in conversations.ts — the tenant's, and for a
 * viewer limited to queues, in one of them or offered to / assigned to the viewer. Keep
 * the two in step. Only the conversation row is locked (`FOR UPDATE OF c`).
 */
export async function replyContext(
  tx: Tx,
  viewer: Viewer,
  conversationId: string,
  fromAddressId: string | null,
): Promise<ReplyContext> {
  const sql = rawClient(tx);
  const queueIds = viewer.queueIds === null ? null : [...viewer.queueIds];
  const [r] = await sql`
    SELECT c.id, c.queue_id, c.ticket_number, c.subject, c.first_responded_at, c.sla_state,
           COALESCE(c.address_id, q.default_address_id) AS default_address_id,
           q.customer_response_countdown_minutes AS countdown_minutes,
           qs.id AS queue_signature_id, qs.html AS queue_signature_html, qs.text AS queue_signature_text,
           t.id AS tenant_id, t.name AS tenant_name, t.company, t.time_zone,
           t.append_ticket_on_first_reply, t.agents_may_edit_subject, t.message_id_domain,
           u.id AS user_id, u.name AS user_name, u.alias AS user_alias, u.email AS user_email,
           us.id AS signature_id, us.html AS signature_html, us.text AS signature_text,
           a.id AS sending_id, a.queue_id AS sending_queue_id, a.address, a.display_name,
           a.from_address, a.reply_to, a.bcc, a.outbound_allowed, a.ticket_placement,
           a.ticket_delimiter, a.signature_policy, a.history_policy,
           m.id AS account_id, m.archived_at IS NOT NULL AS account_archived,
           m.enabled AS account_enabled, m.smtp_host, m.smtp_port, bt.html AS template_html
    FROM conversation c
    JOIN tenant t ON t.id = c.tenant_id
    LEFT JOIN queue q ON q.id = c.queue_id
    LEFT JOIN signature qs ON qs.id = q.signature_id AND qs.archived_at IS NULL
    LEFT JOIN "user" u ON u.id = ${viewer.userId}::uuid
    LEFT JOIN signature us ON us.user_id = u.id AND us.archived_at IS NULL
    LEFT JOIN email_address a
      ON a.id = COALESCE(${fromAddressId}::uuid, c.address_id, q.default_address_id)
     AND a.tenant_id = c.tenant_id AND a.archived_at IS NULL
    LEFT JOIN mail_account m ON m.id = a.account_id
    LEFT JOIN branded_template bt ON bt.id = a.branded_template_id AND bt.archived_at IS NULL
    WHERE c.id = ${conversationId}::uuid AND c.tenant_id = ${viewer.tenantId}::uuid
      AND (${queueIds}::uuid[] IS NULL OR c.queue_id = ANY(${queueIds}::uuid[])
           OR c.assignee_id = ${viewer.userId}::uuid OR c.offered_to_id = ${viewer.userId}::uuid)
    FOR UPDATE OF c`;
  if (!r) throw new NotFoundError("Conversation", conversationId);
  if (!r.user_id) throw new NotFoundError("User", viewer.userId);
  return {
    conversation: {
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
        ? { html: r.queue_signature_html, text: r.queue_signature_text }
        : null,
    },
    tenant: {
      id: r.tenant_id,
      name: r.tenant_name,
      company: r.company,
      timeZone: r.time_zone,
      appendTicketOnFirstReply: r.append_ticket_on_first_reply,
      agentsMayEditSubject: r.agents_may_edit_subject,
      messageIdDomain: r.message_id_domain,
    },
    agent: { name: r.user_name, alias: r.user_alias, email: r.user_email },
    ownSignature: r.signature_id ? { html: r.signature_html, text: r.signature_text } : null,
    sending: r.sending_id
      ? {
          id: r.sending_id,
          queue_id: r.sending_queue_id,
          address: r.address,
          display_name: r.display_name,
          from_address: r.from_address,
          reply_to: r.reply_to,
          bcc: r.bcc,
          outbound_allowed: r.outbound_allowed,
          ticket_placement: r.ticket_placement,
          ticket_delimiter: r.ticket_delimiter,
          signature_policy: r.signature_policy,
          history_policy: r.history_policy,
          account_id: r.account_id,
          account_archived: r.account_archived,
          account_enabled: r.account_enabled,
          smtp_host: r.smtp_host,
          smtp_port: r.smtp_port,
          template_html: r.template_html,
        }
      : undefined,
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
