import { and, asc, eq, ilike, inArray, isNull, or, sql } from "drizzle-orm";
import type { DbOrTx, Tx } from "../../db/client.js";
import {
  brandedTemplate,
  emailAddress,
  mailAccount,
  queue,
  skill,
  slaPolicy,
} from "../../db/schema/index.js";
import type { EngineContext } from "../context.js";
import type {
  HistoryPolicy,
  SignaturePolicy,
  SpamRouting,
  ThreadingMode,
  TicketDelimiter,
  TicketPlacement,
} from "../domain.js";
import { ConflictError, NotFoundError, Problems, ValidationError } from "../errors.js";
import { requireRole, type Viewer } from "../viewer.js";
import { clampPage, type Page } from "./paging.js";
import { checkRefs } from "./refs.js";
import { likePattern } from "./search.js";
import { isUniqueViolation } from "./teams.js";
import { checkEmail, checkHeaderText, checkIntRange, checkName, hasChanges } from "./validate.js";

export type EmailAddress = typeof emailAddress.$inferSelect;

/** Fields of an email address (point of contact). On update, `undefined` = unchanged. */
export interface EmailAddressInput {
  address?: string;
  name?: string;
  displayName?: string;
  fromAddress?: string | null;
  replyTo?: string | null;
  bcc?: string[];
  accountId?: string | null;
  queueId?: string | null;
  requiredSkillIds?: string[];
  language?: string | null;
  priority?: number | null;
  spamRouting?: SpamRouting;
  spamQueueId?: string | null;
  outboundAllowed?: boolean;
  forceTls?: boolean;
  ticketPlacement?: TicketPlacement;
  ticketDelimiter?: TicketDelimiter;
  threadingMode?: ThreadingMode;
  signaturePolicy?: SignaturePolicy;
  historyPolicy?: HistoryPolicy;
  brandedTemplateId?: string | null;
  slaPolicyId?: string | null;
}

/** SPEC §2: up to 5 hidden BCC recipients per address. */
export const MAX_BCC = 5;
export const PRIORITY_MIN = 0;
export const PRIORITY_MAX = 1000;
/** BCP 47 language tag, loosely: "en", "de-CH", "zh-Hant-TW". */
const LANGUAGE_RE = /^[A-Za-z]{2,3}(?:-[A-Za-z0-9]{2,8})*$/;

function checkShape(input: EmailAddressInput, current: EmailAddress | null): Problems {
  const p = new Problems();
  if (!current || input.address !== undefined) checkEmail(p, "address", input.address?.trim());
  if (!current && input.name === undefined) p.add("name", "is required");
  checkName(p, "name", input.name);
  // Display name, From, Reply-To and BCC all become mail headers (SPEC §10: no header injection).
  checkHeaderText(p, "displayName", input.displayName, 200);
  checkEmail(p, "fromAddress", input.fromAddress, false);
  checkEmail(p, "replyTo", input.replyTo, false);
  if (input.bcc !== undefined) {
    p.check(input.bcc.length <= MAX_BCC, "bcc", `at most ${MAX_BCC} addresses`);
    for (const [i, b] of input.bcc.entries()) checkEmail(p, `bcc[${i}]`, b);
    const lower = input.bcc.map((b) => b.toLowerCase());
    p.check(new Set(lower).size === lower.length, "bcc", "must not repeat an address");
  }
  if (input.language !== undefined && input.language !== null)
    p.check(
      LANGUAGE_RE.test(input.language) && input.language.length <= 35,
      "language",
      "must be a language tag such as en or de-CH",
    );
  checkIntRange(p, "priority", input.priority, PRIORITY_MIN, PRIORITY_MAX);
  const spamRouting = input.spamRouting ?? current?.spamRouting ?? "TAG";
  const spamQueueId = input.spamQueueId !== undefined ? input.spamQueueId : (current?.spamQueueId ?? null);
  if (spamRouting === "QUEUE" && !spamQueueId)
    p.add("spamQueueId", "is required when spam is routed to a queue");
  // "Ticket number only" threading reads the number from the subject; a hidden number is in
  // no subject, so every reply would open a new conversation (accepted until 2026-11-23,
  // config probe). Checked when either is sent, so other edits of an old row still pass.
  if (input.threadingMode !== undefined || input.ticketPlacement !== undefined) {
    const mode = input.threadingMode ?? current?.threadingMode;
    const placement = input.ticketPlacement ?? current?.ticketPlacement;
    if (mode === "TICKET_ONLY" && placement === "HIDDEN") {
      const field = input.threadingMode === "TICKET_ONLY" ? "threadingMode" : "ticketPlacement";
      p.add(
        field,
        field === "threadingMode"
          ? "TICKET_ONLY needs the ticket number in the subject (ticketPlacement START or END)"
          : "HIDDEN leaves nothing to thread by under threadingMode TICKET_ONLY",
      );
    }
  }
  return p;
}

