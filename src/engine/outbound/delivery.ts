import { and, eq, inArray, or, sql } from "drizzle-orm";
import {
  contact,
  conversation,
  emailAddress,
  mailAccount,
  message,
  rawMessage,
} from "../../db/schema/index.js";
import type { EngineContext } from "../context.js";
import { appendEvents, type NewEvent } from "../events.js";
import type { ComposedMail } from "./compose.js";
import type { SendFailure, SmtpSettings } from "./sender.js";
import type { SendJobData } from "./store.js";

/**
 * The send job's work (SPEC §10): deliver one QUEUED outbound message over its address's
 * SMTP account and record the outcome. Idempotent by state, not by luck:
 *
 * 1. claim — a conditional UPDATE moves QUEUED → SENDING (and counts the attempt); a
 *    message already SENT, FAILED or BOUNCED is not claimed, so a retried or duplicated
 *    job after a recorded success sends nothing;
 * 2. send the stored raw bytes (outside any transaction);
 * 3. record — SENT, FAILED with the reason, or back to QUEUED for pg-boss to retry.
 *
 * A SENDING row older than `STALE_SENDING` means a worker died between claim and record:
 * it is claimed again. That one case is at-least-once (the same Message-ID goes out
 * twice at worst, which receivers de-duplicate); every other path sends at most once.
 */

export type DeliveryOutcome = "sent" | "failed" | "retry" | "skipped";

/** Longer than the SMTP socket timeout (60 s) plus the pool's queueing: a live send is never stolen. */
const STALE_SENDING = "10 minutes";

export async function deliverMessage(
  ctx: EngineContext,
  data: SendJobData,
  opts: { finalAttempt: boolean },
): Promise<{ outcome: DeliveryOutcome; error?: string }> {
  if (!ctx.mail) throw new Error("no outbound transport configured");
  const [claimed] = await ctx.db
    .update(message)
    .set({ outboundStatus: "SENDING", sendAttempts: sql`${message.sendAttempts} + 1` })
    .where(
      and(
        eq(message.id, data.messageId),
        eq(message.tenantId, data.tenantId),
        eq(message.direction, "OUTBOUND"),
        or(
          eq(message.outboundStatus, "QUEUED"),
          and(
            eq(message.outboundStatus, "SENDING"),
            sql`${message.updatedAt} < now() - ${STALE_SENDING}::interval`,
          ),
        ),
      ),
    )
    .returning();
  if (!claimed) return { outcome: "skipped" };

  const [row] = await ctx.db
    .select({ account: mailAccount, forceTls: emailAddress.forceTls, raw: rawMessage.data })
    .from(message)
    .leftJoin(mailAccount, eq(mailAccount.id, message.accountId))
    .leftJoin(emailAddress, eq(emailAddress.id, message.addressId))
    .leftJoin(rawMessage, eq(rawMessage.id, message.rawMessageId))
    .where(eq(message.id, claimed.id));
  const account = row?.account;
  if (!row?.raw || !account?.smtpHost || !account.smtpPort) {
    await recordFailure(ctx, claimed, "configuration: no raw message or no SMTP account", false);
    return { outcome: "failed", error: "configuration" };
  }
  const settings: SmtpSettings = {
    host: account.smtpHost,
    port: account.smtpPort,
    tlsMode: account.smtpTlsMode,
    user: account.smtpUser,
    password: account.smtpPasswordEnc ? ctx.secrets.decrypt(account.smtpPasswordEnc) : null,
  };
  // The raw bytes carry every header; the envelope comes from the stored recipients.
  const envelopeMail = {
    messageId: `<${claimed.messageIdHeader}>`,
    from: claimed.from ?? { address: "", name: "" },
    to: claimed.to,
    cc: claimed.cc,
    bcc: claimed.bcc,
  } as unknown as ComposedMail;
  const result = await ctx.mail.sender.send(settings, envelopeMail, {
    raw: row.raw,
    forceTls: row.forceTls ?? false,
  });

  if (result.ok) {
    const now = ctx.clock.now();
    await ctx.db.transaction(async (tx) => {
      await tx
        .update(message)
        .set({ outboundStatus: "SENT", sentAt: now, outboundError: null })
        .where(eq(message.id, claimed.id));
      const [c] = await tx
        .select({ queueId: conversation.queueId })
        .from(conversation)
        .where(eq(conversation.id, claimed.conversationId));
      const base = {
        tenantId: claimed.tenantId,
        conversationId: claimed.conversationId,
        queueId: c?.queueId,
      };
      const events: NewEvent[] = [
        {
          ...base,
          type: "message.sent",
          occurredAt: now,
          payload: {
            messageId: claimed.id,
            attempts: claimed.sendAttempts,
            accepted: result.accepted,
            rejected: result.rejected,
            response: result.response.slice(0, 300),
          },
        },
      ];
      if (claimed.isAutoReply) {
        events.push({
          ...base,
          type: "auto_reply.sent",
          occurredAt: now,
          payload: { messageId: claimed.id, to: claimed.to.map((a) => a.address) },
        });
      }
      await appendEvents(tx, events);
    });
    ctx.hub.wake();
    return { outcome: "sent" };
  }

  const reason = describe(result);
  if (!result.permanent && !opts.finalAttempt) {
    // Back in the queue with the reason visible; pg-boss retries the job with backoff.
    await ctx.db
      .update(message)
      .set({ outboundStatus: "QUEUED", outboundError: reason })
      .where(and(eq(message.id, claimed.id), eq(message.outboundStatus, "SENDING")));
    return { outcome: "retry", error: reason };
  }
  await recordFailure(ctx, claimed, reason, result.kind === "tls_required", result);
  return { outcome: "failed", error: reason };
}

