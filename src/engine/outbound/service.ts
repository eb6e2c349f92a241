import { and, eq, inArray, isNull, sql } from "drizzle-orm";
import { pipelinedTransaction, rawClient, type Tx } from "../../db/client.js";
import { contact, conversation, message, queue, signature, tenant, user } from "../../db/schema/index.js";
import type { EngineContext } from "../context.js";
import { getConversation } from "../conversations.js";
import { NotFoundError, Problems, ValidationError } from "../errors.js";
import { appendEvents } from "../events.js";
import { isLiveQueue } from "../live-queues.js";
import { assignStartedConversation, startCustomerResponseCountdown } from "../routing/actions.js";
import { lockTenantRouting } from "../routing/service.js";
import { recordAgentReplySla } from "../sla.js";
import { requirePermission, requireRole, type Viewer } from "../viewer.js";
import type { MailAddressInput } from "./address.js";
import {
  type AttachmentInput,
  type ComposeKind,
  compose,
  defaultRecipients,
  type PreviousMessage,
} from "./compose.js";
import { htmlToText, sanitizeContentHtml } from "./html.js";
import {
  conversationHistory,
  type HistoryRow,
  type ReplyConversation,
  replyContext,
  tenantAddresses,
} from "./reads.js";
import {
  asValidationError,
  checkSendingAddress,
  loadSendingAddress,
  messageIdDomainOf,
  queueOutbound,
  type SendJobData,
  scheduleSend,
  startSends,
} from "./store.js";

/**
 * Agent actions on outbound mail (SPEC §10, issue #5): reply, reply-all, forward, a new
 * outbound conversation, internal notes, and a supervisor's retry of a failed send. Each
 * is one transaction: composed, stored QUEUED with its raw MIME, events written and the
 * send job enqueued on the same connection — the SMTP exchange happens later in the job,
 * never inside the transaction (STYLE 11).
 */

type Message = typeof message.$inferSelect;

export interface OutboundAttachmentInput {
  filename: string;
  contentType: string;
  /** The bytes, base64 (as GraphQL carries them). */
  contentBase64: string;
  contentId?: string | null;
  inline?: boolean | null;
}

export interface OutboundInput {
  html?: string | null;
  text?: string | null;
  attachments?: readonly OutboundAttachmentInput[] | null;
  /** A new subject: needs the tenant option and the EDIT_SUBJECT permission. */
  subject?: string | null;
  /** Another of the tenant's addresses to send from: needs CHANGE_FROM. */
  fromAddressId?: string | null;
  to?: readonly MailAddressInput[] | null;
  cc?: readonly MailAddressInput[] | null;
  bcc?: readonly MailAddressInput[] | null;
  /** Quote the history; used when the address's policy is AGENT_DECIDES. */
  includeHistory?: boolean | null;
  /** The message being answered (default: the newest of the conversation). */
  inReplyToMessageId?: string | null;
}

export interface StartConversationInput extends OutboundInput {
  fromAddressId: string;
  to: readonly MailAddressInput[];
  subject: string;
  /** Queue the new conversation belongs to; default the address's queue. */
  queueId?: string | null;
}

/** Attachments arrive base64 in JSON; decoded size per file is capped before composing. */
export const MAX_ATTACHMENTS = 20;
const BASE64_RE = /^[A-Za-z0-9+/\r\n]*={0,2}\s*$/;

function decodeAttachments(list: readonly OutboundAttachmentInput[] | null | undefined): AttachmentInput[] {
  const items = list ?? [];
  const p = new Problems();
  p.check(items.length <= MAX_ATTACHMENTS, "attachments", `at most ${MAX_ATTACHMENTS} attachments`);
  for (const [i, a] of items.entries()) {
    p.check(BASE64_RE.test(a.contentBase64), `attachments[${i}].contentBase64`, "must be base64");
  }
  p.throwIfAny();
  return items.map((a) => ({
    filename: a.filename,
    contentType: a.contentType,
    content: Buffer.from(a.contentBase64, "base64"),
    contentId: a.contentId ?? null,
    inline: a.inline === true,
  }));
}

/** PostgreSQL text cannot hold NUL, and no mail body needs one. */
const noNul = (s: string | null | undefined) => (s == null ? s : s.replace(/\u0000/g, ""));

