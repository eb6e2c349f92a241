import { and, asc, eq, ilike, isNull, sql } from "drizzle-orm";
import { autoReplyTemplate, brandedTemplate, cannedResponse } from "../../db/schema/index.js";
import type { EngineContext } from "../context.js";
import { AUTO_REPLY_TAGS } from "../domain.js";
import { NotFoundError, Problems } from "../errors.js";
import { requireRole, type Viewer } from "../viewer.js";
import {
  checkAtTags,
  checkBody,
  MAX_HTML,
  MAX_SUBJECT,
  MAX_TEXT,
  sanitizeDocument,
  sanitizeFragment,
} from "./html.js";
import { clampPage, type Page } from "./paging.js";
import { likePattern } from "./search.js";
import { checkName } from "./validate.js";

/**
 * Tenant content objects (SPEC §2, §9): branded templates, canned responses and
 * auto-reply templates. All are written by ADMIN only and readable by every user of the
 * tenant: agents insert canned responses, and previews show templates.
 */

export type BrandedTemplate = typeof brandedTemplate.$inferSelect;
export type CannedResponse = typeof cannedResponse.$inferSelect;
export type AutoReplyTemplate = typeof autoReplyTemplate.$inferSelect;

export interface ListFilter {
  search?: string | null;
  includeArchived?: boolean;
}

function checkSubject(p: Problems, subject: string | null | undefined): void {
  if (subject === null || subject === undefined) return;
  p.check(subject.length <= MAX_SUBJECT, "subject", `at most ${MAX_SUBJECT} characters`);
  // The subject becomes a mail header: CR/LF would inject headers.
  p.check(!/[\r\n]/.test(subject), "subject", "must be a single line");
}

/** Called after validation, so an oversized body never reaches the sanitiser. */
const optionalHtml = (html: string | null | undefined, clean: (h: string) => string) =>
  html === undefined ? {} : { html: html === null ? null : clean(html) };

// ---- Branded templates ----------------------------------------------------------------

export interface BrandedTemplateInput {
  name?: string;
  html?: string;
}

export const CONTENT_PLACEHOLDER = "{{content}}";

/** Sanitises, then demands exactly one `{{content}}` in what will be stored. */
function prepareBranded(input: BrandedTemplateInput, creating: boolean) {
  const p = new Problems();
  if (creating) p.check(input.name !== undefined, "name", "is required");
  if (creating) p.check(input.html !== undefined, "html", "is required");
  checkName(p, "name", input.name);
  checkBody(p, "html", input.html, MAX_HTML);
  let html: string | undefined;
  if (input.html !== undefined && input.html.length <= MAX_HTML) {
    html = sanitizeDocument(input.html);
    const count = html.split(CONTENT_PLACEHOLDER).length - 1;
    p.check(
      count === 1,
      "html",
      `must contain exactly one ${CONTENT_PLACEHOLDER} placeholder (found ${count})`,
    );
  }
  p.throwIfAny();
  return {
    ...(input.name !== undefined ? { name: input.name.trim() } : {}),
    ...(html !== undefined ? { html } : {}),
  };
}

export async function listBrandedTemplates(
  ctx: EngineContext,
  viewer: Viewer,
  filter: ListFilter,
  page: Page,
): Promise<BrandedTemplate[]> {
  const { limit, offset } = clampPage(page);
  return ctx.db
    .select()
    .from(brandedTemplate)
    .where(
      and(
        eq(brandedTemplate.tenantId, viewer.tenantId),
        filter.includeArchived ? undefined : isNull(brandedTemplate.archivedAt),
        filter.search ? ilike(brandedTemplate.name, likePattern(filter.search)) : undefined,
      ),
    )
    .orderBy(asc(sql`lower(${brandedTemplate.name})`), asc(brandedTemplate.id))
    .limit(limit)
    .offset(offset);
}

export async function getBrandedTemplate(
  ctx: EngineContext,
  viewer: Viewer,
  id: string,
): Promise<BrandedTemplate> {
  const [row] = await ctx.db
    .select()
    .from(brandedTemplate)
    .where(and(eq(brandedTemplate.id, id), eq(brandedTemplate.tenantId, viewer.tenantId)));
  if (!row) throw new NotFoundError("BrandedTemplate", id);
  return row;
}

export async function createBrandedTemplate(
  ctx: EngineContext,
  viewer: Viewer,
  input: BrandedTemplateInput,
): Promise<BrandedTemplate> {
  requireRole(viewer, "ADMIN");
  const cols = prepareBranded(input, true);
  const [row] = await ctx.db
    .insert(brandedTemplate)
    .values({ tenantId: viewer.tenantId, name: cols.name!, html: cols.html! })
    .returning();
  return row!;
}

