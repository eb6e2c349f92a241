import { and, eq, sql } from "drizzle-orm";
import { rawMessage, rejectedMessage } from "../db/schema/index.js";
import type { ByteaValue } from "./bytea-parts.js";
import type { EngineContext } from "./context.js";
import { liveAddress } from "./conversations.js";
import { ConflictError, NotFoundError } from "./errors.js";
import { appendEvents } from "./events.js";
import { type IngestResult, ingestOrQuarantine } from "./ingest/ingest.js";
import { requireRole, type Viewer } from "./viewer.js";

/** A rejected message's raw original, read in parts as it is consumed. */
export interface RejectedRaw {
  filename: string;
  sizeBytes: number;
  /** Hex SHA-256 of the bytes (`raw_message.sha256`): the raw never changes, so its ETag. */
  sha256: string;
  /** The bytes exactly as received, read in parts (`readByteaParts`). */
  value: ByteaValue;
}

/**
 * The raw original of a rejected message, for audit (SPEC: kept, never silently lost).
 * ADMIN only, as listing rejected mail is: it may hold anything. Unknown IDs, another
 * tenant's and a record whose raw was not kept (oversize mail) are all NotFound.
 */
export async function openRejectedRaw(
  ctx: EngineContext,
  viewer: Viewer,
  rejectedId: string,
): Promise<RejectedRaw> {
  requireRole(viewer, "ADMIN");
  const [row] = await ctx.db
    .select({
      rawId: rawMessage.id,
      sha256: rawMessage.sha256,
      // Both read the TOAST pointer only, not the value.
      sizeBytes: sql<number>`octet_length(${rawMessage.data})`,
      compressed: sql<boolean>`pg_column_compression(${rawMessage.data}) IS NOT NULL`,
    })
    .from(rejectedMessage)
    .innerJoin(
      rawMessage,
      and(eq(rawMessage.id, rejectedMessage.rawMessageId), eq(rawMessage.tenantId, rejectedMessage.tenantId)),
    )
    .where(and(eq(rejectedMessage.id, rejectedId), eq(rejectedMessage.tenantId, viewer.tenantId)));
  if (!row) throw new NotFoundError("RejectedMessage", rejectedId);
  return {
    filename: `rejected-${rejectedId}.eml`,
    sizeBytes: row.sizeBytes,
    sha256: row.sha256,
    // Raw stored compressed (before migration 0010) is read in one statement (bytea-parts.ts).
    value: { table: "raw_message", id: row.rawId, tenantId: viewer.tenantId, compressed: row.compressed },
  };
}

/** What an admin may release: mail that was dropped by policy, not mail that cannot be a message. */
const RELEASABLE = new Set(["spam_dropped", "rule_dropped", "expired"]);

/**
 * Releases dropped mail (a false-positive spam verdict, a rule's drop) into ingest as if it
 * had just arrived at its address at its original received time, except that spam is
 * tagged instead of dropped and a rule's drop is ignored. ADMIN only. The record stays, marked
 * released with the message it became, and a `message.released` event names both.
 * ConflictError: `NOT_RELEASABLE` (unparseable, oversize, delivery reports…, or its raw or
 * address is gone), `ALREADY_RELEASED`.
 */
export async function releaseRejectedMessage(
  ctx: EngineContext,
  viewer: Viewer,
  rejectedId: string,
): Promise<{ rejectedId: string; result: IngestResult }> {
  requireRole(viewer, "ADMIN");
  const [rec] = await ctx.db
    .select()
    .from(rejectedMessage)
    .where(and(eq(rejectedMessage.id, rejectedId), eq(rejectedMessage.tenantId, viewer.tenantId)));
  if (!rec) throw new NotFoundError("RejectedMessage", rejectedId);
  if (rec.releasedAt) throw new ConflictError("this mail was already released", "ALREADY_RELEASED");
  if (!RELEASABLE.has(rec.reason)) {
    throw new ConflictError(`mail rejected as ${rec.reason} cannot be released`, "NOT_RELEASABLE");
  }
  const [raw] = rec.rawMessageId
    ? await ctx.db
        .select({ data: rawMessage.data })
        .from(rawMessage)
        .where(and(eq(rawMessage.id, rec.rawMessageId), eq(rawMessage.tenantId, viewer.tenantId)))
    : [];
  const address = rec.addressId ? await liveAddress(ctx, viewer.tenantId, rec.addressId) : undefined;
  if (!raw || !address) {
    throw new ConflictError("its raw bytes or its address are gone", "NOT_RELEASABLE");
  }
  const result = await ingestOrQuarantine(ctx, {
    tenantId: viewer.tenantId,
    addressId: address.id,
    raw: raw.data,
    parsed: await ctx.mime.parse(raw.data),
    receivedAt: rec.receivedAt,
    source: { kind: "api", userId: viewer.userId },
    release: true,
  });
  const messageId = result.status === "stored" || result.status === "duplicate" ? result.messageId : null;
  await ctx.db.transaction(async (tx) => {
    await tx
      .update(rejectedMessage)
      .set({ releasedAt: ctx.clock.now(), releasedMessageId: messageId })
      .where(eq(rejectedMessage.id, rec.id));
    await appendEvents(tx, [
      {
        tenantId: viewer.tenantId,
        type: "message.released",
        conversationId: result.status === "stored" ? result.conversationId : null,
        occurredAt: ctx.clock.now(),
        actorType: "USER",
        agentId: viewer.userId,
        payload: { rejectedId: rec.id, reason: rec.reason, messageId, outcome: result.status },
      },
    ]);
  });
  return { rejectedId: rec.id, result };
}