function toPrevious(m: HistoryRow): PreviousMessage {
  return {
    messageId: m.messageIdHeader,
    references: m.references,
    from: m.from ?? { address: "" },
    replyTo: m.replyTo,
    to: m.to,
    cc: m.cc,
    date: m.dateHeader ?? m.receivedAt,
    subject: m.subject,
    text: m.text,
    html: m.html,
  };
}

async function loadTenant(tx: Tx, tenantId: string) {
  const [t] = await tx.select().from(tenant).where(eq(tenant.id, tenantId));
  if (!t) throw new NotFoundError("Tenant", tenantId);
  return t;
}

async function loadUser(tx: Tx, userId: string) {
  const [u] = await tx
    .select({ name: user.name, alias: user.alias, email: user.email })
    .from(user)
    .where(eq(user.id, userId));
  if (!u) throw new NotFoundError("User", userId);
  return u;
}

/** The agent's own signature; when there is none, the queue's applies (`queueSignature`). */
async function ownSignature(tx: Tx, userId: string) {
  const [own] = await tx
    .select({ html: signature.html, text: signature.text })
    .from(signature)
    .where(and(eq(signature.userId, userId), isNull(signature.archivedAt)));
  return own ?? null;
}

async function queueSignature(tx: Tx, queueId: string | null) {
  if (!queueId) return null;
  const [q] = await tx
    .select({ html: signature.html, text: signature.text })
    .from(queue)
    .innerJoin(signature, eq(signature.id, queue.signatureId))
    .where(and(eq(queue.id, queueId), isNull(signature.archivedAt)));
  return q ?? null;
}

/** The agent's user row and the signature that applies: the user's own, else the queue's. */
async function agentAndSignature(tx: Tx, viewer: Viewer, queueId: string | null) {
  const [agent, own] = await Promise.all([loadUser(tx, viewer.userId), ownSignature(tx, viewer.userId)]);
  return { agent, signature: own ?? (await queueSignature(tx, queueId)) };
}

function checkFromAndSubject(
  viewer: Viewer,
  input: OutboundInput,
  defaultAddressId: string | null,
  kind: ComposeKind,
): void {
  if (input.fromAddressId && input.fromAddressId !== defaultAddressId) {
    requirePermission(viewer, "CHANGE_FROM");
  }
  if (kind !== "NEW" && input.subject != null && input.subject.trim() !== "") {
    requirePermission(viewer, "EDIT_SUBJECT");
  }
}

/**
 * An agent's reply was queued: it meets the first or the pending next response of the SLA
 * and starts the queue's customer-response countdown, in the reply's own transaction.
 * What the locked row already says is not read again: no SLA clock, no SLA update; the
 * queue's countdown came with the lock.
 */
async function markResponded(tx: Tx, ctx: EngineContext, c: ReplyConversation, now: Date): Promise<void> {
  const pg = rawClient(tx);
  // Independent of each other (different columns, their own reads): pipelined.
  // updated_at as drizzle's $onUpdate sets it: the wall clock.
  await Promise.all([
    pg`
      UPDATE conversation
      SET last_outbound_at = ${now.toISOString()}::timestamptz,
          last_activity_at = ${now.toISOString()}::timestamptz,
          first_responded_at = ${(c.firstRespondedAt ?? now).toISOString()}::timestamptz,
          updated_at = ${new Date().toISOString()}::timestamptz
      WHERE id = ${c.id}::uuid`,
    recordAgentReplySla(tx, ctx, c.id, now, { slaState: c.slaState }),
    startCustomerResponseCountdown(tx, ctx, c.id, { tenantId: c.tenantId, minutes: c.countdownMinutes }),
  ]);
}

/**
 * Reply or reply-all on a conversation the viewer can see (REPLY_INBOUND). Recipients
 * default to the answered message's Reply-To/From (and its To/Cc for reply-all).
 */
export async function replyToConversation(
  ctx: EngineContext,
  viewer: Viewer,
  conversationId: string,
  input: OutboundInput,
  opts: { replyAll?: boolean } = {},
): Promise<Message> {
  requirePermission(viewer, "REPLY_INBOUND");
  const kind: ComposeKind = opts.replyAll ? "REPLY_ALL" : "REPLY";
  // Visibility is checked where the conversation is locked, in the transaction.
  return composeOnConversation(ctx, viewer, conversationId, input, kind);
}

