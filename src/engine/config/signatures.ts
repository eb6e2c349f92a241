import { and, asc, eq, ilike, inArray, isNull, ne, sql } from "drizzle-orm";
import { signature, user } from "../../db/schema/index.js";
import type { EngineContext } from "../context.js";
import { SIGNATURE_TAGS } from "../domain.js";
import { ConflictError, NotFoundError, Problems, ValidationError } from "../errors.js";
import { requireRole, type Viewer } from "../viewer.js";
import { checkBody, checkBraceTags, MAX_HTML, MAX_TEXT, sanitizeFragment } from "./html.js";
import { clampPage, type Page } from "./paging.js";
import { inIdOrder, likePattern } from "./search.js";
import { isUniqueViolation } from "./teams.js";
import { checkName } from "./validate.js";

export type Signature = typeof signature.$inferSelect;

export interface SignatureInput {
  name?: string;
  text?: string;
  /** null removes the HTML variant (plain text is then used for HTML mail too). */
  html?: string | null;
}

function checkSignature(input: SignatureInput, creating: boolean): void {
  const p = new Problems();
  if (creating) p.check(input.name !== undefined, "name", "is required");
  checkName(p, "name", input.name);
  checkBody(p, "text", input.text, MAX_TEXT);
  checkBody(p, "html", input.html, MAX_HTML);
  checkBraceTags(p, "text", input.text, SIGNATURE_TAGS);
  checkBraceTags(p, "html", input.html, SIGNATURE_TAGS);
  p.throwIfAny();
}

function columns(input: SignatureInput) {
  return {
    ...(input.name !== undefined ? { name: input.name.trim() } : {}),
    ...(input.text !== undefined ? { text: input.text } : {}),
    ...(input.html !== undefined ? { html: input.html === null ? null : sanitizeFragment(input.html) } : {}),
  };
}

/**
 * ADMIN and SUPERVISOR see every signature; an AGENT sees only the personal signature
 * assigned to them (SPEC §2: users may read their own).
 */
function visibleTo(viewer: Viewer) {
  return viewer.role === "AGENT" ? eq(signature.userId, viewer.userId) : undefined;
}

export async function listSignatures(
  ctx: EngineContext,
  viewer: Viewer,
  filter: { search?: string | null; includeArchived?: boolean },
  page: Page,
): Promise<Signature[]> {
  const { limit, offset } = clampPage(page);
  return ctx.db
    .select()
    .from(signature)
    .where(
      and(
        eq(signature.tenantId, viewer.tenantId),
        visibleTo(viewer),
        filter.includeArchived ? undefined : isNull(signature.archivedAt),
        filter.search ? ilike(signature.name, likePattern(filter.search)) : undefined,
      ),
    )
    .orderBy(asc(sql`lower(${signature.name})`), asc(signature.id))
    .limit(limit)
    .offset(offset);
}

export async function getSignature(ctx: EngineContext, viewer: Viewer, id: string): Promise<Signature> {
  const [row] = await ctx.db
    .select()
    .from(signature)
    .where(and(eq(signature.id, id), eq(signature.tenantId, viewer.tenantId), visibleTo(viewer)));
  if (!row) throw new NotFoundError("Signature", id);
  return row;
}

/** The user's personal signature, or null. A user may read their own; ADMIN/SUPERVISOR anyone's. */
export async function getUserSignature(
  ctx: EngineContext,
  viewer: Viewer,
  userId: string,
): Promise<Signature | null> {
  if (viewer.role === "AGENT" && userId !== viewer.userId) throw new NotFoundError("User", userId);
  const [row] = await ctx.db
    .select()
    .from(signature)
    .where(
      and(
        eq(signature.tenantId, viewer.tenantId),
        eq(signature.userId, userId),
        isNull(signature.archivedAt),
      ),
    );
  return row ?? null;
}

export async function createSignature(
  ctx: EngineContext,
  viewer: Viewer,
  input: SignatureInput,
): Promise<Signature> {
  requireRole(viewer, "ADMIN");
  checkSignature(input, true);
  const [row] = await ctx.db
    .insert(signature)
    .values({ tenantId: viewer.tenantId, name: input.name!.trim(), ...columns(input) })
    .returning();
  return row!;
}

