import type { EngineContext } from "../../src/engine/context.js";
import { type IngestResult, type IngestSource, ingestMessage } from "../../src/engine/ingest/ingest.js";

/**
 * A raw mail through the engine's ingest as the admin import does it: parsed by the app's
 * parser pool, one transaction, received `receivedAt` (default now).
 */
export async function ingestRaw(
  ctx: EngineContext,
  to: { tenantId: string; addressId: string },
  raw: Buffer,
  opts: { receivedAt?: Date; source?: IngestSource } = {},
): Promise<IngestResult> {
  return ingestMessage(ctx, {
    tenantId: to.tenantId,
    addressId: to.addressId,
    raw,
    parsed: await ctx.mime.parse(raw),
    receivedAt: opts.receivedAt ?? new Date(),
    source: opts.source ?? { kind: "smtp", mailFrom: "alice@customer.example", rcptTo: [] },
  });
}
