import { and, eq, inArray, sql } from "drizzle-orm";
import { rawClient, type Tx } from "../../db/client.js";
import { rowDecoder } from "../../db/fast.js";
import { contact, conversation, mailAccount, message, type RecipientFailure } from "../../db/schema/index.js";
import { REFUSED_IMAP_LOGIN } from "../connectivity.js";
import type { EngineContext } from "../context.js";
import { errorText } from "../errors.js";
import { appendEvents, type NewEvent } from "../events.js";
import type { ComposedMail } from "./compose.js";
import type {
  RecipientRejection,
  SendFailure,
  SendResult,
  SendRetryPolicy,
  SendSuccess,
  SmtpSettings,
} from "./sender.js";
import { type SendJobData, sendRetryPolicy } from "./store.js";

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
 * it is claimed again. Until then a job that finds its message SENDING is `busy` and must
 * be retried, so the message is never left SENDING without a job. When the SMTP server
 * accepted a mail but recording SENT failed, the row stays SENDING (never QUEUED) and the
 * job carries the acceptance to its retry, which records it without sending. A worker that
 * dies between the server's acceptance and the record is the one at-least-once case (the
 * same Message-ID goes out twice at worst, which receivers de-duplicate); every other path
 * sends at most once.
 */

/**
 * - `sent`, `failed`: recorded; the job is done.
 * - `retry`: a transient failure, the message back to QUEUED; the job must be retried.
 * - `busy`: not claimed because it is still QUEUED or SENDING under another claim — most
 *   often this job's own earlier attempt that crashed after claiming. The job must be
 *   retried (not completed): once the claim is older than `STALE_SENDING` a retry takes it
 *   over, and when pg-boss runs out of retries the dead-letter handler marks it FAILED.
 *   Completing it would leave the message SENDING with no job left to finish it.
 * - `unrecorded`: the SMTP server accepted the mail but recording SENT failed. The job must
 *   be retried carrying `accepted`; the retry records, it never sends again.
 * - `skipped`: nothing to do — already SENT/FAILED/BOUNCED (at most once), or no such
 *   outbound message of this tenant. The job is done.
 */
export type DeliveryOutcome = "sent" | "failed" | "retry" | "busy" | "unrecorded" | "skipped";

/**
 * Outcomes after which the send needs another attempt, as a job: a transient failure, a
 * claim held by someone else, an acceptance not yet recorded. The others are final.
 */
export function needsAnotherAttempt(outcome: DeliveryOutcome): boolean {
  return outcome === "retry" || outcome === "busy" || outcome === "unrecorded";
}

export interface DeliveryResult {
  outcome: DeliveryOutcome;
  error?: string;
  /** With `unrecorded`: what the SMTP server accepted, for the retry to record. */
  accepted?: AcceptedSend;
}

/**
 * An SMTP acceptance not yet recorded, as the job carries it to its retry (pg-boss keeps it
 * as the failed job's output): plain JSON.
 */
export interface AcceptedSend {
  /** When the server accepted it (ISO 8601): the message's `sentAt`. */
  at: string;
  response: string;
  accepted: string[];
  rejected: string[];
  rejectedRecipients: RecipientRejection[];
}

export interface DeliveryJob {
  data: SendJobData;
  /** pg-boss will not retry this job again: a transient failure is final now. */
  finalAttempt: boolean;
  /** An earlier attempt of this job handed the mail over but could not record it. */
  acceptedEarlier?: AcceptedSend | null;
}

/** Longer than the SMTP socket timeout (60 s) plus the pool's queueing: a live send is never stolen. */
export const STALE_SENDING_MINUTES = 10;
const STALE_SENDING = `${STALE_SENDING_MINUTES} minutes`;
/** pg-boss's default job expiry: a job whose worker died is retried after this. */
const JOB_EXPIRY_MINUTES = 15;

type Claimed = Pick<
  typeof message.$inferSelect,
  | "id"
  | "tenantId"
  | "conversationId"
  | "messageIdHeader"
  | "from"
  | "to"
  | "cc"
  | "bcc"
  | "sendAttempts"
  | "isAutoReply"
  | "accountId"