/** Forwards one message of a visible conversation to new recipients (FORWARD permission). */
export async function forwardMessage(
  ctx: EngineContext,
  viewer: Viewer,
  messageId: string,
  input: OutboundInput,
): Promise<Message> {
  requirePermission(viewer, "FORWARD");
  const [m] = await ctx.db
    .select({ conversationId: message.conversationId, direction: message.direction })
    .from(message)
    .where(and(eq(message.id, messageId), eq(message.tenantId, viewer.tenantId)));
  if (!m || m.direction === "NOTE") throw new NotFoundError("Message", messageId);
  await getConversation(ctx, viewer, m.conversationId);
  if (!input.to?.length) throw new ValidationError({ field: "to", message: "a forward needs a recipient" });
  return composeOnConversation(
    ctx,
    viewer,
    m.conversationId,
    { ...input, inReplyToMessageId: messageId },
    "FORWARD",
  );
}

async function composeOnConversation(
  ctx: EngineContext,
  viewer: Viewer,
  conversationId: string,
  input: OutboundInput,
  kind: ComposeKind,
): Promise<Message> {
  const attachments = decodeAttachments(input.attachments);
  const explicit = (input.to?.length ?? 0) + (input.cc?.length ?? 0) + (input.bcc?.length ?? 0) > 0;
  // BEGIN rides along with the reads: three round trips in all (reads, writes, COMMIT).
  const sends: SendJobData[] = [];
  const result = await pipelinedTransaction(ctx.db, async (tx) => {
    // Round trip 1: every read, hand-written (outbound/reads.ts) and pipelined —
    // postgres.js sends concurrent queries on the transaction's connection together and
    // PostgreSQL runs them in order, so the reads after the row lock see the locked row's
    // committed state. The lock is taken only on a conversation the viewer may see; the
    // same statement reads the tenant, agent, signatures and sending address.
    const [{ conversation: c, tenant: t, agent, ownSignature: own, sending: sendingRow }, all, tenantAddrs] =
      await Promise.all([
        replyContext(tx, viewer, conversationId, input.fromAddressId || null),
        conversationHistory(tx, conversationId),
        explicit ? Promise.resolve([]) : tenantAddresses(tx, viewer.tenantId),
      ]);
    checkFromAndSubject(viewer, input, c.defaultAddressId, kind);
    if (!(input.fromAddressId ?? c.defaultAddressId)) {
      throw new ValidationError({
        field: "conversation.address",
        message: "no sending address: the conversation has none and none was given",
      });
    }
    const sending = checkSendingAddress(
      sendingRow,
      input.fromAddressId ? "fromAddressId" : "conversation.address",
    );
    let upTo = all.length;
    if (input.inReplyToMessageId) {
      const idx = all.findIndex((m) => m.id === input.inReplyToMessageId);
      if (idx < 0) throw new NotFoundError("Message", input.inReplyToMessageId);
      upTo = idx + 1;
    }
    const sig = own ?? c.queueSignature;
    const previous = all.slice(0, upTo).map(toPrevious);
    // Defaults leave out every address of the tenant, not only this one's From/Reply-To:
    // the customer wrote to support@ while we answer from help@.
    const recipients = explicit
      ? { to: input.to ?? [], cc: input.cc ?? [], bcc: input.bcc ?? [] }
      : defaultRecipients(kind, previous.at(-1) ?? null, tenantAddrs);
    const now = ctx.clock.now();
    let mail: ReturnType<typeof compose>;
    try {
      mail = compose({
        kind,
        address: sending.settings,
        subjectOptions: {
          appendTicketOnFirstReply: t.appendTicketOnFirstReply,
          agentsMayEditSubject: t.agentsMayEditSubject,
        },
        conversation: {
          ticketNumber: c.ticketNumber,
          subject: c.subject,
          // The message list is the whole conversation (notes aside): no second query.
          isFirstReply: !all.some((m) => m.direction === "OUTBOUND" && !m.isAutoReply),
          messages: previous,
        },
        agent,
        companyName: t.company || t.name,
        signature: sig ? { html: sig.html, text: sig.text } : null,
        body: { html: noNul(input.html), text: noNul(input.text) },
        recipients,
        attachments,
        subjectOverride: input.subject,
        includeHistory: input.includeHistory ?? false,
        messageIdDomain: messageIdDomainOf(t),
        now,
        timeZone: t.timeZone,
      });
    } catch (err) {
      asValidationError(err);
    }
    // Round trip 2: every write, pipelined (queueOutbound orders its dependent inserts).
    const [m] = await Promise.all([
      queueOutbound(tx, ctx, {
        tenantId: t.id,
        conversationId: c.id,
        queueId: c.queueId,
        address: sending.address,
        account: sending.account,
        mail,
        kind,
        authorId: viewer.userId,
        isAutoReply: false,
        sends,
      }),
      markResponded(tx, ctx, c, now),
    ]);
    return m;
  });
  ctx.hub.wake();
  startSends(ctx, sends);
  return result;
}

