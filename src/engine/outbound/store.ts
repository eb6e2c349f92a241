import { createHash, randomUUID } from "node:crypto";
import { getTableColumns } from "drizzle-orm";
import { rawClient, type Tx } from "../../db/client.js";
import { fillLargeBytea, insertRowsInParts, LARGE_BYTEA_BYTES, rowDecoder } from "../../db/fast.js";
import {
  attachment,
  type emailAddress,
  type MailboxAddress,
  type mailAccount,
  message,
  rawMessage,
  type tenant,
} from "../../db/schema/index.js";
import type { EngineContext } from "../context.js";
import { ValidationError } from "../errors.js";
import { appendEvents, type NewEvent } from "../events.js";
import { clip, jsonbText } from "../text.js";
import type { MailAddress } from "./address.js";
import type { AddressSettings, ComposedMail } from "./compose.js";
import { ComposeError } from "./errors.js";
import type { SendRetryPolicy } from "./sender.js";

/**
 * Shared by agent actions and auto-replies: turning a composed mail into a QUEUED outbound
 * message inside the caller's transaction — raw MIME stored (so every retry sends the same
 * bytes), the message row, attachments, the `message.queued` event and the send job, all
 * committed together or not at all.
 */

export const SEND_MESSAGE_QUEUE = "send-message";
export const SEND_MESSAGE_DEAD_LETTER = "send-message-dead";
export const AUTO_REPLY_QUEUE = "auto-reply";

export type AddressRow = typeof emailAddress.$inferSelect;
export type AccountRow = typeof mailAccount.$inferSelect;
export type TenantRow = typeof tenant.$inferSelect;

export interface SendJobData {
  tenantId: string;
  messageId: string;
}

/** Our Message-ID domain: the tenant's, else a per-tenant placeholder that never collides. */
export function messageIdDomainOf(t: Pick<TenantRow, "id" | "messageIdDomain">): string {
  return t.messageIdDomain?.trim() || `${t.id}.switchboard.invalid`;
}

/** Message ids are stored without angle brackets (as ingest stores them). */
export function bare(id: string): string {
  return id.replace(/^<|>$/g, "");
}

export function mailboxes(list: readonly MailAddress[]): MailboxAddress[] {
  return list.map((a) => ({ address: a.address, name: a.name }));
}

/** What sending needs of the address: ids, and the settings composing reads. */
export interface SendingAddress {
  address: { id: string; queueId: string | null };
  account: { id: string };
  settings: AddressSettings;
}

export interface SendingAddressRow {
  id: string;
  queue_id: string | null;
  address: string;
  display_name: string;
  from_address: string | null;
  reply_to: string | null;
  bcc: string[];
  outbound_allowed: boolean;
  ticket_placement: AddressRow["ticketPlacement"];
  ticket_delimiter: AddressRow["ticketDelimiter"];
  signature_policy: AddressRow["signaturePolicy"];
  history_policy: AddressRow["historyPolicy"];
  account_id: string | null;
  account_archived: boolean | null;
  account_enabled: boolean | null;
  smtp_host: string | null;
  smtp_port: number | null;
  template_html: string | null;
}

/**
 * Reads the sending address of the tenant with its account and branded template (one
 * statement, hand-written: it is on every reply's path). `addressId` null with a
 * `conversationId` reads the conversation's default — its own address, else its queue's —
 * in the same statement, so a caller can pipeline it with the conversation's row lock (the
 * statements run in order on the connection, so the read sees the locked row). Check the
 * result with `checkSendingAddress`.
 */
export async function readSendingAddress(
  tx: Tx,
  tenantId: string,
  addressId: string | null,
  conversationId: string | null = null,
): Promise<SendingAddressRow | undefined> {
  const sql = rawClient(tx);
  const [row] = await sql<SendingAddressRow[]>`
    SELECT a.id, a.queue_id, a.address, a.display_name, a.from_address, a.reply_to, a.bcc,
           a.outbound_allowed, a.ticket_placement, a.ticket_delimiter, a.signature_policy,
           a.history_policy, m.id AS account_id, m.archived_at IS NOT NULL AS account_archived,
           m.enabled AS account_enabled, m.smtp_host, m.smtp_port, bt.html AS template_html
    FROM email_address a
    LEFT JOIN mail_account m ON m.id = a.account_id
    LEFT JOIN branded_template bt ON bt.id = a.branded_template_id AND bt.archived_at IS NULL
    WHERE a.id = COALESCE(${addressId}::uuid,
            (SELECT COALESCE(c.address_id, q.default_address_id)
             FROM conversation c LEFT JOIN queue q ON q.id = c.queue_id
             WHERE c.id = ${conversationId}::uuid))
      AND a.tenant_id = ${tenantId}::uuid AND a.archived_at IS NULL`;
  return row;
}

/**
 * The sending address checked: the tenant's, not archived, outbound allowed, on an
 * account with SMTP settings. `field` names the input the caller chose it by.
 */
