import { rawClient } from "../db/client.js";
import type { EngineContext } from "./context.js";
import { appendEvents } from "./events.js";

/**
 * Retention (SPEC §11, docs/lifecycle.md "Retention"): per tenant, conversations CLOSED for
 * longer than `retentionDays` are purged with everything that hangs on them — messages,
 * attachments, raw mail, search documents, timeline events — and so are rejected mail
 * records (with their raw bytes) received before the same cutoff. Contacts stay: they are
 * the tenant's customer records, not mail.
 *
 * Run by the hourly `retention-purge` sweep (jobs/retention.ts). Work goes in batches of
 * conversations, one transaction each, so no transaction holds many rows locked; a
 * conversation someone is changing right now (locked) is left for the next run.
 */

export const RETENTION_BATCH = 100;
export const RETENTION_SWEEP_SECONDS = 3600;

export interface RetentionSummary {
  tenantId: string;
  /** The cutoff: closed (or, for rejected mail, received) before this. */
  before: Date;
  conversations: number;
  messages: number;
  rawMessages: number;
  rejectedMessages: number;
}

const DAY_MS = 86_400_000;

/** Before this, a tenant's closed work and rejected mail is past its retention period. */
export function retentionCutoff(now: Date, days: number): Date {
  return new Date(now.getTime() - days * DAY_MS);
}

/** Purges what every tenant's retention period has expired; one summary per tenant that lost anything. */
export async function purgeExpired(
  ctx: Pick<EngineContext, "db" | "clock" | "log">,
  opts: { batch?: number; tenantId?: string } = {},
): Promise<RetentionSummary[]> {
  const sql = rawClient(ctx.db);
  const tenants = await sql<{ id: string; retention_days: number }[]>`
    SELECT id, retention_days FROM tenant
     WHERE retention_days IS NOT NULL ${opts.tenantId ? sql`AND id = ${opts.tenantId}::uuid` : sql``}
     ORDER BY id`;
  const out: RetentionSummary[] = [];
  for (const t of tenants) {
    const before = retentionCutoff(ctx.clock.now(), t.retention_days);
    const s = await purgeTenant(ctx, t.id, before, opts.batch ?? RETENTION_BATCH);
    if (s.conversations + s.rejectedMessages > 0) {
      out.push(s);
      ctx.log.info({ ...s }, "retention: purged expired conversations and rejected mail");
    }
  }
  return out;
}

async function purgeTenant(
  ctx: Pick<EngineContext, "db" | "clock">,
  tenantId: string,
  before: Date,
  batch: number,
): Promise<RetentionSummary> {
  const s: RetentionSummary = {
    tenantId,
    before,
    conversations: 0,
    messages: 0,
    rawMessages: 0,
    rejectedMessages: 0,
  };
  for (;;) {
    const n = await ctx.db.transaction(async (tx) => {
      const sql = rawClient(tx);
      // The batch, locked (SKIP LOCKED: what a reply or an agent is changing now waits for
      // the next run). Every stored mail has its own raw row (ingest and a release each write
      // one), so a message's raw row goes with it; `msgs` reads the links before the
      // statement's deletes (all its parts see one snapshot).
      const [r] = await sql<{ conversations: number; messages: number; raw_messages: number }[]>`
        WITH doomed AS (
          SELECT id FROM conversation
           WHERE tenant_id = ${tenantId}::uuid AND status = 'CLOSED' AND closed_at < ${before.toISOString()}::timestamptz
           ORDER BY closed_at
           LIMIT ${batch}
           FOR UPDATE SKIP LOCKED),
        -- Every data-modifying part runs to completion whether or not the result reads it.
        msgs AS (
          SELECT m.id, m.raw_message_id FROM message m WHERE m.conversation_id IN (SELECT id FROM doomed)),
        queued AS (
          DELETE FROM message_search_queue q WHERE q.message_id IN (SELECT id FROM msgs) RETURNING 1),
        timeline AS (
          DELETE FROM event e WHERE e.conversation_id IN (SELECT id FROM doomed) RETURNING 1),
        links AS (
          UPDATE conversation c SET previous_conversation_id = NULL
           WHERE c.previous_conversation_id IN (SELECT id FROM doomed)
             AND c.id NOT IN (SELECT id FROM doomed)
          RETURNING 1),
        -- Messages, their attachments and search documents go with the conversation (cascade).
        convs AS (
          DELETE FROM conversation c WHERE c.id IN (SELECT id FROM doomed) RETURNING 1),
        raws AS (
          DELETE FROM raw_message r
           WHERE r.id IN (SELECT raw_message_id FROM msgs WHERE raw_message_id IS NOT NULL)
          RETURNING 1)
        SELECT (SELECT count(*) FROM convs)::int AS conversations,
               (SELECT count(*) FROM msgs)::int AS messages,
               (SELECT count(*) FROM raws)::int AS raw_messages`;
      s.conversations += r!.conversations;
      s.messages += r!.messages;
      s.rawMessages += r!.raw_messages;
      return r!.conversations;
    });
    if (n < batch) break;
  }
  for (;;) {
    const n = await ctx.db.transaction(async (tx) => {
      const sql = rawClient(tx);
      const [r] = await sql<{ rejected: number; raw_messages: number }[]>`
        WITH doomed AS (
          SELECT id, raw_message_id FROM rejected_message
           WHERE tenant_id = ${tenantId}::uuid AND received_at < ${before.toISOString()}::timestamptz
           ORDER BY received_at
           LIMIT ${batch}
           FOR UPDATE SKIP LOCKED),
        gone AS (DELETE FROM rejected_message j WHERE j.id IN (SELECT id FROM doomed) RETURNING 1),
        raws AS (
          DELETE FROM raw_message r
           WHERE r.id IN (SELECT raw_message_id FROM doomed WHERE raw_message_id IS NOT NULL)
          RETURNING 1)
        SELECT (SELECT count(*) FROM gone)::int AS rejected, (SELECT count(*) FROM raws)::int AS raw_messages`;
      s.rejectedMessages += r!.rejected;
      s.rawMessages += r!.raw_messages;
      return r!.rejected;
    });
    if (n < batch) break;
  }
  if (s.conversations + s.rejectedMessages > 0) {
    await appendEvents(ctx.db, [
      {
        tenantId,
        type: "retention.purged",
        occurredAt: ctx.clock.now(),
        payload: {
          before: before.toISOString(),
          conversations: s.conversations,
          messages: s.messages,
          rawMessages: s.rawMessages,
          rejectedMessages: s.rejectedMessages,
        },
      },
    ]);
  }
  return s;
}
