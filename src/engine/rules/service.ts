import { and, asc, eq, inArray, isNull, sql } from "drizzle-orm";
import type { DbOrTx } from "../../db/client.js";
import {
  autoReplyTemplate,
  businessCalendar,
  contact,
  emailAddress,
  queue,
  rule,
  skill,
} from "../../db/schema/index.js";
import { checkIntRange, textProblem } from "../config/validate.js";
import type { EngineContext } from "../context.js";
import type { BusinessCalendar } from "../domain.js";
import { NotFoundError, Problems, ValidationError } from "../errors.js";
import { senderContact } from "../ingest/contact.js";
import type { ParsedMail } from "../ingest/parsed-mail.js";
import { validateCalendar } from "../time/calendar.js";
import { requireRole, type Viewer } from "../viewer.js";
import { type CompiledRuleSet, compileRules, RULE_LIMITS } from "./compile.js";
import { evaluateRules } from "./evaluate.js";
import {
  calendarIdsOf,
  type StoredAction,
  type StoredCondition,
  type StoredRule,
  toEngineRules,
} from "./stored.js";
import type { RuleEvaluation, RuleInput, RuleMatchMode } from "./types.js";

/**
 * Rule storage and evaluation around the pure compiler/evaluator (SPEC §7): CRUD with
 * the compiler's field-named validation plus reference checks (queues, skills,
 * calendars, templates of this tenant), the rule list of an address (its own rules, then
 * the tenant's), and the evaluation ingest and the `testRules` dry run share.
 */

export type RuleRow = typeof rule.$inferSelect;

const UUID_RE = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

export interface RuleFields {
  name: string;
  position: number;
  enabled: boolean;
  match: RuleMatchMode;
  conditions: StoredCondition[];
  actions: StoredAction[];
}

const toStored = (r: RuleRow): StoredRule => ({
  id: r.id,
  name: r.name,
  position: r.position,
  enabled: r.enabled,
  match: r.match,
  conditions: r.conditions,
  actions: r.actions,
});

async function calendarsById(
  db: DbOrTx,
  tenantId: string,
  ids: string[],
): Promise<Map<string, BusinessCalendar>> {
  const out = new Map<string, BusinessCalendar>();
  if (ids.length === 0) return out;
  const rows = await db
    .select()
    .from(businessCalendar)
    .where(and(eq(businessCalendar.tenantId, tenantId), inArray(businessCalendar.id, ids)));
  for (const r of rows) {
    const cal = { timeZone: r.timeZone, intervals: r.intervals, holidays: r.holidays };
    // A calendar stored before today's validation rules must not stop ingest: it counts
    // as missing (never open), like a deleted one.
    if (validateCalendar(cal).length === 0) out.set(r.id, cal);
  }
  return out;
}

/**
 * The rule rows that run for mail to an address, in evaluation order: the address's by
 * position, then the tenant's (ingest reads the same order in its opening statement).
 */
async function ruleRowsForAddress(db: DbOrTx, tenantId: string, addressId: string): Promise<RuleRow[]> {
  return db
    .select()
    .from(rule)
    .where(
      and(eq(rule.tenantId, tenantId), sql`(${rule.addressId} = ${addressId} OR ${rule.addressId} IS NULL)`),
    )
    .orderBy(sql`${rule.addressId} IS NULL`, asc(rule.position), asc(rule.createdAt));
}

/** One list: renumbered so the tenant's rules follow the address's whatever their positions. */
const storedInOrder = (rows: RuleRow[]): StoredRule[] =>
  rows.map((r, i) => ({ ...toStored(r), position: i }));

/**
 * Compiles rule rows already in evaluation order (the address's, then the tenant's, each
 * by position and creation; ingest reads them in its opening statement); null for none.
 */
export async function compileRuleRows(
  db: DbOrTx,
  tenantId: string,
  rows: RuleRow[],
): Promise<CompiledRuleSet | null> {
  const stored = storedInOrder(rows);
  if (stored.length === 0) return null;
  const calendars = await calendarsById(db, tenantId, calendarIdsOf(stored));
  const compiled = compileRules(toEngineRules(stored, calendars));
  if (!compiled.ok) throw new Error(`stored rules do not compile: ${compiled.errors[0]?.message}`);
  return compiled.ruleSet;
}

/** What rules see of a parsed mail, with the *received* time (SPEC §3: a backlog must not change routing). */
export function ruleInputOf(
  mail: ParsedMail,
  extra: {
    spam: boolean;
    language: string | null;
    contactAttributes: Record<string, string>;
    receivedAt: Date;
  },
): RuleInput {
  const headers: Record<string, string[]> = {};
  for (const [k, v] of Object.entries(mail.headers)) if (v) headers[k.toLowerCase()] = v;
  const contentLanguage = headers["content-language"]?.[0]?.split(",")[0]?.trim() || null;
  return {
    from: mail.from?.address ?? "",
    to: mail.to.map((a) => a.address),
    cc: mail.cc.map((a) => a.address),
    subject: mail.subject,
    bodyText: mail.text,
    headers,
    spam: extra.spam,
    language: extra.language ?? contentLanguage,
    contactAttributes: extra.contactAttributes,
    receivedAt: extra.receivedAt,
  };
}