/**
 * A new outbound conversation (START_OUTBOUND): a contact for the first To recipient, a
 * conversation with a fresh ticket number in the address's queue (or the one given,
 * if the viewer can see it), and its first message queued for sending.
 */
export async function startConversation(
  ctx: EngineContext,
  viewer: Viewer,
  input: StartConversationInput,
): Promise<Message> {
  requirePermission(viewer, "START_OUTBOUND");
  const attachments = decodeAttachments(input.attachments);
  new Problems()
    .check(input.to.length > 0, "to", "at least one recipient")
    .check(input.subject.trim() !== "", "subject", "must not be empty")
    .throwIfAny();
  const sends: SendJobData[] = [];
  const result = await ctx.db.transaction(async (tx) => {
    // The new conversation is assigned to its author below, under the tenant routing lock;
    // taking it first keeps the lock order of a routing pass (routing lock, then rows such
    // as the contact), so the two cannot deadlock.
    await lockTenantRouting(tx, viewer.tenantId);
    const t = await loadTenant(tx, viewer.tenantId);
    const sending = await loadSendingAddress(tx, t.id, input.fromAddressId, "fromAddressId");
    const queueId = input.queueId ?? sending.address.queueId;
    if (queueId) {
      // Live and key-share locked until the commit (live-queues.ts): an archive of it waits
      // for this and then sees the new conversation.
      const live = await isLiveQueue(tx, t.id, queueId);
      if (!live || (viewer.queueIds !== null && !viewer.queueIds.has(queueId))) {
        throw new NotFoundError("Queue", queueId);
      }
    }
    const { agent, signature: sig } = await agentAndSignature(tx, viewer, queueId);
    const now = ctx.clock.now();
    const [{ n }] = (await tx.execute<{ n: string }>(
      sql`SELECT nextval('ticket_number_seq')::text AS n`,
    )) as unknown as [{ n: string }];
    const ticketNumber = Number(n);
    let mail: ReturnType<typeof compose>;
    try {
      mail = compose({
        kind: "NEW",
        address: sending.settings,
        subjectOptions: {
          appendTicketOnFirstReply: t.appendTicketOnFirstReply,
          agentsMayEditSubject: t.agentsMayEditSubject,
        },
        conversation: { ticketNumber, subject: input.subject, isFirstReply: true, messages: [] },
        agent,
        companyName: t.company || t.name,
        signature: sig,
        body: { html: noNul(input.html), text: noNul(input.text) },
        recipients: { to: input.to, cc: input.cc ?? [], bcc: input.bcc ?? [] },
        attachments,
        messageIdDomain: messageIdDomainOf(t),
        now,
        timeZone: t.timeZone,
      });
    } catch (err) {
      asValidationError(err);
    }
    const first = mail.to[0]!;
    const [ct] = await tx
      .insert(contact)
      .values({ tenantId: t.id, email: first.address.toLowerCase(), name: first.name })
      .onConflictDoUpdate({
        target: [contact.tenantId, contact.email],
        set: { name: sql`CASE WHEN ${contact.name} = '' THEN excluded.name ELSE ${contact.name} END` },
      })
      .returning({ id: contact.id });
    const [c] = await tx
      .insert(conversation)
      .values({
        tenantId: t.id,
        ticketNumber,
        subject: input.subject.replace(/[\p{Cc}\u2028\u2029]/gu, " ").slice(0, 998),
        // The agent who writes it works it: no queue wait for their own outbound; it is
        // assigned to them below, in this transaction.
        status: "ACTIVE",
        contactId: ct!.id,
        addressId: sending.address.id,
        queueId,
        workState: "DONE",
        receivedAt: now,
        lastActivityAt: now,
        lastOutboundAt: now,
        firstRespondedAt: now,
        statusChangedAt: now,
      })
      .returning();
    await appendEvents(tx, [
      {
        tenantId: t.id,
        type: "conversation.created",
        conversationId: c!.id,
        queueId,
        actorType: "USER",
        actorId: viewer.userId,
        occurredAt: now,
        payload: { ticketNumber, addressId: sending.address.id, outbound: true },
      },
    ]);
    const m = await queueOutbound(tx, ctx, {
      tenantId: t.id,
      conversationId: c!.id,
      queueId,
      address: sending.address,
      account: sending.account,
      mail,
      kind: "NEW",
      authorId: viewer.userId,
      isAutoReply: false,
      sends,
    });
    // In the author's working set (routing's own assignment rules), and the queue's
    // customer-response countdown runs as after any agent mail.
    await assignStartedConversation(tx, ctx, t.id, c!.id, viewer.userId);
    await startCustomerResponseCountdown(tx, ctx, c!.id);
    return m;
  });
  ctx.hub.wake();
  startSends(ctx, sends);
  return result;
}