>;

const claimedColumns = {
  id: message.id,
  tenantId: message.tenantId,
  conversationId: message.conversationId,
  messageIdHeader: message.messageIdHeader,
  from: message.from,
  to: message.to,
  cc: message.cc,
  bcc: message.bcc,
  sendAttempts: message.sendAttempts,
  isAutoReply: message.isAutoReply,
  accountId: message.accountId,
};

const decodeClaimed = rowDecoder<Claimed>(claimedColumns);
/** `claimedColumns` as a select list of `message m`, for the hand-written statements. */
const CLAIMED_SELECT = Object.values(claimedColumns)
  .map((c) => `m."${c.name}"`)
  .join(", ");

/** Delivers one message (see `deliverBatch`). */
export async function deliverMessage(
  ctx: EngineContext,
  data: SendJobData,
  opts: { finalAttempt: boolean },
): Promise<DeliveryResult> {
  const [r] = await deliverBatch(ctx, [{ data, finalAttempt: opts.finalAttempt }]);
  return r!;
}

/**
 * Delivers a batch of send jobs: one claim for all, one read of what they need, the SMTP
 * exchanges concurrently over the pooled transport, then the successes recorded in one
 * transaction. Failures are recorded one by one (rare). Results in the order of `jobs`.
 */
export async function deliverBatch(
  ctx: EngineContext,
  jobs: readonly DeliveryJob[],
): Promise<DeliveryResult[]> {
  if (!ctx.mail) throw new Error("no outbound transport configured");
  const mail = ctx.mail;
  if (jobs.length === 0) return [];
  const results = new Map<string, DeliveryResult>();
  const resultsInOrder = () =>
    jobs.map((j) => results.get(jobKey(j.data)) ?? { outcome: "skipped" as const });
  // Jobs whose earlier attempt got the mail accepted only record it: never a second send.
  const earlier = jobs.filter((j) => j.acceptedEarlier);
  for (const [k, r] of await recordAcceptedEarlier(ctx, earlier)) results.set(k, r);
  const fresh = earlier.length === 0 ? jobs : jobs.filter((j) => !j.acceptedEarlier);
  if (fresh.length === 0) return resultsInOrder();
  // Claim and read in one statement (hand-written: it runs for every batch): the UPDATE
  // moves QUEUED (or stale SENDING) → SENDING for the jobs' (tenant, message) pairs only,
  // and the SELECT joins what sending needs to the claimed rows. updated_at is set as
  // drizzle's $onUpdate sets it (the wall clock): STALE_SENDING is measured from it.
  const pg = rawClient(ctx.db);
  const claimedRows = await pg<Record<string, unknown>[]>`
    WITH claimed AS (
      UPDATE message m
      SET outbound_status = 'SENDING', send_attempts = m.send_attempts + 1,
          updated_at = ${new Date().toISOString()}::timestamptz
      WHERE m.id = ANY(${fresh.map((j) => j.data.messageId)}::uuid[])
        -- Each message only for its own job's tenant. The pairs are a filter on the rows
        -- the primary key found, not the join driving the plan (unnest() is estimated at
        -- 100 rows, which can turn the claim into a scan of the message table).
        AND (m.tenant_id, m.id) IN (
          SELECT * FROM unnest(${fresh.map((j) => j.data.tenantId)}::uuid[], ${fresh.map((j) => j.data.messageId)}::uuid[]))
        AND m.direction = 'OUTBOUND'
        -- QUEUED, or SENDING left by a dead worker. Written as CASE on purpose: a plain
        -- status condition lets the planner pick message_outbound_idx, whose QUEUED and
        -- SENDING entries include every dead version since the last vacuum (thousands under
        -- load) — a claim of 7 rows then reads hundreds of heap pages instead of 7.
        AND CASE m.outbound_status
              WHEN 'QUEUED' THEN true
              WHEN 'SENDING' THEN m.updated_at < now() - ${STALE_SENDING}::interval
              ELSE false
            END
      RETURNING ${pg.unsafe(CLAIMED_SELECT)}, m.address_id, m.raw_message_id
    )
    SELECT c.*, conv.queue_id, a.force_tls, r.data AS raw, acc.id AS account_row_id, acc.smtp_host,
           acc.smtp_port, acc.smtp_tls_mode, acc.smtp_user, acc.smtp_password_enc
    FROM claimed c
    LEFT JOIN conversation conv ON conv.id = c.conversation_id
    LEFT JOIN mail_account acc ON acc.id = c.account_id
    LEFT JOIN email_address a ON a.id = c.address_id
    LEFT JOIN raw_message r ON r.id = c.raw_message_id`;
  const claimed = new Map<string, Claimed>(claimedRows.map((r) => [r.id as string, decodeClaimed(r)]));
  const unclaimed = fresh.filter((j) => claimed.get(j.data.messageId)?.tenantId !== j.data.tenantId);
  if (unclaimed.length > 0) {
    for (const k of await stillPending(ctx, unclaimed)) results.set(k, { outcome: "busy" });
    if (claimed.size === 0) return resultsInOrder();
  }
  const details = new Map(
    claimedRows.map((r) => [
      r.id as string,
      {
        raw: r.raw as Buffer | null,
        forceTls: r.force_tls as boolean | null,
        queueId: r.queue_id as string | null,
        account: r.account_row_id
          ? {
              smtpHost: r.smtp_host as string | null,
              smtpPort: r.smtp_port as number | null,
              smtpTlsMode: r.smtp_tls_mode as SmtpSettings["tlsMode"],
              smtpUser: r.smtp_user as string | null,
              smtpPasswordEnc: r.smtp_password_enc as string | null,
            }
          : null,
      },
    ]),
  );
  const finalByKey = new Map(fresh.map((j) => [jobKey(j.data), j.finalAttempt]));

  const sent: Sent[] = [];
  const deliverOne = async (m: Claimed) => {
    const row = details.get(m.id);
    const account = row?.account;
    if (!row?.raw || !account?.smtpHost || !account.smtpPort) {
      await recordFailure(ctx, m, "configuration: no raw message or no SMTP account", false);
      results.set(jobKey(m), { outcome: "failed", error: "configuration" });
      return;
    }
    // The raw bytes carry every header; the envelope comes from the stored recipients.
    const envelopeMail = {
      messageId: `<${m.messageIdHeader}>`,
      from: m.from ?? { address: "", name: "" },
      to: m.to,
      cc: m.cc,
      bcc: m.bcc,
    } as unknown as ComposedMail;
    let result: SendResult;
    try {
      const settings: SmtpSettings = {
        host: account.smtpHost,
        port: account.smtpPort,
        tlsMode: account.smtpTlsMode,
        user: account.smtpUser,
        password: account.smtpPasswordEnc ? ctx.secrets.decrypt(account.smtpPasswordEnc) : null,
      };
      result = await mail.sender.send(settings, envelopeMail, {
        raw: row.raw,
        forceTls: row.forceTls ?? false,
      });
    } catch (err) {
      // Nothing was handed to the relay (the sender reports SMTP outcomes as results):
      // this message is retried on its own, the rest of the batch is still recorded.
      const message = errorText(err);
      result = {
        ok: false,
        kind: "transient",
        permanent: false,
        code: null,
        responseCode: null,
        response: null,
        message,
      };
    }
    if (result.ok) {
      sent.push({ m, queueId: row.queueId, result });
      results.set(jobKey(m), { outcome: "sent" });
      return;
    }
    const reason = describe(result);
    if (!result.permanent && !finalByKey.get(jobKey(m))) {
      // Back in the queue with the reason visible; pg-boss retries the job with backoff.
      await ctx.db
        .update(message)
        .set({ outboundStatus: "QUEUED", outboundError: reason })
        .where(and(eq(message.id, m.id), eq(message.outboundStatus, "SENDING")));
      results.set(jobKey(m), { outcome: "retry", error: reason });
      return;
    }
    await recordFailure(ctx, m, reason, result.kind === "tls_required", result);
    results.set(jobKey(m), { outcome: "failed", error: reason });
  };
  await Promise.all(
    [...claimed.values()].map((m) =>
      // Recording a failure failed (a database error): nothing went out, the row stays
      // SENDING, and the job's retry takes it over once the claim is stale.
      deliverOne(m).catch((err: unknown) => {
        results.set(jobKey(m), { outcome: "retry", error: errorText(err) });
      }),
    ),
  );
  if (sent.length > 0) {
    const at = ctx.clock.now();
    try {
      await recordSent(ctx, sent, at);
    } catch (err) {
      // The mail is out; the rows stay SENDING (never back to QUEUED: that would send it
      // again). The jobs carry the acceptance to their retries, which record it.
      const error = errorText(err);
      for (const s of sent) {
        results.set(jobKey(s.m), { outcome: "unrecorded", error, accepted: acceptedSend(s.result, at) });
      }
    }
  }
  return resultsInOrder();
}

