import { and, asc, eq, isNull, sql } from "drizzle-orm";
import type { Tx } from "../../db/client.js";
import {
  autoReplyAttachment,
  autoReplyTemplate,
  businessCalendar,
  contact,
  conversation,
  emailAddress,
  event,
  message,
  queue,
  tenant,
  user,
} from "../../db/schema/index.js";
import type { EngineContext } from "../context.js";
import type { ConversationStatus } from "../domain.js";
import { errorText } from "../errors.js";
import { appendEvents, type NewEvent } from "../events.js";
import { nextWorkingDate } from "../time/calendar.js";
import {
  AUTO_REPLY_TRIGGERS,
  type AutoReplyTriggerKind,
  autoReplySuppression,
  autoReplyTriggerFor,
  renderAutoReplyTags,
  shouldAutoReply,
} from "./auto-reply.js";
import { compose } from "./compose.js";
import {
  AUTO_REPLY_QUEUE,
  loadSendingAddress,
  messageIdDomainOf,
  queueOutbound,
  type SendJobData,
  startSends,
} from "./store.js";

/**
 * Auto-replies (SPEC §9) around the pure rules of auto-reply.ts. Ingest decides the
 * trigger inside its transaction — it alone knows the conversation's state before the
 * mail arrived — and enqueues an `auto-reply` job there, so the decision is durable and
 * committed with the message. The job then applies loop protection (with the per-sender
 * rate limit counted under an advisory lock), renders the template and queues the reply
 * for the ordinary send job. Every suppression is an `auto_reply.suppressed` event.
 */

/** 25 MB of template files base64-encoded (4/3, CRLF every 76 characters) plus the body. */
const AUTO_REPLY_MAX_MESSAGE_BYTES = 36 * 1024 * 1024;

export interface AutoReplyJobData {
  tenantId: string;
  /** The inbound message that triggered it. */
  messageId: string;
  trigger: AutoReplyTriggerKind;
  /**
   * A template chosen by a rule's auto-reply action (SPEC §7): sent instead of the queue's,
   * and whatever the queue's auto-reply switches say — the rule is the decision. Loop
   * protection applies all the same.
   */
  templateId?: string | null;
}

/** Called by ingest inside its transaction, after the inbound message row exists. */
export async function scheduleAutoReply(
  tx: Tx,
  ctx: EngineContext,
  args: {
    tenantId: string;
    queueId: string | null;
    messageId: string;
    created: boolean;
    previousStatus: ConversationStatus | null;
    previousActivityAt: Date | null;
    receivedAt: Date;
    /** A rule's auto-reply template (new conversations only). */
    templateId?: string | null;
    /** The queue's row when the caller has it already (saves the read). */
    queue?: typeof queue.$inferSelect | null;
  },
): Promise<boolean> {
  if (args.templateId && args.created) {
    const data: AutoReplyJobData = {
      tenantId: args.tenantId,
      messageId: args.messageId,
      trigger: "NEW_CONVERSATION",
      templateId: args.templateId,
    };
    await ctx.jobs.schedule(AUTO_REPLY_QUEUE, { ...data }, { db: tx, ...AUTO_REPLY_RETRY });
    return true;
  }
  if (!args.queueId) return false;
  const [q] =
    args.queue?.id === args.queueId
      ? [args.queue]
      : await tx.select().from(queue).where(eq(queue.id, args.queueId));
  if (!q?.autoReplyTemplateId) return false;
  const trigger = autoReplyTriggerFor({
    isNewConversation: args.created,
    previousStatus: args.previousStatus,
    lastActivityAt: args.previousActivityAt,
    receivedAt: args.receivedAt,
  });
  const wanted = shouldAutoReply(trigger, {
    enabled: true,
    onNewConversation: q.autoReplyOnNew,
    onReplyToClosed: q.autoReplyOnClosed,
    onReplyToPaused: q.autoReplyOnPaused,
    onReplyToIdleActive: q.autoReplyOnIdle,
    idleDays: q.autoReplyIdleDays,
  });
  if (!trigger || !wanted) return false;
  const data: AutoReplyJobData = {
    tenantId: args.tenantId,
    messageId: args.messageId,
    trigger: trigger.kind,
  };
  await ctx.jobs.schedule(AUTO_REPLY_QUEUE, { ...data }, { db: tx, ...AUTO_REPLY_RETRY });
  return true;
}

