import { eq } from "drizzle-orm";
import { tenant } from "../../db/schema/index.js";
import type { EngineContext } from "../context.js";
import { PERMISSIONS, type Permission, ROLES, type Role } from "../domain.js";
import { NotFoundError, Problems } from "../errors.js";
import { requireRole, type Viewer } from "../viewer.js";
import { checkIntRange, checkName, isValidTimeZone, textProblem } from "./validate.js";

export type TenantSettings = typeof tenant.$inferSelect;

/**
 * A partial update. For nullable settings, `null` switches the feature off (no limit,
 * timer off, keep forever, default domain) and `undefined` leaves it unchanged.
 */
export interface TenantSettingsInput {
  name?: string;
  company?: string;
  timeZone?: string;
  emailEnabled?: boolean;
  processingLimit?: number | null;
  appendTicketOnFirstReply?: boolean;
  agentsMayEditSubject?: boolean;
  activeToPausedDays?: number | null;
  pausedToClosedDays?: number | null;
  resolvedToClosedDays?: number | null;
  reopenEnabled?: boolean;
  reopenWindowDays?: number;
  retentionDays?: number | null;
  autoReplyLimitPerSender?: number;
  autoReplyLimitWindowMinutes?: number;
  messageIdDomain?: string | null;
  /** Each listed role's permissions are replaced; roles not listed keep theirs. */
  rolePermissions?: { role: Role; permissions: Permission[] }[];
}

/** RFC 1035/1123 host name: dot-separated labels of letters, digits and inner hyphens. */
const LABEL_RE = /^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$/i;
export function isHostname(value: string): boolean {
  if (value.length < 1 || value.length > 253) return false;
  const labels = value.split(".");
  // A Message-ID's right-hand side should be a real domain: at least two labels, and a
  // top-level label that is not all digits (that would be an IP address).
  return labels.length >= 2 && labels.every((l) => LABEL_RE.test(l)) && !/^\d+$/.test(labels.at(-1)!);
}

/** IANA zone names only (Area/Location, or UTC-like names): no raw offsets like "+01:00". */
export function isIanaTimeZone(value: string): boolean {
  return /^[A-Za-z][A-Za-z0-9_+-]*(?:\/[A-Za-z0-9_+-]+)*$/.test(value) && isValidTimeZone(value);
}

/**
 * What a client may send: any field may be null. For settings that cannot be off (name,
 * booleans, reopenWindowDays …) null is reported as a field problem, not ignored.
 */
export type TenantSettingsPatch = { [K in keyof TenantSettingsInput]?: TenantSettingsInput[K] | null };

function notNull(p: Problems, input: object, fields: string[]) {
  const record = input as Record<string, unknown>;
  for (const f of fields) if (f in record && record[f] === null) p.add(f, "must not be null");
}

export async function getTenantSettings(ctx: EngineContext, viewer: Viewer): Promise<TenantSettings> {
  requireRole(viewer, "ADMIN", "SUPERVISOR");
  const [row] = await ctx.db.select().from(tenant).where(eq(tenant.id, viewer.tenantId));
  if (!row) throw new NotFoundError("Tenant", viewer.tenantId);
  return row;
}

