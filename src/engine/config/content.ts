import { createHash } from "node:crypto";
import { and, asc, eq, getTableColumns, ilike, inArray, isNull, sql } from "drizzle-orm";
import type { Db, Tx } from "../../db/client.js";
import {
  autoReplyAttachment,
  autoReplyTemplate,
  brandedTemplate,
  cannedResponse,
} from "../../db/schema/index.js";
import type { EngineContext } from "../context.js";
import { AUTO_REPLY_TAGS } from "../domain.js";
import { NotFoundError, Problems } from "../errors.js";
import { checkAutoReplyAttachments } from "../outbound/auto-reply.js";
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
import { checkName, checkText } from "./validate.js";

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

/** The subject becomes a mail header: one line, no control characters (CR/LF would inject headers). */
function checkSubject(p: Problems, subject: string | null | undefined): void {
  checkText(p, "subject", subject, MAX_SUBJECT);
}

/** Called after validation, so an oversized body never reaches the sanitiser. */
const optionalHtml = (html: string | null | undefined, clean: (h: string) => string) =>
  html === undefined ? {} : { html: html === null ? null : clean(html) };

type ContentTable = typeof brandedTemplate | typeof cannedResponse | typeof autoReplyTemplate;

/**
 * The list/get/create/update/archive of a tenant's named content table (templates, canned
 * responses): ADMIN writes, every role reads, archived rows kept for history. Each table
 * brings only its own validation (`prepare`), which returns the columns to write.
 */
function namedContent<T extends ContentTable, Input>(
  table: T,
  entity: string,
  prepare: (input: Input, creating: boolean) => Partial<T["$inferInsert"]>,
) {
  type Row = T["$inferSelect"];
  // drizzle cannot infer queries over a union of tables; the tables share every column
  // used here, so one view of them keeps the callers fully typed.
  const t = table as unknown as typeof cannedResponse;
  const own = (viewer: Viewer, id: string) => and(eq(t.id, id), eq(t.tenantId, viewer.tenantId));

  async function get(ctx: EngineContext, viewer: Viewer, id: string): Promise<Row> {
    const [row] = await ctx.db.select().from(t).where(own(viewer, id));
    if (!row) throw new NotFoundError(entity, id);
    return row as Row;
  }

  return {
    async list(ctx: EngineContext, viewer: Viewer, filter: ListFilter, page: Page): Promise<Row[]> {
      const { limit, offset } = clampPage(page);
      const rows = await ctx.db
        .select()
        .from(t)
        .where(
          and(
            eq(t.tenantId, viewer.tenantId),
            filter.includeArchived ? undefined : isNull(t.archivedAt),
            filter.search ? ilike(t.name, likePattern(filter.search)) : undefined,
          ),
        )
        .orderBy(asc(sql`lower(${t.name})`), asc(t.id))
        .limit(limit)
        .offset(offset);
      return rows as Row[];
    },
    get,
    async create(ctx: EngineContext, viewer: Viewer, input: Input): Promise<Row> {
      requireRole(viewer, "ADMIN");
      const cols = prepare(input, true) as Partial<typeof cannedResponse.$inferInsert>;
      const [row] = await ctx.db
        .insert(t)
        .values({ ...cols, tenantId: viewer.tenantId, name: cols.name! })
        .returning();
      return row as Row;
    },
    async update(ctx: EngineContext, viewer: Viewer, id: string, input: Input): Promise<Row> {
      requireRole(viewer, "ADMIN");
      const cols = prepare(input, false) as Partial<typeof cannedResponse.$inferInsert>;
      const existing = await get(ctx, viewer, id);
      if (Object.keys(cols).length === 0) return existing;
      const [row] = await ctx.db.update(t).set(cols).where(own(viewer, id)).returning();
      return row as Row;
    },
    async archive(ctx: EngineContext, viewer: Viewer, id: string): Promise<Row> {
      requireRole(viewer, "ADMIN");
      await get(ctx, viewer, id);
      const [row] = await ctx.db
        .update(t)
        .set({ archivedAt: ctx.clock.now() })
        .where(own(viewer, id))
        .returning();
      return row as Row;
    },
  };
}

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