async function checkReferences(
  tx: Tx,
  viewer: Viewer,
  input: EmailAddressInput,
  current: EmailAddress | null,
  p: Problems,
): Promise<void> {
  await checkRefs(tx, viewer.tenantId, p, [
    { field: "accountId", table: mailAccount, id: input.accountId, what: "mail account" },
    { field: "queueId", table: queue, id: input.queueId, what: "queue" },
    { field: "spamQueueId", table: queue, id: input.spamQueueId, what: "queue" },
    {
      field: "brandedTemplateId",
      table: brandedTemplate,
      id: input.brandedTemplateId,
      what: "branded template",
    },
    { field: "slaPolicyId", table: slaPolicy, id: input.slaPolicyId, what: "SLA policy" },
    ...(input.requiredSkillIds ?? []).map((id, i) => ({
      field: `requiredSkillIds[${i}]`,
      table: skill,
      id,
      what: "skill",
    })),
  ]);
  // Moving a queue's default address onto an outbound-only account would break replies.
  if (current && input.accountId && input.accountId !== current.accountId) {
    const [acc] = await tx
      .select({ kind: mailAccount.kind })
      .from(mailAccount)
      .where(and(eq(mailAccount.id, input.accountId), eq(mailAccount.tenantId, viewer.tenantId)));
    if (acc?.kind === "OUTBOUND_ONLY") {
      const used = await queuesDefaultingTo(tx, viewer.tenantId, current.id);
      if (used.length > 0)
        p.add(
          "accountId",
          `is outbound-only, and this address is the default address of queue ${used.join(", ")}`,
        );
    }
  }
}

async function queuesDefaultingTo(db: DbOrTx, tenantId: string, addressId: string): Promise<string[]> {
  const rows = await db
    .select({ name: queue.name })
    .from(queue)
    .where(and(eq(queue.tenantId, tenantId), eq(queue.defaultAddressId, addressId), isNull(queue.archivedAt)))
    .orderBy(asc(queue.name));
  return rows.map((r) => JSON.stringify(r.name));
}

function columns(input: EmailAddressInput) {
  const opt = (v: string | null | undefined) =>
    v === undefined ? undefined : v === null || v.trim() === "" ? null : v.trim();
  return {
    address: input.address?.trim(),
    name: input.name?.trim(),
    displayName: input.displayName?.trim(),
    fromAddress: opt(input.fromAddress),
    replyTo: opt(input.replyTo),
    bcc: input.bcc?.map((b) => b.trim()),
    accountId: input.accountId,
    queueId: input.queueId,
    requiredSkillIds: input.requiredSkillIds ? [...new Set(input.requiredSkillIds)] : undefined,
    language: opt(input.language),
    priority: input.priority,
    spamRouting: input.spamRouting,
    spamQueueId: input.spamQueueId,
    outboundAllowed: input.outboundAllowed,
    forceTls: input.forceTls,
    ticketPlacement: input.ticketPlacement,
    ticketDelimiter: input.ticketDelimiter,
    threadingMode: input.threadingMode,
    signaturePolicy: input.signaturePolicy,
    historyPolicy: input.historyPolicy,
    brandedTemplateId: input.brandedTemplateId,
    slaPolicyId: input.slaPolicyId,
  };
}

/** 23505 on the global lower(address) index: the address is taken, possibly by another tenant. */
function uniqueAddress(err: unknown): never {
  if (isUniqueViolation(err, "email_address_address_uq"))
    throw new ValidationError({ field: "address", message: "this address is already in use" });
  throw err;
}

/** Addresses are readable by every user of the tenant: agents choose From addresses from them. */
export async function listEmailAddresses(
  ctx: EngineContext,
  viewer: Viewer,
  filter: { search?: string | null; includeArchived?: boolean },
  page: Page,
): Promise<EmailAddress[]> {
  const { limit, offset } = clampPage(page);
  const like = filter.search ? likePattern(filter.search) : null;
  return ctx.db
    .select()
    .from(emailAddress)
    .where(
      and(
        eq(emailAddress.tenantId, viewer.tenantId),
        filter.includeArchived ? undefined : isNull(emailAddress.archivedAt),
        like ? or(ilike(emailAddress.name, like), ilike(emailAddress.address, like)) : undefined,
      ),
    )
    .orderBy(asc(sql`lower(${emailAddress.address})`), asc(emailAddress.id))
    .limit(limit)
    .offset(offset);
}