export async function updateBrandedTemplate(
  ctx: EngineContext,
  viewer: Viewer,
  id: string,
  input: BrandedTemplateInput,
): Promise<BrandedTemplate> {
  requireRole(viewer, "ADMIN");
  const cols = prepareBranded(input, false);
  const existing = await getBrandedTemplate(ctx, viewer, id);
  if (Object.keys(cols).length === 0) return existing;
  const [row] = await ctx.db
    .update(brandedTemplate)
    .set(cols)
    .where(and(eq(brandedTemplate.id, id), eq(brandedTemplate.tenantId, viewer.tenantId)))
    .returning();
  return row!;
}

export async function archiveBrandedTemplate(
  ctx: EngineContext,
  viewer: Viewer,
  id: string,
): Promise<BrandedTemplate> {
  requireRole(viewer, "ADMIN");
  await getBrandedTemplate(ctx, viewer, id);
  const [row] = await ctx.db
    .update(brandedTemplate)
    .set({ archivedAt: ctx.clock.now() })
    .where(and(eq(brandedTemplate.id, id), eq(brandedTemplate.tenantId, viewer.tenantId)))
    .returning();
  return row!;
}

// ---- Canned responses -----------------------------------------------------------------

export interface CannedResponseInput {
  name?: string;
  subject?: string | null;
  text?: string;
  html?: string | null;
}

function prepareCanned(input: CannedResponseInput, creating: boolean) {
  const p = new Problems();
  if (creating) p.check(input.name !== undefined, "name", "is required");
  checkName(p, "name", input.name);
  checkSubject(p, input.subject);
  checkBody(p, "text", input.text, MAX_TEXT);
  checkBody(p, "html", input.html, MAX_HTML);
  p.throwIfAny();
  return {
    ...(input.name !== undefined ? { name: input.name.trim() } : {}),
    ...(input.subject !== undefined ? { subject: input.subject } : {}),
    ...(input.text !== undefined ? { text: input.text } : {}),
    ...optionalHtml(input.html, sanitizeFragment),
  };
}

export async function listCannedResponses(
  ctx: EngineContext,
  viewer: Viewer,
  filter: ListFilter,
  page: Page,
): Promise<CannedResponse[]> {
  const { limit, offset } = clampPage(page);
  return ctx.db
    .select()
    .from(cannedResponse)
    .where(
      and(
        eq(cannedResponse.tenantId, viewer.tenantId),
        filter.includeArchived ? undefined : isNull(cannedResponse.archivedAt),
        filter.search ? ilike(cannedResponse.name, likePattern(filter.search)) : undefined,
      ),
    )
    .orderBy(asc(sql`lower(${cannedResponse.name})`), asc(cannedResponse.id))
    .limit(limit)
    .offset(offset);
}

export async function getCannedResponse(
  ctx: EngineContext,
  viewer: Viewer,
  id: string,
): Promise<CannedResponse> {
  const [row] = await ctx.db
    .select()
    .from(cannedResponse)
    .where(and(eq(cannedResponse.id, id), eq(cannedResponse.tenantId, viewer.tenantId)));
  if (!row) throw new NotFoundError("CannedResponse", id);
  return row;
}

export async function createCannedResponse(
  ctx: EngineContext,
  viewer: Viewer,
  input: CannedResponseInput,
): Promise<CannedResponse> {
  requireRole(viewer, "ADMIN");
  const cols = prepareCanned(input, true);
  const [row] = await ctx.db
    .insert(cannedResponse)
    .values({ tenantId: viewer.tenantId, name: cols.name!, ...cols })
    .returning();
  return row!;
}

export async function updateCannedResponse(
  ctx: EngineContext,
  viewer: Viewer,
  id: string,
  input: CannedResponseInput,
): Promise<CannedResponse> {
  requireRole(viewer, "ADMIN");
  const cols = prepareCanned(input, false);
  const existing = await getCannedResponse(ctx, viewer, id);
  if (Object.keys(cols).length === 0) return existing;
  const [row] = await ctx.db
    .update(cannedResponse)
    .set(cols)
    .where(and(eq(cannedResponse.id, id), eq(cannedResponse.tenantId, viewer.tenantId)))
    .returning();
  return row!;
}