type Sent = { m: Claimed; queueId: string | null; result: SendSuccess };

/** A job's identity in a batch: its tenant and message (a foreign tenant's job must not share a result). */
function jobKey(x: { tenantId: string; messageId: string } | { tenantId: string; id: string }): string {
  return `${x.tenantId}/${"messageId" in x ? x.messageId : x.id}`;
}

function acceptedSend(r: SendSuccess, at: Date): AcceptedSend {
  return {
    at: at.toISOString(),
    response: r.response,
    accepted: r.accepted,
    rejected: r.rejected,
    rejectedRecipients: r.rejectedRecipients,
  };
}

/**
 * Of these jobs' messages, those still QUEUED or SENDING (the claim did not take them: a
 * live claim, or this job's own crashed attempt). Read only when a claim came back short.
 */
async function stillPending(ctx: EngineContext, jobs: readonly DeliveryJob[]): Promise<string[]> {
  const rows = await rawClient(ctx.db)<{ id: string; tenant_id: string }[]>`
    SELECT m.id, m.tenant_id FROM message m
    WHERE m.id = ANY(${jobs.map((j) => j.data.messageId)}::uuid[])
      AND (m.tenant_id, m.id) IN (
        SELECT * FROM unnest(${jobs.map((j) => j.data.tenantId)}::uuid[], ${jobs.map((j) => j.data.messageId)}::uuid[]))
      AND m.direction = 'OUTBOUND'
      AND m.outbound_status IN ('QUEUED', 'SENDING')`;
  return rows.map((r) => jobKey({ tenantId: r.tenant_id, messageId: r.id }));
}