export async function listRules(
  ctx: EngineContext,
  viewer: Viewer,
  addressId: string | null,
): Promise<RuleRow[]> {
  requireRole(viewer, "ADMIN", "SUPERVISOR");
  if (addressId) await requireAddress(ctx.db, viewer.tenantId, addressId);
  return ctx.db
    .select()
    .from(rule)
    .where(
      and(
        eq(rule.tenantId, viewer.tenantId),
        addressId ? eq(rule.addressId, addressId) : isNull(rule.addressId),
      ),
    )
    .orderBy(asc(rule.position), asc(rule.createdAt));
}

export async function getRule(ctx: EngineContext, viewer: Viewer, id: string): Promise<RuleRow> {
  requireRole(viewer, "ADMIN", "SUPERVISOR");
  const [row] = await ctx.db
    .select()
    .from(rule)
    .where(and(eq(rule.id, id), eq(rule.tenantId, viewer.tenantId)));
  if (!row) throw new NotFoundError("Rule", id);
  return row;
}

async function requireAddress(db: DbOrTx, tenantId: string, addressId: string): Promise<void> {
  const [a] = await db
    .select({ id: emailAddress.id })
    .from(emailAddress)
    .where(and(eq(emailAddress.id, addressId), eq(emailAddress.tenantId, tenantId)));
  if (!a) throw new NotFoundError("EmailAddress", addressId);
}

/**
 * Checks on what the caller sent, beyond the compiler's: the position's range, and text
 * that is stored in jsonb (no NUL, no unpaired surrogate) and is one line (no control
 * characters). Not in `compileRules`, which also compiles stored rules at ingest: a rule
 * saved before these checks must keep running, and stay editable in its other fields.
 */
function checkSent(p: Problems, sent: Partial<RuleFields>): void {
  checkIntRange(p, "position", sent.position, RULE_LIMITS.positionMin, RULE_LIMITS.positionMax);
  const text = (field: string, value: unknown) => {
    const problem = typeof value === "string" ? textProblem(value) : null;
    if (problem !== null) p.add(field, problem);
  };
  text("name", sent.name);
  for (const [i, c] of (sent.conditions ?? []).entries()) {
    if ("key" in c) text(`conditions[${i}].key`, c.key);
    if ("value" in c) text(`conditions[${i}].value`, c.value);
  }
  for (const [i, a] of (sent.actions ?? []).entries()) {
    if (a.type !== "ADD_TAGS" || !Array.isArray(a.tags)) continue;
    for (const [j, tag] of a.tags.entries()) text(`actions[${i}].tags[${j}]`, tag);
  }
}

/**
 * Every problem with one rule: the compiler's (paths without the `rules[0].` prefix, so
 * `conditions[1].value`), `checkSent`'s on the fields sent, and references to objects
 * that are not this tenant's.
 */
async function validateRule(
  db: DbOrTx,
  tenantId: string,
  fields: RuleFields,
  sent: Partial<RuleFields>,
): Promise<void> {
  const p = new Problems();
  checkSent(p, sent);
  const calendars = await calendarsById(
    db,
    tenantId,
    calendarIdsOf([{ id: "x", ...fields }]).filter((i) => UUID_RE.test(i)),
  );
  fields.conditions.forEach((c, i) => {
    if (c.field === "receivedTime" && !calendars.has(c.calendarId ?? ""))
      p.add(`conditions[${i}].calendarId`, "no such business-hours calendar");
  });
  const compiled = compileRules(toEngineRules([{ id: "x", ...fields }], calendars));
  if (!compiled.ok)
    for (const e of compiled.errors) p.add(e.field.replace(/^rules\[0\]\.?/, "") || "rule", e.message);
  const exists = async (table: typeof queue | typeof skill | typeof autoReplyTemplate, ids: string[]) => {
    // Not-a-UUID is simply "no such object" (and would be a Postgres cast error).
    ids = ids.filter((i) => typeof i === "string" && UUID_RE.test(i));
    if (ids.length === 0) return new Set<string>();
    const rows = await db
      .select({ id: table.id })
      .from(table)
      .where(and(eq(table.tenantId, tenantId), inArray(table.id, ids)));
    return new Set(rows.map((r) => r.id));
  };
  for (const [i, a] of fields.actions.entries()) {
    if (a.type === "SET_QUEUE" && !(await exists(queue, [a.queueId])).has(a.queueId))
      p.add(`actions[${i}].queueId`, "no such queue");
    if (a.type === "SEND_AUTO_REPLY" && !(await exists(autoReplyTemplate, [a.templateId])).has(a.templateId))
      p.add(`actions[${i}].templateId`, "no such auto-reply template");
    if (a.type === "SET_SKILLS" || a.type === "ADD_SKILLS") {
      const found = await exists(skill, a.skillIds);
      if (a.skillIds.some((s) => !found.has(s)))
        p.add(`actions[${i}].skillIds`, "names a skill that does not exist");
    }
  }
  p.throwIfAny();
}