/** An internal note: stored on the conversation, never sent, visible to whoever sees it. */
export async function addNote(
  ctx: EngineContext,
  viewer: Viewer,
  conversationId: string,
  input: { text?: string | null; html?: string | null },
): Promise<Message> {
  const visible = await getConversation(ctx, viewer, conversationId);
  const html = input.html?.trim() ? sanitizeContentHtml(noNul(input.html)!) : null;
  const text = input.text?.trim() ? noNul(input.text)! : html ? htmlToText(html) : "";
  if (text.trim() === "") throw new ValidationError({ field: "text", message: "a note needs content" });
  const result = await ctx.db.transaction(async (tx) => {
    const now = ctx.clock.now();
    const [m] = await tx
      .insert(message)
      .values({
        tenantId: viewer.tenantId,
        conversationId: visible.id,
        direction: "NOTE",
        text,
        html,
        receivedAt: now,
        authorId: viewer.userId,
      })
      .returning();
    await tx.update(conversation).set({ lastActivityAt: now }).where(eq(conversation.id, visible.id));
    await appendEvents(tx, [
      {
        tenantId: viewer.tenantId,
        type: "note.added",
        conversationId: visible.id,
        queueId: visible.queueId,
        actorType: "USER",
        actorId: viewer.userId,
        occurredAt: now,
        payload: { messageId: m!.id },
      },
    ]);
    return m!;
  });
  ctx.hub.wake();
  return result;
}

/** Puts a FAILED outbound message back in the send queue (SUPERVISOR or ADMIN). Same bytes. */
export async function retryMessage(ctx: EngineContext, viewer: Viewer, messageId: string): Promise<Message> {
  requireRole(viewer, "SUPERVISOR", "ADMIN");
  const [m] = await ctx.db
    .select({ conversationId: message.conversationId })
    .from(message)
    .where(and(eq(message.id, messageId), eq(message.tenantId, viewer.tenantId)));
  if (!m) throw new NotFoundError("Message", messageId);
  const visible = await getConversation(ctx, viewer, m.conversationId);
  const sends: SendJobData[] = [];
  const result = await ctx.db.transaction(async (tx) => {
    const [row] = await tx
      .update(message)
      .set({ outboundStatus: "QUEUED", outboundError: null })
      .where(and(eq(message.id, messageId), inArray(message.outboundStatus, ["FAILED"])))
      .returning();
    if (!row)
      throw new ValidationError({ field: "messageId", message: "only a FAILED message can be retried" });
    await appendEvents(tx, [
      {
        tenantId: viewer.tenantId,
        type: "message.queued",
        conversationId: visible.id,
        queueId: visible.queueId,
        actorType: "USER",
        actorId: viewer.userId,
        occurredAt: ctx.clock.now(),
        payload: { messageId, retry: true },
      },
    ]);
    await scheduleSend(tx, ctx, { tenantId: viewer.tenantId, messageId }, sends);
    return row;
  });
  ctx.hub.wake();
  startSends(ctx, sends);
  return result;
}