export function checkSendingAddress(
  row: SendingAddressRow | undefined,
  field: string,
  opts: { requireOutboundAllowed?: boolean } = {},
): SendingAddress {
  const fail = (msg: string): never => {
    throw new ValidationError({ field, message: msg });
  };
  if (!row) return fail("unknown address");
  if ((opts.requireOutboundAllowed ?? true) && !row.outbound_allowed) {
    fail("outbound mail is not allowed from this address");
  }
  if (!row.account_id || row.account_archived || !row.account_enabled || !row.smtp_host || !row.smtp_port) {
    return fail("the address has no usable SMTP account");
  }
  return {
    address: { id: row.id, queueId: row.queue_id },
    account: { id: row.account_id },
    settings: {
      displayName: row.display_name,
      fromAddress: row.from_address?.trim() || row.address,
      replyTo: (row.reply_to ?? "")
        .split(",")
        .map((s) => s.trim())
        .filter((s) => s !== ""),
      bcc: row.bcc,
      ticketFormat: { placement: row.ticket_placement, delimiter: row.ticket_delimiter },
      signaturePolicy: row.signature_policy,
      historyPolicy: row.history_policy,
      templateHtml: row.template_html ?? null,
    },
  };
}

/** `readSendingAddress` + `checkSendingAddress` for an address chosen by id. */
export async function loadSendingAddress(
  tx: Tx,
  tenantId: string,
  addressId: string | null,
  field: string,
  opts: { requireOutboundAllowed?: boolean } = {},
): Promise<SendingAddress> {
  if (!addressId) {
    throw new ValidationError({
      field,
      message: "no sending address: the conversation has none and none was given",
    });
  }
  return checkSendingAddress(await readSendingAddress(tx, tenantId, addressId), field, opts);
}

/** A composition problem is the caller's input problem: a typed result naming the field. */
export function asValidationError(err: unknown): never {
  if (err instanceof ComposeError) {
    throw new ValidationError({ field: err.field, message: `${err.code}: ${err.message}` });
  }
  throw err;
}

export interface QueueOutboundArgs {
  tenantId: string;
  conversationId: string;
  queueId: string | null;
  address: { id: string };
  account: { id: string };
  mail: ComposedMail;
  kind: string;
  authorId: string | null;
  isAutoReply: boolean;
  /** Extra events written with the message (e.g. auto_reply.queued). */
  events?: (messageId: string) => NewEvent[];
  /** Collects the send, for `startSends` after the commit. */
  sends: SendJobData[];
}

type MessageRow = typeof message.$inferSelect;
const decodeMessage = rowDecoder<MessageRow>(getTableColumns(message));

/**
 * Stores the composed mail as a QUEUED outbound message and enqueues its send job (same tx).
 *
 * Hand-written SQL for the raw MIME and the message row (every outbound goes through here;
 * the query builder cost more CPU than the statements themselves): the columns and values
 * are the ones the drizzle insert wrote, `RETURNING *` is decoded to the drizzle row.
 */
