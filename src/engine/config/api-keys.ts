import { and, desc, eq } from "drizzle-orm";
import { apiKey } from "../../db/schema/index.js";
import { createApiKey as issueApiKey, revokeApiKey as revokeKey } from "../auth.js";
import type { EngineContext } from "../context.js";
import { ForbiddenError, NotFoundError } from "../errors.js";
import type { Viewer } from "../viewer.js";
import { getUser } from "./users.js";

/** A key's metadata; the secret hash never leaves the engine. */
export type ApiKeyInfo = Omit<typeof apiKey.$inferSelect, "secretHash">;

const columns = {
  id: apiKey.id,
  tenantId: apiKey.tenantId,
  userId: apiKey.userId,
  name: apiKey.name,
  prefix: apiKey.prefix,
  lastUsedAt: apiKey.lastUsedAt,
  revokedAt: apiKey.revokedAt,
  createdAt: apiKey.createdAt,
  updatedAt: apiKey.updatedAt,
};

/**
 * Only ADMINs manage other users' keys. An agent cannot see other users at all, so for it
 * they are not found; a supervisor can see them, so it is told it is not allowed.
 */
function assertMayManageKeysOf(viewer: Viewer, userId: string): void {
  if (userId === viewer.userId || viewer.role === "ADMIN") return;
  if (viewer.role === "AGENT") throw new NotFoundError("User", userId);
  throw new ForbiddenError("Only an ADMIN manages other users' API keys");
}

/** Keys of one user, newest first, revoked ones included. ADMIN for anyone, others for themselves. */
export async function listApiKeys(ctx: EngineContext, viewer: Viewer, userId: string): Promise<ApiKeyInfo[]> {
  assertMayManageKeysOf(viewer, userId);
  await getUser(ctx, viewer, userId);
  return ctx.db
    .select(columns)
    .from(apiKey)
    .where(and(eq(apiKey.tenantId, viewer.tenantId), eq(apiKey.userId, userId)))
    .orderBy(desc(apiKey.createdAt), desc(apiKey.id));
}

export async function getApiKey(ctx: EngineContext, viewer: Viewer, id: string): Promise<ApiKeyInfo> {
  const [row] = await ctx.db
    .select(columns)
    .from(apiKey)
    .where(and(eq(apiKey.id, id), eq(apiKey.tenantId, viewer.tenantId)));
  if (!row || (row.userId !== viewer.userId && viewer.role !== "ADMIN"))
    throw new NotFoundError("ApiKey", id);
  return row;
}

/** Issues a key; the full key is in the result only this once (only its hash is stored). */
export async function createApiKey(
  ctx: EngineContext,
  viewer: Viewer,
  input: { userId: string; name: string },
): Promise<{ apiKey: ApiKeyInfo; key: string }> {
  assertMayManageKeysOf(viewer, input.userId);
  const issued = await issueApiKey(ctx.db, viewer, input);
  return { apiKey: await getApiKey(ctx, viewer, issued.id), key: issued.key };
}

/** Revoking is immediate (every request looks the key up) and idempotent. */
export async function revokeApiKey(ctx: EngineContext, viewer: Viewer, id: string): Promise<ApiKeyInfo> {
  const current = await getApiKey(ctx, viewer, id);
  if (current.revokedAt) return current;
  await revokeKey(ctx.db, ctx.clock, viewer, id);
  return getApiKey(ctx, viewer, id);
}