export function checkTenantSettings(input: TenantSettingsPatch, current: TenantSettings): Problems {
  const p = new Problems();
  notNull(p, input, [
    "name",
    "company",
    "timeZone",
    "emailEnabled",
    "appendTicketOnFirstReply",
    "agentsMayEditSubject",
    "reopenEnabled",
    "reopenWindowDays",
    "autoReplyLimitPerSender",
    "autoReplyLimitWindowMinutes",
    "rolePermissions",
  ]);
  if (input.name !== undefined && input.name !== null) checkName(p, "name", input.name);
  if (input.company !== undefined && input.company !== null) {
    p.check(input.company.length <= 200, "company", "at most 200 characters");
    const problem = textProblem(input.company);
    if (problem !== null) p.add("company", problem);
  }
  if (input.timeZone !== undefined && input.timeZone !== null)
    p.check(isIanaTimeZone(input.timeZone), "timeZone", "must be an IANA time zone such as Europe/Berlin");
  checkIntRange(p, "processingLimit", input.processingLimit, 1, 1_000_000);
  checkIntRange(p, "activeToPausedDays", input.activeToPausedDays, 1, 1000);
  checkIntRange(p, "pausedToClosedDays", input.pausedToClosedDays, 1, 1000);
  checkIntRange(p, "resolvedToClosedDays", input.resolvedToClosedDays, 1, 1000);
  checkIntRange(p, "reopenWindowDays", input.reopenWindowDays, 1, 1000);
  checkIntRange(p, "retentionDays", input.retentionDays, 1, 3650);
  checkIntRange(p, "autoReplyLimitPerSender", input.autoReplyLimitPerSender, 1, 1000);
  checkIntRange(p, "autoReplyLimitWindowMinutes", input.autoReplyLimitWindowMinutes, 1, 10_080);
  if (input.messageIdDomain !== undefined && input.messageIdDomain !== null)
    p.check(
      isHostname(input.messageIdDomain),
      "messageIdDomain",
      "must be a host name such as mail.example.com",
    );

  // SPEC §6: appending the ticket number on first reply and letting agents edit the
  // subject exclude each other (an edited subject could drop the number). The field the
  // caller is switching on is the one named.
  const append = input.appendTicketOnFirstReply ?? current.appendTicketOnFirstReply;
  const edit = input.agentsMayEditSubject ?? current.agentsMayEditSubject;
  if (append && edit) {
    const field = input.agentsMayEditSubject ? "agentsMayEditSubject" : "appendTicketOnFirstReply";
    const other = field === "agentsMayEditSubject" ? "appendTicketOnFirstReply" : "agentsMayEditSubject";
    p.add(field, `cannot be on together with ${other}`);
  }

  if (input.rolePermissions) {
    const roles = new Set<Role>();
    input.rolePermissions.forEach((rp, i) => {
      if (!ROLES.includes(rp.role)) p.add(`rolePermissions[${i}].role`, "unknown role");
      if (roles.has(rp.role)) p.add(`rolePermissions[${i}].role`, "is listed twice");
      roles.add(rp.role);
      rp.permissions.forEach((perm, j) => {
        if (!PERMISSIONS.includes(perm))
          p.add(`rolePermissions[${i}].permissions[${j}]`, "unknown permission");
      });
      if (rp.role === "ADMIN" && PERMISSIONS.some((perm) => !rp.permissions.includes(perm))) {
        p.add(`rolePermissions[${i}].permissions`, "ADMIN always keeps every permission");
      }
    });
  }
  return p;
}

/**
 * Changes apply to the next request: every request re-reads the tenant's permissions.
 *
 * Checked and written under the tenant row's lock. Until 2026-11-23 the settings were read
 * outside any lock and the whole permission map written back whatever was sent: with two
 * admins saving at once, one's revocation of an agent permission came back when the other
 * changed only the reopen window (5 of 20 rounds in a probe), and the two options that
 * exclude each other ended up both on (19 of 20).
 */
export async function updateTenantSettings(
  ctx: EngineContext,
  viewer: Viewer,
  patch: TenantSettingsPatch,
): Promise<TenantSettings> {
  requireRole(viewer, "ADMIN");
  return ctx.db.transaction(async (tx) => {
    // NO KEY UPDATE, as the UPDATE takes: ingest's inserts (which key-share the tenant row) do not wait.
    const [current] = await tx
      .select()
      .from(tenant)
      .where(eq(tenant.id, viewer.tenantId))
      .for("no key update");
    if (!current) throw new NotFoundError("Tenant", viewer.tenantId);
    checkTenantSettings(patch, current).throwIfAny();
    // Checked above: only the nullable settings can still be null here.
    const input = patch as TenantSettingsInput;
    let rolePermissions: TenantSettings["rolePermissions"] | undefined;
    if (input.rolePermissions) {
      // The roles not listed keep what they have now, as read under the lock.
      rolePermissions = { ...current.rolePermissions };
      for (const rp of input.rolePermissions) {
        // Stored in the canonical order so reads are stable whatever order the client sent.
        rolePermissions[rp.role] = PERMISSIONS.filter((perm) => rp.permissions.includes(perm));
      }
    }
    // Settings copied as given (undefined = unchanged, drizzle skips undefined values).
    const plain = {
      timeZone: input.timeZone,
      emailEnabled: input.emailEnabled,
      processingLimit: input.processingLimit,
      appendTicketOnFirstReply: input.appendTicketOnFirstReply,
      agentsMayEditSubject: input.agentsMayEditSubject,
      activeToPausedDays: input.activeToPausedDays,
      pausedToClosedDays: input.pausedToClosedDays,
      resolvedToClosedDays: input.resolvedToClosedDays,
      reopenEnabled: input.reopenEnabled,
      reopenWindowDays: input.reopenWindowDays,
      retentionDays: input.retentionDays,
      autoReplyLimitPerSender: input.autoReplyLimitPerSender,
      autoReplyLimitWindowMinutes: input.autoReplyLimitWindowMinutes,
    } satisfies Partial<typeof tenant.$inferInsert>;
    const [row] = await tx
      .update(tenant)
      .set({
        ...plain,
        name: input.name?.trim(),
        company: input.company?.trim(),
        messageIdDomain:
          input.messageIdDomain === undefined ? undefined : (input.messageIdDomain?.toLowerCase() ?? null),
        rolePermissions,
        updatedAt: ctx.clock.now(),
      })
      .where(eq(tenant.id, viewer.tenantId))
      .returning();
    return row!;
  });
}