export async function createRule(
  ctx: EngineContext,
  viewer: Viewer,
  input: { addressId: string | null } & Omit<RuleFields, "position"> & { position?: number | null },
): Promise<RuleRow> {
  requireRole(viewer, "ADMIN");
  if (input.addressId) await requireAddress(ctx.db, viewer.tenantId, input.addressId);
  return ctx.db.transaction(async (tx) => {
    // Serialise position allocation per tenant: two creates must not both take "last + 1".
    await tx.execute(sql`SELECT pg_advisory_xact_lock(hashtext(${`rules:${viewer.tenantId}`}))`);
    let position = input.position ?? null;
    if (position === null) {
      const [m] = await tx
        .select({ max: sql<number | null>`max(${rule.position})` })
        .from(rule)
        .where(
          and(
            eq(rule.tenantId, viewer.tenantId),
            input.addressId ? eq(rule.addressId, input.addressId) : isNull(rule.addressId),
          ),
        );
      // Clamped: a list may still hold a position from before the bound (up to int4's
      // maximum, where "last + 1" overflowed, 22003); ties are ordered by creation.
      position = Math.min(Math.max((m?.max ?? -1) + 1, RULE_LIMITS.positionMin), RULE_LIMITS.positionMax);
    }
    const fields: RuleFields = { ...input, position, name: input.name.trim() };
    await validateRule(tx, viewer.tenantId, fields, { ...input, position: input.position ?? undefined });
    const [row] = await tx
      .insert(rule)
      .values({ tenantId: viewer.tenantId, addressId: input.addressId, ...fields })
      .returning();
    return row!;
  });
}

export async function updateRule(
  ctx: EngineContext,
  viewer: Viewer,
  id: string,
  patch: Partial<RuleFields>,
): Promise<RuleRow> {
  requireRole(viewer, "ADMIN");
  return ctx.db.transaction(async (tx) => {
    const [row] = await tx
      .select()
      .from(rule)
      .where(and(eq(rule.id, id), eq(rule.tenantId, viewer.tenantId)))
      .for("update");
    if (!row) throw new NotFoundError("Rule", id);
    const defined = Object.fromEntries(
      Object.entries(patch).filter(([, v]) => v !== undefined && v !== null),
    );
    const fields: RuleFields = { ...toStored(row), ...defined };
    fields.name = fields.name.trim();
    await validateRule(tx, viewer.tenantId, fields, defined);
    const [updated] = await tx.update(rule).set(fields).where(eq(rule.id, id)).returning();
    return updated!;
  });
}

export async function deleteRule(ctx: EngineContext, viewer: Viewer, id: string): Promise<string> {
  requireRole(viewer, "ADMIN");
  const rows = await ctx.db
    .delete(rule)
    .where(and(eq(rule.id, id), eq(rule.tenantId, viewer.tenantId)))
    .returning({ id: rule.id });
  if (rows.length === 0) throw new NotFoundError("Rule", id);
  return id;
}

export interface RuleTestResult {
  evaluation: RuleEvaluation;
  rules: StoredRule[];
  receivedAt: Date;
}

/**
 * The dry run (SPEC §7 `testRules`): parses a raw message and evaluates the address's
 * rules as ingest would at `receivedAt` (default: now), storing nothing. ADMIN only.
 */
export async function testRules(
  ctx: EngineContext,
  viewer: Viewer,
  input: { addressId: string; raw: Buffer; receivedAt?: Date | null; spam?: boolean | null },
): Promise<RuleTestResult> {
  requireRole(viewer, "ADMIN");
  await requireAddress(ctx.db, viewer.tenantId, input.addressId);
  new Problems().check(input.raw.length > 0, "raw", "must not be empty").throwIfAny();
  const parsed = await ctx.mime.parse(input.raw);
  if (!parsed.ok) throw new ValidationError({ field: "raw", message: `cannot be read: ${parsed.reason}` });
  const [address] = await ctx.db.select().from(emailAddress).where(eq(emailAddress.id, input.addressId));
  const sender = senderContact(parsed.mail.from);
  const [c] = sender
    ? await ctx.db
        .select({ attributes: contact.attributes })
        .from(contact)
        .where(and(eq(contact.tenantId, viewer.tenantId), eq(contact.email, sender.email)))
    : [];
  const receivedAt = input.receivedAt ?? ctx.clock.now();
  const rows = await ruleRowsForAddress(ctx.db, viewer.tenantId, input.addressId);
  const stored = storedInOrder(rows);
  const compiled = await compileRuleRows(ctx.db, viewer.tenantId, rows);
  const ruleInput = ruleInputOf(parsed.mail, {
    spam: input.spam ?? false,
    language: address?.language ?? null,
    contactAttributes: c?.attributes ?? {},
    receivedAt,
  });
  const evaluation = compiled
    ? evaluateRules(compiled, ruleInput)
    : { matched: [], trace: [], outcome: { skillIds: [], tags: [], dropped: false } };
  return { evaluation, rules: stored, receivedAt };
}