export async function updateSignature(
  ctx: EngineContext,
  viewer: Viewer,
  id: string,
  input: SignatureInput,
): Promise<Signature> {
  requireRole(viewer, "ADMIN");
  checkSignature(input, false);
  const existing = await getSignature(ctx, viewer, id);
  const set = columns(input);
  if (Object.keys(set).length === 0) return existing;
  const [row] = await ctx.db
    .update(signature)
    .set(set)
    .where(and(eq(signature.id, id), eq(signature.tenantId, viewer.tenantId)))
    .returning();
  return row!;
}

/** Archiving also detaches it from its user, so the user can be given another one. */
export async function archiveSignature(ctx: EngineContext, viewer: Viewer, id: string): Promise<Signature> {
  requireRole(viewer, "ADMIN");
  await getSignature(ctx, viewer, id);
  const [row] = await ctx.db
    .update(signature)
    .set({ archivedAt: ctx.clock.now(), userId: null })
    .where(and(eq(signature.id, id), eq(signature.tenantId, viewer.tenantId)))
    .returning();
  return row!;
}

/** Batch lookup of the users holding signatures (DataLoader), tenant-scoped. */
export async function getSignatureHolders(
  ctx: EngineContext,
  viewer: Viewer,
  userIds: readonly string[],
): Promise<(SignatureHolder | null)[]> {
  if (userIds.length === 0) return [];
  const rows = await ctx.db
    .select()
    .from(user)
    .where(and(eq(user.tenantId, viewer.tenantId), inArray(user.id, [...userIds])));
  return inIdOrder(userIds, rows);
}

export type SignatureHolder = typeof user.$inferSelect;

/**
 * Gives a user their one personal signature (SPEC §2). The previous one is detached in
 * the same transaction — first, because `signature_user_uq` (a partial unique index on
 * user_id) would otherwise reject the second holder. A signature held by another user
 * moves to this one. signatureId null only detaches.
 */
export async function assignUserSignature(
  ctx: EngineContext,
  viewer: Viewer,
  userId: string,
  signatureId: string | null,
): Promise<{ userId: string; signature: Signature | null }> {
  requireRole(viewer, "ADMIN");
  try {
    return await ctx.db.transaction(async (tx) => {
      // Locking the user serialises assignments to one user; locking the signature keeps
      // a concurrent archive from slipping between the check and the assignment.
      const [u] = await tx
        .select({ id: user.id })
        .from(user)
        .where(and(eq(user.id, userId), eq(user.tenantId, viewer.tenantId)))
        .for("update");
      if (!u) throw new NotFoundError("User", userId);
      if (signatureId !== null) {
        const [sig] = await tx
          .select({ archivedAt: signature.archivedAt })
          .from(signature)
          .where(and(eq(signature.id, signatureId), eq(signature.tenantId, viewer.tenantId)))
          .for("update");
        if (!sig) throw new NotFoundError("Signature", signatureId);
        if (sig.archivedAt) {
          throw new ValidationError({ field: "signatureId", message: "the signature is archived" });
        }
      }
      await tx
        .update(signature)
        .set({ userId: null })
        .where(
          and(
            eq(signature.tenantId, viewer.tenantId),
            eq(signature.userId, userId),
            signatureId === null ? undefined : ne(signature.id, signatureId),
          ),
        );
      if (signatureId === null) return { userId, signature: null };
      const [row] = await tx
        .update(signature)
        .set({ userId })
        .where(and(eq(signature.id, signatureId), eq(signature.tenantId, viewer.tenantId)))
        .returning();
      return { userId, signature: row! };
    });
  } catch (err) {
    // Backstop for a race the locks do not cover (the signature moving between two users
    // at once): report a retryable conflict instead of a masked 23505.
    if (isUniqueViolation(err, "signature_user_uq")) {
      throw new ConflictError("The user's signature was changed at the same time; try again");
    }
    throw err;
  }
}