/**
 * Records SENT for messages an earlier attempt handed over but could not record, if they
 * are still QUEUED or SENDING (a message recorded meanwhile keeps its record: `skipped`).
 * Nothing is sent. A database error leaves them `unrecorded` again, acceptance kept.
 */
async function recordAcceptedEarlier(
  ctx: EngineContext,
  jobs: readonly DeliveryJob[],
): Promise<Map<string, DeliveryResult>> {
  const results = new Map<string, DeliveryResult>();
  if (jobs.length === 0) return results;
  const byKey = new Map(jobs.map((j) => [jobKey(j.data), j.acceptedEarlier!]));
  try {
    await ctx.db.transaction(async (tx) => {
      const pg = rawClient(tx);
      const rows = await pg<Record<string, unknown>[]>`
        SELECT ${pg.unsafe(CLAIMED_SELECT)}, conv.queue_id
        FROM message m LEFT JOIN conversation conv ON conv.id = m.conversation_id
        WHERE m.id = ANY(${jobs.map((j) => j.data.messageId)}::uuid[])
          AND (m.tenant_id, m.id) IN (
            SELECT * FROM unnest(${jobs.map((j) => j.data.tenantId)}::uuid[], ${jobs.map((j) => j.data.messageId)}::uuid[]))
          AND m.direction = 'OUTBOUND'
          AND m.outbound_status IN ('QUEUED', 'SENDING')
        FOR UPDATE OF m`;
      // Grouped by acceptance time: each is the sentAt of its messages.
      const byAt = new Map<string, Sent[]>();
      for (const r of rows) {
        const m = decodeClaimed(r);
        const a = byKey.get(jobKey(m))!;
        const result: SendSuccess = { ok: true, messageId: "", ...a };
        const list = byAt.get(a.at) ?? [];
        list.push({ m, queueId: r.queue_id as string | null, result });
        byAt.set(a.at, list);
      }
      for (const [at, sent] of byAt) await writeSent(tx, sent, new Date(at));
      for (const r of rows) results.set(jobKey(decodeClaimed(r)), { outcome: "sent" });
    });
  } catch (err) {
    results.clear();
    const error = errorText(err);
    for (const [k, accepted] of byKey) results.set(k, { outcome: "unrecorded", error, accepted });
    return results;
  }
  if (results.size > 0) ctx.hub.wake();
  return results;
}