export async function getEmailAddress(ctx: EngineContext, viewer: Viewer, id: string): Promise<EmailAddress> {
  const [row] = await ctx.db
    .select()
    .from(emailAddress)
    .where(and(eq(emailAddress.id, id), eq(emailAddress.tenantId, viewer.tenantId)));
  if (!row) throw new NotFoundError("EmailAddress", id);
  return row;
}

/** Batch load for DataLoaders: tenant-scoped, in the order of `ids` (null where missing). */
export async function loadEmailAddresses(
  ctx: EngineContext,
  tenantId: string,
  ids: readonly string[],
): Promise<(EmailAddress | null)[]> {
  if (ids.length === 0) return [];
  const rows = await ctx.db
    .select()
    .from(emailAddress)
    .where(and(eq(emailAddress.tenantId, tenantId), inArray(emailAddress.id, [...ids])));
  const byId = new Map(rows.map((r) => [r.id, r]));
  return ids.map((id) => byId.get(id) ?? null);
}

export async function createEmailAddress(
  ctx: EngineContext,
  viewer: Viewer,
  input: EmailAddressInput,
): Promise<EmailAddress> {
  requireRole(viewer, "ADMIN");
  const p = checkShape(input, null);
  try {
    return await ctx.db.transaction(async (tx) => {
      await checkReferences(tx, viewer, input, null, p);
      p.throwIfAny();
      const values = columns(input);
      const [row] = await tx
        .insert(emailAddress)
        .values({ ...values, tenantId: viewer.tenantId, address: values.address!, name: values.name! })
        .returning();
      return row!;
    });
  } catch (err) {
    return uniqueAddress(err);
  }
}

export async function updateEmailAddress(
  ctx: EngineContext,
  viewer: Viewer,
  id: string,
  input: EmailAddressInput,
): Promise<EmailAddress> {
  requireRole(viewer, "ADMIN");
  try {
    return await ctx.db.transaction(async (tx) => {
      const [current] = await tx
        .select()
        .from(emailAddress)
        .where(and(eq(emailAddress.id, id), eq(emailAddress.tenantId, viewer.tenantId)))
        .for("update");
      if (!current) throw new NotFoundError("EmailAddress", id);
      // An archived address receives and sends nothing; edits to it were accepted and did
      // nothing (config probe, session 17). Its address is free to create again.
      if (current.archivedAt) {
        throw new ConflictError("this address is archived: create it again to use it", "ARCHIVED");
      }
      const p = checkShape(input, current);
      await checkReferences(tx, viewer, input, current, p);
      p.throwIfAny();
      const values = columns(input);
      if (!hasChanges(values)) return current;
      const [row] = await tx
        .update(emailAddress)
        .set(values)
        .where(and(eq(emailAddress.id, id), eq(emailAddress.tenantId, viewer.tenantId)))
        .returning();
      return row!;
    });
  } catch (err) {
    return uniqueAddress(err);
  }
}

/**
 * Archived, not deleted: conversations keep their address. Refused while an active queue
 * sends from it by default — the queue must pick another default first.
 */
export async function archiveEmailAddress(
  ctx: EngineContext,
  viewer: Viewer,
  id: string,
): Promise<EmailAddress> {
  requireRole(viewer, "ADMIN");
  return ctx.db.transaction(async (tx) => {
    const [current] = await tx
      .select()
      .from(emailAddress)
      .where(and(eq(emailAddress.id, id), eq(emailAddress.tenantId, viewer.tenantId)))
      .for("update");
    if (!current) throw new NotFoundError("EmailAddress", id);
    const used = await queuesDefaultingTo(tx, viewer.tenantId, id);
    if (used.length > 0)
      throw new ConflictError(`This address is the default address of queue ${used.join(", ")}`);
    const [row] = await tx
      .update(emailAddress)
      .set({ archivedAt: ctx.clock.now() })
      .where(and(eq(emailAddress.id, id), eq(emailAddress.tenantId, viewer.tenantId)))
      .returning();
    return row!;
  });
}