export async function archiveCannedResponse(
  ctx: EngineContext,
  viewer: Viewer,
  id: string,
): Promise<CannedResponse> {
  requireRole(viewer, "ADMIN");
  await getCannedResponse(ctx, viewer, id);
  const [row] = await ctx.db
    .update(cannedResponse)
    .set({ archivedAt: ctx.clock.now() })
    .where(and(eq(cannedResponse.id, id), eq(cannedResponse.tenantId, viewer.tenantId)))
    .returning();
  return row!;
}

// ---- Auto-reply templates -------------------------------------------------------------

export interface AutoReplyTemplateInput {
  name?: string;
  /** null = `Re: ` + the original subject (SPEC §9). */
  subject?: string | null;
  text?: string;
  html?: string | null;
}

/** Unknown `@{…}` tags are rejected on save, so a typo never reaches a customer verbatim. */
function prepareAutoReply(input: AutoReplyTemplateInput, creating: boolean) {
  const p = new Problems();
  if (creating) p.check(input.name !== undefined, "name", "is required");
  checkName(p, "name", input.name);
  checkSubject(p, input.subject);
  checkBody(p, "text", input.text, MAX_TEXT);
  checkBody(p, "html", input.html, MAX_HTML);
  checkAtTags(p, "subject", input.subject, AUTO_REPLY_TAGS);
  checkAtTags(p, "text", input.text, AUTO_REPLY_TAGS);
  checkAtTags(p, "html", input.html, AUTO_REPLY_TAGS);
  p.throwIfAny();
  return {
    ...(input.name !== undefined ? { name: input.name.trim() } : {}),
    ...(input.subject !== undefined ? { subject: input.subject } : {}),
    ...(input.text !== undefined ? { text: input.text } : {}),
    ...optionalHtml(input.html, sanitizeFragment),
  };
}

export async function listAutoReplyTemplates(
  ctx: EngineContext,
  viewer: Viewer,
  filter: ListFilter,
  page: Page,
): Promise<AutoReplyTemplate[]> {
  const { limit, offset } = clampPage(page);
  return ctx.db
    .select()
    .from(autoReplyTemplate)
    .where(
      and(
        eq(autoReplyTemplate.tenantId, viewer.tenantId),
        filter.includeArchived ? undefined : isNull(autoReplyTemplate.archivedAt),
        filter.search ? ilike(autoReplyTemplate.name, likePattern(filter.search)) : undefined,
      ),
    )
    .orderBy(asc(sql`lower(${autoReplyTemplate.name})`), asc(autoReplyTemplate.id))
    .limit(limit)
    .offset(offset);
}

export async function getAutoReplyTemplate(
  ctx: EngineContext,
  viewer: Viewer,
  id: string,
): Promise<AutoReplyTemplate> {
  const [row] = await ctx.db
    .select()
    .from(autoReplyTemplate)
    .where(and(eq(autoReplyTemplate.id, id), eq(autoReplyTemplate.tenantId, viewer.tenantId)));
  if (!row) throw new NotFoundError("AutoReplyTemplate", id);
  return row;
}

export async function createAutoReplyTemplate(
  ctx: EngineContext,
  viewer: Viewer,
  input: AutoReplyTemplateInput,
): Promise<AutoReplyTemplate> {
  requireRole(viewer, "ADMIN");
  const cols = prepareAutoReply(input, true);
  const [row] = await ctx.db
    .insert(autoReplyTemplate)
    .values({ tenantId: viewer.tenantId, name: cols.name!, ...cols })
    .returning();
  return row!;
}

export async function updateAutoReplyTemplate(
  ctx: EngineContext,
  viewer: Viewer,
  id: string,
  input: AutoReplyTemplateInput,
): Promise<AutoReplyTemplate> {
  requireRole(viewer, "ADMIN");
  const cols = prepareAutoReply(input, false);
  const existing = await getAutoReplyTemplate(ctx, viewer, id);
  if (Object.keys(cols).length === 0) return existing;
  const [row] = await ctx.db
    .update(autoReplyTemplate)
    .set(cols)
    .where(and(eq(autoReplyTemplate.id, id), eq(autoReplyTemplate.tenantId, viewer.tenantId)))
    .returning();
  return row!;
}

export async function archiveAutoReplyTemplate(
  ctx: EngineContext,
  viewer: Viewer,
  id: string,
): Promise<AutoReplyTemplate> {
  requireRole(viewer, "ADMIN");
  await getAutoReplyTemplate(ctx, viewer, id);
  const [row] = await ctx.db
    .update(autoReplyTemplate)
    .set({ archivedAt: ctx.clock.now() })
    .where(and(eq(autoReplyTemplate.id, id), eq(autoReplyTemplate.tenantId, viewer.tenantId)))
    .returning();
  return row!;
}