// ---- Auto-reply templates -------------------------------------------------------------

export interface AutoReplyTemplateInput {
  name?: string;
  /** null = `Re: ` + the original subject (SPEC §9). */
  subject?: string | null;
  text?: string;
  html?: string | null;
  /** Replaces the template's files when given ([] removes them all); omitted = unchanged. */
  attachments?: readonly AutoReplyAttachmentInput[] | null;
}

export interface AutoReplyAttachmentInput {
  filename: string;
  contentType: string;
  /** The bytes, base64 (as GraphQL carries them). */
  contentBase64: string;
  /** Inline images: the Content-ID the HTML refers to as `cid:<contentId>`. */
  contentId?: string | null;
  inline?: boolean | null;
}

export type AutoReplyAttachmentMeta = Omit<typeof autoReplyAttachment.$inferSelect, "data">;

const BASE64_RE = /^[A-Za-z0-9+/\r\n]*={0,2}\s*$/;
/** RFC 2392 Content-ID (id-left "@" id-right or a plain token): printable, no <, >, space. */
const CONTENT_ID_RE = /^[\x21-\x3b\x3d\x3f-\x7e]{1,250}$/;
/** Decoding stops here before the per-type limits are checked: 10 + 10 files is the most. */
const MAX_TEMPLATE_FILES = 20;

interface DecodedFile {
  filename: string;
  contentType: string;
  content: Buffer;
  contentId: string | null;
  inline: boolean;
}

/**
 * Checks a template's files (SPEC §9: 10 inline images, 10 attachments, 25 MB in total,
 * allowed types — the rules in outbound/auto-reply.ts), adding every problem to `p`.
 * Returns the decoded files when there were none.
 */
function checkTemplateFiles(p: Problems, list: readonly AutoReplyAttachmentInput[]): DecodedFile[] {
  if (list.length > MAX_TEMPLATE_FILES) {
    p.add("attachments", `at most ${MAX_TEMPLATE_FILES} files (10 inline images and 10 attachments)`);
    return [];
  }
  const files: DecodedFile[] = [];
  const cids = new Set<string>();
  list.forEach((a, i) => {
    const field = `attachments[${i}]`;
    const name = a.filename.trim();
    p.check(
      name !== "" && name.length <= 255 && !/[\p{Cc}]/u.test(name),
      `${field}.filename`,
      "1–255 characters, no control characters",
    );
    if (!BASE64_RE.test(a.contentBase64)) {
      p.add(`${field}.contentBase64`, "must be base64");
      return;
    }
    const inline = a.inline === true;
    const cid = a.contentId?.trim().replace(/^<|>$/g, "") || null;
    if (inline) {
      if (!cid || !CONTENT_ID_RE.test(cid)) {
        p.add(`${field}.contentId`, "an inline image needs a Content-ID (printable, no spaces or <>)");
      } else if (cids.has(cid)) {
        p.add(`${field}.contentId`, "Content-IDs must be unique within the template");
      } else cids.add(cid);
    }
    files.push({
      filename: name,
      contentType: a.contentType.trim().toLowerCase(),
      content: Buffer.from(a.contentBase64, "base64"),
      contentId: inline ? cid : null,
      inline,
    });
  });
  for (const e of checkAutoReplyAttachments(
    files.map((f) => ({
      filename: f.filename,
      contentType: f.contentType,
      size: f.content.length,
      inline: f.inline,
      head: f.content.subarray(0, 8),
    })),
  )) {
    p.add(e.field, `${e.code}: ${e.message}`);
  }
  return files;
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
  if (input.attachments) checkTemplateFiles(p, input.attachments);
  p.throwIfAny();
  return {
    ...(input.name !== undefined ? { name: input.name.trim() } : {}),
    ...(input.subject !== undefined ? { subject: input.subject } : {}),
    ...(input.text !== undefined ? { text: input.text } : {}),
    ...optionalHtml(input.html, sanitizeFragment),
  };
}

