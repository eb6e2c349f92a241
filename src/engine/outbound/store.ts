import { createHash, randomUUID } from "node:crypto";
import { and, eq, isNull } from "drizzle-orm";
import type { Tx } from "../../db/client.js";
import {
  attachment,
  brandedTemplate,
  emailAddress,
  type MailboxAddress,
  mailAccount,
  message,
  rawMessage,
  type tenant,
} from "../../db/schema/index.js";
import type { EngineContext } from "../context.js";
import { ValidationError } from "../errors.js";
import { appendEvents, type NewEvent } from "../events.js";
import type { MailAddress } from "./address.js";
import type { AddressSettings, ComposedMail } from "./compose.js";
import { ComposeError } from "./errors.js";

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
export function messageIdDomainOf(t: TenantRow): string {
  return t.messageIdDomain?.trim() || `${t.id}.switchboard.invalid`;
}

/** Message ids are stored without angle brackets (as ingest stores them). */
export function bare(id: string): string {
  return id.replace(/^<|>$/g, "");
}

export function mailboxes(list: readonly MailAddress[]): MailboxAddress[] {
  return list.map((a) => ({ address: a.address, name: a.name }));
}

/**
 * The sending address with its account, checked: the tenant's, not archived, outbound
 * allowed, on an account with SMTP settings. `field` names the input the caller chose it by.
 */
export async function loadSendingAddress(
  tx: Tx,
  tenantId: string,
  addressId: string | null,
  field: string,
  opts: { requireOutboundAllowed?: boolean } = {},
): Promise<{ address: AddressRow; account: AccountRow; settings: AddressSettings }> {
  const fail = (msg: string): never => {
    throw new ValidationError({ field, message: msg });
  };
  if (!addressId) return fail("no sending address: the conversation has none and none was given");
  const [row] = await tx
    .select({ address: emailAddress, account: mailAccount, templateHtml: brandedTemplate.html })
    .from(emailAddress)
    .leftJoin(mailAccount, eq(mailAccount.id, emailAddress.accountId))
    .leftJoin(
      brandedTemplate,
      and(eq(brandedTemplate.id, emailAddress.brandedTemplateId), isNull(brandedTemplate.archivedAt)),
    )
    .where(
      and(
        eq(emailAddress.id, addressId),
        eq(emailAddress.tenantId, tenantId),
        isNull(emailAddress.archivedAt),
      ),
    );
  if (!row) return fail("unknown address");
  if ((opts.requireOutboundAllowed ?? true) && !row.address.outboundAllowed) {
    fail("outbound mail is not allowed from this address");
  }
  const account = row.account;
  if (!account || account.archivedAt || !account.enabled || !account.smtpHost || !account.smtpPort) {
    return fail("the address has no usable SMTP account");
  }
  const a = row.address;
  return {
    address: a,
    account,
    settings: {
      displayName: a.displayName,
      fromAddress: a.fromAddress?.trim() || a.address,
      replyTo: (a.replyTo ?? "")
        .split(",")
        .map((s) => s.trim())
        .filter((s) => s !== ""),
      bcc: a.bcc,
      ticketFormat: { placement: a.ticketPlacement, delimiter: a.ticketDelimiter },
      signaturePolicy: a.signaturePolicy,
      historyPolicy: a.historyPolicy,
      templateHtml: row.templateHtml ?? null,
    },
  };
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
  address: AddressRow;
  account: AccountRow;
  mail: ComposedMail;
  kind: string;
  authorId: string | null;
  isAutoReply: boolean;
  /** Extra events written with the message (e.g. auto_reply.queued). */
  events?: (messageId: string) => NewEvent[];
}

/** Stores the composed mail as a QUEUED outbound message and enqueues its send job (same tx). */
export async function queueOutbound(
  tx: Tx,
  ctx: EngineContext,
  args: QueueOutboundArgs,
): Promise<typeof message.$inferSelect> {
  if (!ctx.mail) throw new Error("no outbound transport configured");
  const { mail } = args;
  const raw = await ctx.mail.buildMime(mail);
  const now = ctx.clock.now();
  // Ids are minted here so the inserts do not wait for each other: they go out pipelined
  // on the transaction's connection. The order they reach the server in does not matter:
  // the references among them (message → raw message, attachment → message) are
  // DEFERRABLE INITIALLY DEFERRED (migration 0006) and checked at commit.
  const rawId = randomUUID();
  const messageId = randomUUID();
  const [, [m]] = await Promise.all([
    tx
      .insert(rawMessage)
      .values({
        id: rawId,
        tenantId: args.tenantId,
        sha256: createHash("sha256").update(raw).digest("hex"),
        sizeBytes: raw.length,
        data: raw,
      })
      .returning({ id: rawMessage.id }),
    tx
      .insert(message)
      .values({
        id: messageId,
        tenantId: args.tenantId,
        conversationId: args.conversationId,
        direction: "OUTBOUND",
        messageIdHeader: bare(mail.messageId),
        inReplyTo: mail.inReplyTo ? bare(mail.inReplyTo) : null,
        references: mail.references.map(bare),
        from: { address: mail.from.address, name: mail.from.name },
        to: mailboxes(mail.to),
        cc: mailboxes(mail.cc),
        bcc: mailboxes(mail.bcc),
        replyTo: mailboxes(mail.replyTo),
        subject: mail.subject,
        text: mail.text,
        html: mail.html,
        headers: Object.fromEntries(Object.entries(mail.headers).map(([k, v]) => [k.toLowerCase(), [v]])),
        dateHeader: mail.date,
        receivedAt: now,
        authorId: args.authorId,
        autoSubmitted: args.isAutoReply,
        isAutoReply: args.isAutoReply,
        outboundStatus: "QUEUED",
        addressId: args.address.id,
        accountId: args.account.id,
        rawMessageId: rawId,
        sizeBytes: raw.length,
      })
      .returning(),
    mail.attachments.length > 0
      ? tx
          .insert(attachment)
          .values(
            mail.attachments.map((a) => ({
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
          )
          .returning({ id: attachment.id })
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
          subject: mail.subject.slice(0, 200),
          attachments: mail.attachments.length,
          autoReply: args.isAutoReply,
        },
      },
      ...(args.events?.(messageId) ?? []),
    ]),
    scheduleSend(tx, ctx, { tenantId: args.tenantId, messageId }),
  ]);
  return m!;
}

export async function scheduleSend(tx: Tx, ctx: EngineContext, data: SendJobData): Promise<void> {
  const retry = ctx.mail?.retry ?? { limit: 5, delaySeconds: 60, backoff: true };
  await ctx.jobs.schedule(
    SEND_MESSAGE_QUEUE,
    { ...data },
    {
      db: tx,
      retryLimit: retry.limit,
      retryDelaySeconds: retry.delaySeconds,
      retryBackoff: retry.backoff,
    },
  );
}