/** Permanent (5yz) refusals of single recipients; 4yz ones are reported, not held against the address. */
function permanentRejections(list: readonly RecipientRejection[] | undefined): RecipientRejection[] {
  return (list ?? []).filter((r) => r.responseCode !== null && r.responseCode >= 500 && r.address !== "");
}

/**
 * Event payloads are read by everyone who may see the conversation, SEE_BCC or not: they
 * name only the visible recipients (To and Cc) and count the others — the agent's Bcc and
 * the address's hidden BCC, which the SMTP envelope carries too.
 */
function visibleRecipients(m: Claimed): (address: string) => boolean {
  const visible = new Set([...(m.to ?? []), ...(m.cc ?? [])].map((a) => a.address.toLowerCase()));
  return (address) => visible.has(address.toLowerCase());
}

/** `{[key]: n}` when there are any: payloads without blind copies stay as they were. */
function countOf(key: string, n: number): Record<string, number> {
  return n > 0 ? { [key]: n } : {};
}

function asFailures(list: readonly RecipientRejection[] | undefined): RecipientFailure[] {
  return (list ?? []).map((r) => ({ address: r.address, responseCode: r.responseCode, reason: r.response }));
}

/**
 * The relay refused these recipients for good at RCPT TO: their contacts' addresses are
 * undeliverable, as after a permanent bounce (the RCPT reply is the same verdict, only
 * earlier), with an event per message naming them.
 */
async function markRejectedRecipients(
  tx: Tx,
  m: Claimed,
  queueId: string | null,
  rejected: readonly RecipientRejection[],
  now: Date,
): Promise<NewEvent[]> {
  const permanent = permanentRejections(rejected);
  for (const r of permanent) {
    await tx
      .update(contact)
      .set({ undeliverable: true, undeliverableReason: `${r.responseCode} ${r.response}`.slice(0, 500) })
      .where(and(eq(contact.tenantId, m.tenantId), eq(contact.email, r.address.toLowerCase())));
  }
  if (rejected.length === 0) return [];
  const isVisible = visibleRecipients(m);
  return [
    {
      tenantId: m.tenantId,
      conversationId: m.conversationId,
      queueId,
      type: "message.recipients_rejected",
      occurredAt: now,
      payload: {
        messageId: m.id,
        recipients: asFailures(rejected.filter((r) => isVisible(r.address))),
        markedUndeliverable: permanent.filter((r) => isVisible(r.address)).map((r) => r.address),
        ...countOf("bccRejected", rejected.filter((r) => !isVisible(r.address)).length),
      },
    },
  ];
}

/** SENT for every success of a batch, in one transaction: one UPDATE, one multi-row event insert. */
async function recordSent(ctx: EngineContext, sent: readonly Sent[], now: Date): Promise<void> {
  await ctx.db.transaction((tx) => writeSent(tx, sent, now));
  ctx.hub.wake();
}