// pg-boss asserts a boolean whenever the key is present, and the runner always passes it.
const AUTO_REPLY_RETRY = { retryLimit: 3, retryDelaySeconds: 30, retryBackoff: true } as const;

export type AutoReplyOutcome =
  | { status: "queued"; outboundMessageId: string }
  | { status: "suppressed"; reason: string }
  | { status: "skipped" };

export async function runAutoReply(ctx: EngineContext, data: AutoReplyJobData): Promise<AutoReplyOutcome> {
  if (!AUTO_REPLY_TRIGGERS.includes(data.trigger)) return { status: "skipped" };
  const sends: SendJobData[] = [];
  const out = await ctx.db.transaction(async (tx): Promise<AutoReplyOutcome> => {
    const [row] = await tx
      .select({ m: message, c: conversation, t: tenant, q: queue, tpl: autoReplyTemplate })
      .from(message)
      .innerJoin(conversation, eq(conversation.id, message.conversationId))
      .innerJoin(tenant, eq(tenant.id, message.tenantId))
      .leftJoin(queue, eq(queue.id, conversation.queueId))
      .innerJoin(
        autoReplyTemplate,
        and(
          eq(autoReplyTemplate.tenantId, message.tenantId),
          data.templateId
            ? eq(autoReplyTemplate.id, data.templateId)
            : eq(autoReplyTemplate.id, queue.autoReplyTemplateId),
          isNull(autoReplyTemplate.archivedAt),
        ),
      )
      .where(
        and(
          eq(message.id, data.messageId),
          eq(message.tenantId, data.tenantId),
          eq(message.direction, "INBOUND"),
        ),
      );
    if (!row) return { status: "skipped" };
    const { m, c, t, q, tpl } = row;
    const sender = (m.from?.address ?? "").toLowerCase();
    // One decision per sender at a time, so two mails arriving together cannot both pass
    // the rate limit on the same count.
    await tx.execute(sql`SELECT pg_advisory_xact_lock(hashtext(${`auto-reply:${t.id}:${sender}`}))`);
    // A retried job must not answer twice.
    const done = await tx
      .select({ id: event.id })
      .from(event)
      .where(
        and(
          eq(event.tenantId, t.id),
          eq(event.conversationId, c.id),
          sql`${event.type} IN ('auto_reply.queued', 'auto_reply.suppressed')`,
          sql`${event.payload}->>'inboundMessageId' = ${m.id}`,
        ),
      )
      .limit(1);
    if (done.length > 0) return { status: "skipped" };

    const now = ctx.clock.now();
    const base = { tenantId: t.id, conversationId: c.id, queueId: c.queueId, occurredAt: now };
    const suppress = async (reason: string, detail?: string): Promise<AutoReplyOutcome> => {
      await appendEvents(tx, [
        {
          ...base,
          type: "auto_reply.suppressed",
          payload: { inboundMessageId: m.id, trigger: data.trigger, reason, from: sender, detail },
        },
      ]);
      return { status: "suppressed", reason };
    };

    const own = await tx
      .select({ address: emailAddress.address, fromAddress: emailAddress.fromAddress })
      .from(emailAddress)
      .where(eq(emailAddress.tenantId, t.id));
    const windowMinutes = t.autoReplyLimitWindowMinutes;
    const since = new Date(now.getTime() - windowMinutes * 60_000);
    const [{ n }] = (await tx.execute<{ n: number }>(sql`
      SELECT count(*)::int AS n FROM message
      WHERE tenant_id = ${t.id} AND direction = 'OUTBOUND' AND is_auto_reply
        AND received_at > ${since.toISOString()}::timestamptz
        AND "to" @> ${JSON.stringify([{ address: sender }])}::jsonb`)) as unknown as [{ n: number }];
    const reason = autoReplySuppression(
      {
        from: m.from?.address ?? null,
        headers: {
          ...m.headers,
          ...(m.messageIdHeader ? { "message-id": [`<${m.messageIdHeader}>`] } : {}),
        },
        isSpam: m.spam,
      },
      {
        ownAddresses: own.flatMap((a) => [a.address, ...(a.fromAddress ? [a.fromAddress] : [])]),
        messageIdDomain: messageIdDomainOf(t),
        recentAutoRepliesToSender: n,
        maxPerWindow: t.autoReplyLimitPerSender,
      },
    );
    if (reason)
      return suppress(reason, reason === "RATE_LIMITED" ? `${n} in ${windowMinutes} min` : undefined);

    let sending: Awaited<ReturnType<typeof loadSendingAddress>>;
    try {
      // The auto-reply sender may sit on an outbound-only account (SPEC §2, §9).
      sending = await loadSendingAddress(
        tx,
        t.id,
        q?.autoReplyAddressId ?? c.addressId,
        "autoReplyAddressId",
        {
          requireOutboundAllowed: false,
        },
      );
    } catch (err) {
      return suppress("NO_SENDING_ADDRESS", errorText(err));
    }

    const [ct] = await tx.select().from(contact).where(eq(contact.id, c.contactId));
    const agentId = c.assigneeId ?? ct?.preferredAgentId ?? null;
    const [agent] = agentId
      ? await tx.select({ name: user.name, alias: user.alias }).from(user).where(eq(user.id, agentId))
      : [];
    let next: string | null = null;
    if (q?.calendarId) {
      const [cal] = await tx.select().from(businessCalendar).where(eq(businessCalendar.id, q.calendarId));
      if (cal) {
        try {
          next = nextWorkingDate(
            { timeZone: cal.timeZone, intervals: cal.intervals, holidays: cal.holidays },
            m.receivedAt,
          );
        } catch {
          next = null; // a calendar that is never open has no next working date
        }
      }
    }
    const values = {
      consumer: m.from?.name || ct?.name || sender,
      agent: agent ? agent.alias || agent.name : null,
      queue: q?.name ?? "",
      company: t.company || t.name,
      ticketId: c.ticketNumber,
      nextWorkingDate: next,
      now: m.receivedAt,
      timeZone: t.timeZone,
    };
    // The template's files (SPEC §9), in their order; inline images keep their Content-ID
    // so the HTML's cid: references resolve.
    const files = await tx
      .select({
        filename: autoReplyAttachment.filename,
        contentType: autoReplyAttachment.contentType,
        content: autoReplyAttachment.data,
        contentId: autoReplyAttachment.contentId,
        inline: autoReplyAttachment.inline,
      })
      .from(autoReplyAttachment)
      .where(and(eq(autoReplyAttachment.templateId, tpl.id), eq(autoReplyAttachment.tenantId, t.id)))
      .orderBy(asc(autoReplyAttachment.position));
    let mail: ReturnType<typeof compose>;
    try {
      mail = compose({
        kind: "AUTO_REPLY",
        address: { ...sending.settings, bcc: [], templateHtml: sending.settings.templateHtml },
        subjectOptions: { appendTicketOnFirstReply: false, agentsMayEditSubject: false },
        conversation: {
          ticketNumber: c.ticketNumber,
          subject: c.subject,
          isFirstReply: false,
          messages: [
            {
              messageId: m.messageIdHeader,
              references: m.references,
              from: m.from ?? { address: sender },
              date: m.receivedAt,
              subject: m.subject,
              text: m.text,
              html: m.html,
            },
          ],
        },
        agent: null,
        companyName: values.company,
        signature: null,
        body: {
          text: tpl.text ? renderAutoReplyTags(tpl.text, values, { html: false }) : null,
          html: tpl.html ? renderAutoReplyTags(tpl.html, values, { html: true }) : null,
        },
        // Always to the sender that loop protection checked, never to a Reply-To.
        recipients: { to: [{ address: sender, name: m.from?.name ?? "" }] },
        attachments: files,
        // The template's files may total 25 MB (checked on save); base64 makes that about
        // 34 MB on the wire, so the message limit allows for the encoding.
        limits: { maxBytes: AUTO_REPLY_MAX_MESSAGE_BYTES },
        messageIdDomain: messageIdDomainOf(t),
        now,
        timeZone: t.timeZone,
      });
    } catch (err) {
      return suppress("COMPOSE_FAILED", errorText(err));
    }
    const queued = await queueOutbound(tx, ctx, {
      tenantId: t.id,
      conversationId: c.id,
      queueId: c.queueId,
      address: sending.address,
      account: sending.account,
      mail,
      kind: "AUTO_REPLY",
      authorId: null,
      isAutoReply: true,
      sends,
      events: (id): NewEvent[] => [
        {
          ...base,
          type: "auto_reply.queued",
          payload: { inboundMessageId: m.id, messageId: id, trigger: data.trigger, to: sender },
        },
      ],
    });
    await tx.update(conversation).set({ lastOutboundAt: now }).where(eq(conversation.id, c.id));
    return { status: "queued", outboundMessageId: queued.id };
  });
  ctx.hub.wake();
  if (out.status === "queued") startSends(ctx, sends);
  return out;
}
