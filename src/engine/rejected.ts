import { and, eq, sql } from "drizzle-orm";
import { rawClient } from "../db/client.js";
import { rawMessage, rejectedMessage } from "../db/schema/index.js";
import type { EngineContext } from "./context.js";
import { NotFoundError } from "./errors.js";
import { requireRole, type Viewer } from "./viewer.js";

/**
 * Bytes per read. postgres.js returns bytea as hex text, so a part costs twice its size on
 * the wire and one decode on the event loop: 512 KB keeps each decode short and the memory
 * of a download bounded, whatever the size of the mail (up to MAX_MESSAGE_BYTES, 40 MB).
 */
const PART_BYTES = 512 * 1024;

/** A rejected message's raw original, read in parts as it is consumed. */
export interface RejectedRaw {
  filename: string;
  sizeBytes: number;
  /** The bytes exactly as received, in order; fails if the raw row vanished meanwhile. */
  parts: AsyncIterable<Buffer>;
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
  // A slice of an uncompressed (EXTERNAL, migration 0010) value reads only its own TOAST
  // chunks; a compressed one, stored before 0010, is decompressed from its start for every
  // slice, so it is read whole instead of in quadratic time.
  const step = row.compressed ? Math.max(row.sizeBytes, 1) : PART_BYTES;
  return {
    filename: `rejected-${rejectedId}.eml`,
    sizeBytes: row.sizeBytes,
    parts: readParts(ctx, viewer.tenantId, row.rawId, row.sizeBytes, step),
  };
}

// One statement per part, each on whichever pooled connection is free: a slow client holds
// no connection (and no snapshot) while it drains what it was sent. Raw rows never change.
async function* readParts(
  ctx: EngineContext,
  tenantId: string,
  rawId: string,
  sizeBytes: number,
  step: number,
): AsyncGenerator<Buffer> {
  const pg = rawClient(ctx.db);
  for (let at = 0; at < sizeBytes; at += step) {
    const [part] = await pg<{ data: Buffer }[]>`
      SELECT substring(data FROM ${at + 1}::int FOR ${step}::int) AS data
      FROM raw_message WHERE id = ${rawId}::uuid AND tenant_id = ${tenantId}::uuid`;
    if (!part) throw new Error(`raw_message ${rawId} disappeared during a download`);
    yield part.data;
  }
}