async function writeSent(tx: Tx, sent: readonly Sent[], now: Date): Promise<void> {
  const events: NewEvent[] = [];
  const plain = sent.filter((s) => s.result.rejectedRecipients.length === 0).map((s) => s.m.id);
  const partial = sent.filter((s) => s.result.rejectedRecipients.length > 0);
  const writes: Promise<unknown>[] = [];
  if (plain.length > 0) {
    // Hand-written: one statement text for any batch size (an IN list of N parameters
    // is a new prepared statement, and a describe round trip, for every N).
    writes.push(rawClient(tx)`
        UPDATE message
        SET outbound_status = 'SENT', sent_at = ${now.toISOString()}::timestamptz, outbound_error = NULL,
            updated_at = ${new Date().toISOString()}::timestamptz
        WHERE id = ANY(${plain}::uuid[])`);
  }
  for (const { m, result } of partial) {
    writes.push(
      tx
        .update(message)
        .set({
          outboundStatus: "SENT",
          sentAt: now,
          outboundError: null,
          failedRecipients: asFailures(result.rejectedRecipients),
        })
        .where(eq(message.id, m.id)),
    );
  }
  for (const { m, queueId, result } of sent) {
    const base = { tenantId: m.tenantId, conversationId: m.conversationId, queueId };
    const isVisible = visibleRecipients(m);
    events.push({
      ...base,
      type: "message.sent",
      occurredAt: now,
      payload: {
        messageId: m.id,
        attempts: m.sendAttempts,
        accepted: result.accepted.filter(isVisible),
        rejected: result.rejected.filter(isVisible),
        ...countOf("bccAccepted", result.accepted.filter((a) => !isVisible(a)).length),
        ...countOf("bccRejected", result.rejected.filter((a) => !isVisible(a)).length),
        response: result.response.slice(0, 300),
      },
    });
    if (m.isAutoReply) {
      events.push({
        ...base,
        type: "auto_reply.sent",
        occurredAt: now,
        payload: { messageId: m.id, to: m.to.map((a) => a.address) },
      });
    }
    if (result.rejectedRecipients.length > 0) {
      events.push(...(await markRejectedRecipients(tx, m, queueId, result.rejectedRecipients, now)));
    }
  }
  writes.push(appendEvents(tx, events));
  await Promise.all(writes);
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
  m: Claimed,
  reason: string,
  markRecipients: boolean,
  failure?: SendFailure,
): Promise<void> {
  await ctx.db.transaction((tx) => writeFailure(tx, ctx, m, reason, { markRecipients, failure }));
  ctx.hub.wake();
}

/**
 * FAILED with the reason and a `message.failed` event, in the caller's transaction. The
 * event's `kind` is the SMTP failure's, else `kind` ("configuration" unless said otherwise);
 * `markRecipients` marks the To/Cc contacts undeliverable.
 */
async function writeFailure(
  tx: Tx,
  ctx: EngineContext,
  m: Claimed,
  reason: string,
  opts: { markRecipients: boolean; failure?: SendFailure; kind?: string },
): Promise<void> {
  const { markRecipients, failure, kind = "configuration" } = opts;
  const now = ctx.clock.now();
  await tx
    .update(message)
    .set({
      outboundStatus: "FAILED",
      outboundError: reason,
      failedRecipients: asFailures(failure?.rejectedRecipients),
    })
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
      // A verdict, not an edit (as `testMailAccount` writes it): a new updated_at was a new
      // version of the account, which undid the IMAP side's parking and voided a connection
      // test in flight. "SMTP: " in front: a bare "auth: …" is the IMAP connector's own
      // refused login, which parks IMAP fetching (second re-probe, session 17).
      // A refused IMAP login recorded before stays in front (the account stays parked: the
      // same stale password usually fails both sides).
      .set({
        status: "INVALID",
        lastError: sql`left(CASE WHEN ${sql.join(
          REFUSED_IMAP_LOGIN.map((p) => sql`${mailAccount.lastError} LIKE ${`${p}%`}`),
          sql` OR `,
        )} THEN split_part(${mailAccount.lastError}, '; SMTP: ', 1) || '; ' ELSE '' END || ${`SMTP: ${reason}`}::text, 2000)`,
        lastCheckedAt: now,
        updatedAt: sql`${mailAccount.updatedAt}`,
      })
      .where(eq(mailAccount.id, m.accountId));
  }
  const [c] = await tx
    .select({ queueId: conversation.queueId })
    .from(conversation)
    .where(eq(conversation.id, m.conversationId));
  const rejectedEvents = failure?.rejectedRecipients
    ? await markRejectedRecipients(tx, m, c?.queueId ?? null, failure.rejectedRecipients, now)
    : [];
  await appendEvents(tx, [
    ...rejectedEvents,
    {
      tenantId: m.tenantId,
      type: "message.failed",
      conversationId: m.conversationId,
      queueId: c?.queueId ?? null,
      occurredAt: now,
      payload: {
        messageId: m.id,
        reason,
        kind: failure?.kind ?? kind,
        attempts: m.sendAttempts,
        recipientsMarkedUndeliverable: markRecipients ? recipients : [],
      },
    },
  ]);
}