function describe(f: SendFailure): string {
  const parts: string[] = [f.kind];
  if (f.responseCode) parts.push(String(f.responseCode));
  parts.push((f.response ?? f.message).replace(/[\r\n]+/g, " "));
  return parts.join(": ").slice(0, 1000);
}

/**
 * FAILED with the reason and a `message.failed` event. When the recipient's server cannot
 * do TLS and the address forces it (SPEC §2), the recipients' contacts are marked
 * undeliverable; an authentication failure marks the account INVALID.
 */
async function recordFailure(
  ctx: EngineContext,
  m: typeof message.$inferSelect,
  reason: string,
  markRecipients: boolean,
  failure?: SendFailure,
): Promise<void> {
  const now = ctx.clock.now();
  await ctx.db.transaction(async (tx) => {
    await tx
      .update(message)
      .set({ outboundStatus: "FAILED", outboundError: reason })
      .where(eq(message.id, m.id));
    const recipients = [...m.to, ...m.cc].map((a) => a.address.toLowerCase());
    if (markRecipients && recipients.length > 0) {
      await tx
        .update(contact)
        .set({ undeliverable: true, undeliverableReason: reason.slice(0, 500) })
        .where(and(eq(contact.tenantId, m.tenantId), inArray(contact.email, recipients)));
    }
    if (failure?.kind === "auth" && m.accountId) {
      await tx
        .update(mailAccount)
        .set({ status: "INVALID", lastError: reason.slice(0, 500), lastCheckedAt: now })
        .where(eq(mailAccount.id, m.accountId));
    }
    const [c] = await tx
      .select({ queueId: conversation.queueId })
      .from(conversation)
      .where(eq(conversation.id, m.conversationId));
    await appendEvents(tx, [
      {
        tenantId: m.tenantId,
        type: "message.failed",
        conversationId: m.conversationId,
        queueId: c?.queueId ?? null,
        occurredAt: now,
        payload: {
          messageId: m.id,
          reason,
          kind: failure?.kind ?? "configuration",
          attempts: m.sendAttempts,
          recipientsMarkedUndeliverable: markRecipients ? recipients : [],
        },
      },
    ]);
  });
  ctx.hub.wake();
}

/**
 * The dead-letter path: pg-boss gave up on a job without our handler recording an outcome
 * (worker crash, expiry). A message still QUEUED or SENDING is marked FAILED so it is
 * visible and retryable; SENT stays SENT.
 */
export async function markGivenUp(ctx: EngineContext, data: SendJobData): Promise<boolean> {
  const [m] = await ctx.db
    .select()
    .from(message)
    .where(
      and(
        eq(message.id, data.messageId),
        eq(message.tenantId, data.tenantId),
        inArray(message.outboundStatus, ["QUEUED", "SENDING"]),
      ),
    );
  if (!m) return false;
  await recordFailure(
    ctx,
    m,
    `gave up after ${m.sendAttempts} attempt(s): ${m.outboundError ?? "no outcome"}`,
    false,
  );
  return true;
}
