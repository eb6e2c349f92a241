import { rawClient } from "../db/client.js";
import type { EngineContext } from "./context.js";

/**
 * Bytes per read. postgres.js returns bytea as hex text, so a part costs twice its size on
 * the wire and one decode on the event loop: 512 KB keeps each decode short and the memory
 * of a download bounded, whatever the size of the value (up to MAX_MESSAGE_BYTES, 40 MB).
 */
export const PART_BYTES = 512 * 1024;

/** A large bytea value that never changes once written: a raw message or an attachment. */
export interface ByteaValue {
  table: "raw_message" | "attachment";
  id: string;
  tenantId: string;
  /**
   * Stored compressed (`pg_column_compression` not null): a slice of it is decompressed
   * from the value's start, so it is read in one statement instead of in quadratic time.
   * Uncompressed values (raw_message is EXTERNAL since migration 0010; incompressible
   * attachments) read only the TOAST chunks of each slice.
   */
  compressed: boolean;
}

/**
 * `length` bytes of the value from byte `from` (0-based), in parts as they are consumed:
 * one statement per part, each on whichever pooled connection is free, so a slow client
 * holds no connection (and no snapshot) while it drains what it was sent. Fails if the row
 * vanished meanwhile (deleted by retention during a download).
 */
export async function* readByteaParts(
  ctx: EngineContext,
  value: ByteaValue,
  from: number,
  length: number,
): AsyncGenerator<Buffer> {
  const pg = rawClient(ctx.db);
  const step = value.compressed ? Math.max(length, 1) : PART_BYTES;
  for (let at = from; at < from + length; at += step) {
    const n = Math.min(step, from + length - at);
    const [part] = await pg<{ data: Buffer }[]>`
      SELECT substring(data FROM ${at + 1}::int FOR ${n}::int) AS data
      FROM ${pg(value.table)} WHERE id = ${value.id}::uuid AND tenant_id = ${value.tenantId}::uuid`;
    if (!part) throw new Error(`${value.table} ${value.id} disappeared during a download`);
    yield part.data;
  }
}