const branded = namedContent(brandedTemplate, "BrandedTemplate", prepareBranded);
export const listBrandedTemplates = branded.list;
export const getBrandedTemplate = branded.get;
export const createBrandedTemplate = branded.create;
export const updateBrandedTemplate = branded.update;
export const archiveBrandedTemplate = branded.archive;

const canned = namedContent(cannedResponse, "CannedResponse", prepareCanned);
export const listCannedResponses = canned.list;
export const getCannedResponse = canned.get;
export const createCannedResponse = canned.create;
export const updateCannedResponse = canned.update;
export const archiveCannedResponse = canned.archive;

const autoReply = namedContent(autoReplyTemplate, "AutoReplyTemplate", prepareAutoReply);
export const listAutoReplyTemplates = autoReply.list;
export const getAutoReplyTemplate = autoReply.get;
export const archiveAutoReplyTemplate = autoReply.archive;

/** The template's files replaced as a whole (position = order given), in the caller's transaction. */
async function replaceTemplateFiles(
  tx: Tx,
  tenantId: string,
  templateId: string,
  list: readonly AutoReplyAttachmentInput[],
): Promise<void> {
  // Validated by prepareAutoReply already; decoding again keeps that function pure.
  const files = checkTemplateFiles(new Problems(), list);
  await tx.delete(autoReplyAttachment).where(eq(autoReplyAttachment.templateId, templateId));
  if (files.length === 0) return;
  await tx.insert(autoReplyAttachment).values(
    files.map((f, position) => ({
      tenantId,
      templateId,
      position,
      filename: f.filename,
      contentType: f.contentType,
      sizeBytes: f.content.length,
      contentId: f.contentId,
      inline: f.inline,
      sha256: createHash("sha256").update(f.content).digest("hex"),
      data: f.content,
    })),
  );
}

/** Creates a template with its files (one transaction). ADMIN. */
export async function createAutoReplyTemplate(
  ctx: EngineContext,
  viewer: Viewer,
  input: AutoReplyTemplateInput,
): Promise<AutoReplyTemplate> {
  return ctx.db.transaction(async (tx) => {
    const row = await autoReply.create({ ...ctx, db: tx as unknown as Db }, viewer, input);
    if (input.attachments) await replaceTemplateFiles(tx, viewer.tenantId, row.id, input.attachments);
    return row;
  });
}

/** Changes the given fields; `attachments`, when given, replaces the files. ADMIN. */
export async function updateAutoReplyTemplate(
  ctx: EngineContext,
  viewer: Viewer,
  id: string,
  input: AutoReplyTemplateInput,
): Promise<AutoReplyTemplate> {
  return ctx.db.transaction(async (tx) => {
    const row = await autoReply.update({ ...ctx, db: tx as unknown as Db }, viewer, id, input);
    if (input.attachments) await replaceTemplateFiles(tx, viewer.tenantId, row.id, input.attachments);
    return row;
  });
}

/** File metadata (no bytes) of templates the caller already resolved, batched, in template order. */
export async function autoReplyAttachmentsOf(
  ctx: EngineContext,
  tenantId: string,
  templateIds: readonly string[],
): Promise<AutoReplyAttachmentMeta[][]> {
  const { data: _data, ...columns } = getTableColumns(autoReplyAttachment);
  const rows = await ctx.db
    .select(columns)
    .from(autoReplyAttachment)
    .where(
      and(
        eq(autoReplyAttachment.tenantId, tenantId),
        inArray(autoReplyAttachment.templateId, [...templateIds]),
      ),
    )
    .orderBy(asc(autoReplyAttachment.position));
  return templateIds.map((id) => rows.filter((r) => r.templateId === id));
}