/**
 * How long a message may stay SENDING before the sweep gives it up: a quarter more than
 * the longest a job can still come back for it — the job's own start delay after an
 * immediate first attempt (one retry delay), every retry's longest backoff (pg-boss waits
 * up to delay × 2^retry), a dead worker's job expiry, the claim's staleness — so a message
 * some job can still finish is never touched. With the default policy (5 retries, 60 s,
 * backoff) that is 110 minutes.
 */
export function orphanedSendingMinutes(retry: SendRetryPolicy): number {
  let seconds = retry.delaySeconds;
  for (let k = 1; k <= retry.limit; k++)
    seconds += retry.delaySeconds * (retry.backoff ? 2 ** Math.min(16, k) : 1);
  return Math.ceil((seconds / 60 + JOB_EXPIRY_MINUTES + STALE_SENDING_MINUTES) * 1.25);
}

/**
 * The safety net behind the send jobs: a message SENDING for longer than
 * `orphanedSendingMinutes` has no job left
 * that will record its outcome (its dead-letter job failed too, or the job was lost). It
 * is marked FAILED — visible to agents, retryable like any failed send — with a
 * `message.failed` event; whether the mail went out is unknown, and sending it again
 * unasked could duplicate it. Rows are locked (SKIP LOCKED) and re-checked in the same
 * transaction, so a job claiming one at the same moment either waits and then finds it
 * FAILED, or is skipped here. Returns how many it gave up (at most `limit` per call).
 */
export async function giveUpOrphanedSends(ctx: EngineContext, limit = 200): Promise<number> {
  const minutes = orphanedSendingMinutes(sendRetryPolicy(ctx));
  const given = await ctx.db.transaction(async (tx) => {
    const pg = rawClient(tx);
    const rows = await pg<Record<string, unknown>[]>`
      SELECT ${pg.unsafe(CLAIMED_SELECT)}
      FROM message m
      WHERE m.outbound_status = 'SENDING' AND m.direction = 'OUTBOUND'
        AND m.updated_at < now() - make_interval(mins => ${minutes}::int)
      ORDER BY m.updated_at
      LIMIT ${limit}
      FOR UPDATE OF m SKIP LOCKED`;
    for (const r of rows) {
      const m = decodeClaimed(r);
      await writeFailure(
        tx,
        ctx,
        m,
        `gave up: no delivery outcome recorded ${minutes} minutes after attempt ${m.sendAttempts}` +
          " (whether the relay accepted it is unknown)",
        { markRecipients: false, kind: "no_outcome" },
      );
    }
    return rows.length;
  });
  if (given > 0) ctx.hub.wake();
  return given;
}

/**
 * The dead-letter path: pg-boss gave up on a job without our handler recording an outcome
 * (worker crash, expiry, a claim that never went stale, database errors). A message still
 * QUEUED or SENDING is marked FAILED so it is visible and retryable — unless the job
 * carries an SMTP acceptance it could not record, which is recorded as SENT instead (the
 * mail did go out). SENT stays SENT. Returns what it recorded, null when nothing.
 */
export async function markGivenUp(
  ctx: EngineContext,
  data: SendJobData,
  acceptedEarlier?: AcceptedSend | null,
): Promise<"sent" | "failed" | null> {
  if (acceptedEarlier) {
    const [r] = await recordAcceptedEarlier(ctx, [{ data, finalAttempt: true, acceptedEarlier }]);
    if (r?.[1].outcome === "unrecorded") throw new Error(r[1].error);
    return r ? "sent" : null;
  }
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
  if (!m) return null;
  await recordFailure(
    ctx,
    m,
    `gave up after ${m.sendAttempts} attempt(s): ${m.outboundError ?? "no outcome"}`,
    false,
  );
  return "failed";
}