export async function queueOutbound(
  tx: Tx,
  ctx: EngineContext,
  args: QueueOutboundArgs,
): Promise<MessageRow> {
  if (!ctx.mail) throw new Error("no outbound transport configured");
  const { mail } = args;
  const raw = await ctx.mail.buildMime(mail);
  const now = ctx.clock.now();
  const sql = rawClient(tx);
  // Ids are minted here so the inserts do not wait for each other: they go out pipelined
  // on the transaction's connection. The order they reach the server in does not matter:
  // the references among them (message → raw message, attachment → message) are
  // DEFERRABLE INITIALLY DEFERRED (migration 0006) and checked at commit.
  const rawId = randomUUID();
  const messageId = randomUUID();
  const json = jsonbText;
  // Values over 1 MB (large attachments, and then the raw MIME) are written in parts after
  // the rows, with the event loop free between parts (db/fast.ts).
  const largeRaw = raw.length > LARGE_BYTEA_BYTES;
  const [[m]] = await Promise.all([
    // One statement for the raw MIME and the message row that points at it.
    sql<Record<string, unknown>[]>`
      WITH raw AS (
        INSERT INTO raw_message (id, tenant_id, sha256, size_bytes, data)
        VALUES (${rawId}::uuid, ${args.tenantId}::uuid, ${createHash("sha256").update(raw).digest("hex")},
                ${raw.length}, ${largeRaw ? Buffer.alloc(0) : raw})
      )
      INSERT INTO message (id, tenant_id, conversation_id, direction, message_id_header, in_reply_to,
        "references", "from", "to", cc, bcc, reply_to, subject, text, html, headers, date_header,
        received_at, author_id, auto_submitted, is_auto_reply, outbound_status, address_id, account_id,
        raw_message_id, size_bytes)
      VALUES (${messageId}::uuid, ${args.tenantId}::uuid, ${args.conversationId}::uuid, 'OUTBOUND',
        ${bare(mail.messageId)}, ${mail.inReplyTo ? bare(mail.inReplyTo) : null},
        ${mail.references.map(bare)}::text[],
        ${json({ address: mail.from.address, name: mail.from.name })}::jsonb,
        ${json(mailboxes(mail.to))}::jsonb, ${json(mailboxes(mail.cc))}::jsonb,
        ${json(mailboxes(mail.bcc))}::jsonb, ${json(mailboxes(mail.replyTo))}::jsonb,
        ${mail.subject}, ${mail.text}, ${mail.html},
        ${json(Object.fromEntries(Object.entries(mail.headers).map(([k, v]) => [k.toLowerCase(), [v]])))}::jsonb,
        ${mail.date.toISOString()}::timestamptz, ${now.toISOString()}::timestamptz,
        ${args.authorId}::uuid, ${args.isAutoReply}, ${args.isAutoReply}, 'QUEUED',
        ${args.address.id}::uuid, ${args.account.id}::uuid, ${rawId}::uuid, ${raw.length})
      RETURNING *`,
    mail.attachments.length > 0
      ? insertRowsInParts(
          sql,
          attachment,
          mail.attachments.map((a) => ({
            id: randomUUID(),
            tenantId: args.tenantId,
            messageId,
            filename: a.filename,
            contentType: a.contentType,
            sizeBytes: a.content.length,
            contentId: a.contentId ?? null,
            inline: a.inline,
            sha256: createHash("sha256").update(a.content).digest("hex"),
            data: a.content,
          })),
        ).done
      : null,
    appendEvents(tx, [
      {
        tenantId: args.tenantId,
        type: "message.queued",
        conversationId: args.conversationId,
        queueId: args.queueId,
        actorType: args.authorId ? "USER" : "SYSTEM",
        actorId: args.authorId,
        occurredAt: now,
        payload: {
          messageId,
          kind: args.kind,
          to: mail.to.map((a) => a.address),
          cc: mail.cc.map((a) => a.address),
          subject: clip(mail.subject, 200),
          attachments: mail.attachments.length,
          autoReply: args.isAutoReply,
        },
      },
      ...(args.events?.(messageId) ?? []),
    ]),
    scheduleSend(tx, ctx, { tenantId: args.tenantId, messageId }, args.sends),
  ]);
  // The raw MIME is inserted by the message's statement above, so it is filled here.
  if (largeRaw) await fillLargeBytea(sql, rawMessage, "data", rawId, raw);
  return decodeMessage(m!);
}

/** The retry policy send jobs are scheduled with (the configured one, else pg-boss-like defaults). */
export function sendRetryPolicy(ctx: EngineContext): SendRetryPolicy {
  return ctx.mail?.retry ?? { limit: 5, delaySeconds: 60, backoff: true };
}

/**
 * The message's send, for `startSends` after the commit. In a process that makes first
 * attempts itself (`ctx.jobs.runsNow`) that is all: the QUEUED row is the durable record,
 * the attempt is made right after the commit, a retry job is scheduled only when one is
 * needed, and a sweep schedules a job for a send no process attempted
 * (`src/jobs/send-message.ts`). Elsewhere a `send-message` job is scheduled on the
 * transaction, due at once.
 */
export async function scheduleSend(
  tx: Tx,
  ctx: EngineContext,
  data: SendJobData,
  sends: SendJobData[],
): Promise<void> {
  sends.push(data);
  if (ctx.jobs.runsNow?.(SEND_MESSAGE_QUEUE)) return;
  await scheduleSendJob(ctx, data, { db: tx });
}

/**
 * A `send-message` job with the configured retry policy, on `db` (written with that
 * transaction) or else on pg-boss's own pool. `afterFirstAttempt`: an immediate attempt
 * was made already, so the job's first run is the first retry (one retry fewer: the total
 * stays `limit + 1` attempts). `delaySeconds`: due that much later, else at once.
 */
export async function scheduleSendJob(
  ctx: EngineContext,
  data: SendJobData & { accepted?: unknown },
  opts: { db?: Tx; afterFirstAttempt?: boolean; delaySeconds?: number } = {},
): Promise<string | null> {
  const retry = sendRetryPolicy(ctx);
  return ctx.jobs.schedule(
    SEND_MESSAGE_QUEUE,
    { ...data },
    {
      ...(opts.db ? { db: opts.db } : {}),
      retryLimit: opts.afterFirstAttempt ? Math.max(0, retry.limit - 1) : retry.limit,
      retryDelaySeconds: retry.delaySeconds,
      retryBackoff: retry.backoff,
      ...(opts.delaySeconds ? { startAfter: new Date(Date.now() + opts.delaySeconds * 1000) } : {}),
    },
  );
}

/** After the commit that queued `sends`: their first attempt now (or the workers woken). */
export function startSends(ctx: EngineContext, sends: readonly SendJobData[]): void {
  if (sends.length === 0) return;
  if (ctx.jobs.runNow) ctx.jobs.runNow(SEND_MESSAGE_QUEUE, sends as unknown as Record<string, unknown>[]);
  else ctx.jobs.wake?.(SEND_MESSAGE_QUEUE);
}
