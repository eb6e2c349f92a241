import { and, eq, isNull, lt, or } from "drizzle-orm";
import type { Db } from "../db/client.js";
import { apiKey, tenant, user } from "../db/schema/index.js";
import type { Clock } from "./clock.js";
import { checkName } from "./config/validate.js";
import { generateApiKey, parseApiKey, verifySecret } from "./crypto.js";
import type { Role } from "./domain.js";
import { NotFoundError, Problems } from "./errors.js";
import { loadViewer, requireRole, type Viewer } from "./viewer.js";

/**
 * Resolves a Bearer API key to a viewer, or null. Every failure (malformed, unknown,
 * revoked, archived user) is the same null so a caller learns nothing about which.
 */
export async function authenticate(
  db: Db,
  clock: Clock,
  bearer: string | null | undefined,
): Promise<Viewer | null> {
  if (!bearer) return null;
  const parsed = parseApiKey(bearer.replace(/^Bearer\s+/i, ""));
  if (!parsed) return null;
  const [row] = await db
    .select({ key: apiKey, rolePermissions: tenant.rolePermissions })
    .from(apiKey)
    .innerJoin(tenant, eq(tenant.id, apiKey.tenantId))
    .where(and(eq(apiKey.prefix, parsed.prefix), isNull(apiKey.revokedAt)));
  if (!row || !verifySecret(parsed.secret, row.key.secretHash)) return null;
  const viewer = await loadViewer(db, row.key.userId, row.rolePermissions);
  if (!viewer || viewer.tenantId !== row.key.tenantId) return null;
  // Throttled: a write per request would turn every read into a write.
  const now = clock.now();
  const stale = new Date(now.getTime() - 60_000);
  await db
    .update(apiKey)
    .set({ lastUsedAt: now })
    .where(and(eq(apiKey.id, row.key.id), or(isNull(apiKey.lastUsedAt), lt(apiKey.lastUsedAt, stale))));
  return viewer;
}

/** Issues a key for a user: admins for anyone in their tenant, others only for themselves. */
export async function createApiKey(
  db: Db,
  viewer: Viewer,
  input: { userId: string; name: string },
): Promise<{ id: string; key: string; prefix: string }> {
  if (input.userId !== viewer.userId) requireRole(viewer, "ADMIN");
  const p = new Problems();
  checkName(p, "name", input.name);
  p.throwIfAny();
  const [owner] = await db
    .select({ id: user.id })
    .from(user)
    .where(and(eq(user.id, input.userId), eq(user.tenantId, viewer.tenantId), isNull(user.archivedAt)));
  if (!owner) throw new NotFoundError("User", input.userId);
  const generated = generateApiKey();
  const [row] = await db
    .insert(apiKey)
    .values({
      tenantId: viewer.tenantId,
      userId: owner.id,
      name: input.name.trim(),
      prefix: generated.prefix,
      secretHash: generated.secretHash,
    })
    .returning({ id: apiKey.id });
  return { id: row!.id, key: generated.key, prefix: generated.prefix };
}

export async function revokeApiKey(db: Db, clock: Clock, viewer: Viewer, id: string): Promise<void> {
  const [row] = await db
    .select({ id: apiKey.id, userId: apiKey.userId })
    .from(apiKey)
    .where(and(eq(apiKey.id, id), eq(apiKey.tenantId, viewer.tenantId)));
  if (!row || (row.userId !== viewer.userId && viewer.role !== "ADMIN"))
    throw new NotFoundError("ApiKey", id);
  await db.update(apiKey).set({ revokedAt: clock.now() }).where(eq(apiKey.id, id));
}

/**
 * Creates a tenant with its first admin and returns the admin's key (shown once). Used by
 * first-start bootstrap, the `npm run admin` CLI and tests.
 */
export async function createTenantWithAdmin(
  db: Db,
  input: { tenantName: string; adminEmail: string; adminName?: string; timeZone?: string; role?: Role },
): Promise<{ tenantId: string; userId: string; apiKey: string }> {
  const problems = new Problems();
  problems.check(input.tenantName.trim().length > 0, "tenantName", "must not be empty");
  problems.check(/^[^\s@]+@[^\s@]+$/.test(input.adminEmail), "adminEmail", "must be an email address");
  problems.throwIfAny();
  return db.transaction(async (tx) => {
    const [t] = await tx
      .insert(tenant)
      .values({
        name: input.tenantName.trim(),
        company: input.tenantName.trim(),
        timeZone: input.timeZone ?? "UTC",
      })
      .returning({ id: tenant.id });
    const [u] = await tx
      .insert(user)
      .values({
        tenantId: t!.id,
        email: input.adminEmail.toLowerCase(),
        name: input.adminName ?? "Administrator",
        role: input.role ?? "ADMIN",
      })
      .returning({ id: user.id });
    const key = generateApiKey();
    await tx.insert(apiKey).values({
      tenantId: t!.id,
      userId: u!.id,
      name: "bootstrap",
      prefix: key.prefix,
      secretHash: key.secretHash,
    });
    return { tenantId: t!.id, userId: u!.id, apiKey: key.key };
  });
}

/** On an empty database: one tenant and admin, so a newcomer can log in. */
export async function bootstrapIfEmpty(
  db: Db,
): Promise<{ tenantId: string; userId: string; apiKey: string } | null> {
  const [any] = await db.select({ id: tenant.id }).from(tenant).limit(1);
  if (any) return null;
  return createTenantWithAdmin(db, { tenantName: "Default", adminEmail: "admin@example.com" });
}
