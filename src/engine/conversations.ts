import {
  and,
  arrayContains,
  asc,
  desc,
  eq,
  exists,
  ilike,
  inArray,
  isNotNull,
  isNull,
  lt,
  lte,
  or,
  type SQL,
  sql,
} from "drizzle-orm";
import {
  attachment,
  contact,
  conversation,
  emailAddress,
  event,
  message,
  rejectedMessage,
} from "../db/schema/index.js";
import type { ByteaValue } from "./bytea-parts.js";
import { clampPage } from "./config/paging.js";
import { likePattern } from "./config/search.js";
import type { EngineContext } from "./context.js";
import type { ConversationStatus, WorkState } from "./domain.js";
import { NotFoundError, Problems } from "./errors.js";
import { type IngestInput, type IngestResult, ingestOrQuarantine } from "./ingest/ingest.js";
import {
  indexedMatching,
  indexedMatchOf,
  pendingMatching,
  SEARCH_CAP,
  SEARCH_PROBE,
  SUBJECT_TRIGRAM_MIN,
  subjectMatching,
} from "./search.js";
import { clip, wellFormed } from "./text.js";
import { requireRole, type Viewer } from "./viewer.js";

export type Conversation = typeof conversation.$inferSelect;
export type Message = typeof message.$inferSelect;
export type Contact = typeof contact.$inferSelect;
export type Attachment = Omit<typeof attachment.$inferSelect, "data">;
export type RejectedMessage = typeof rejectedMessage.$inferSelect;

export interface ConversationFilter {
  queueIds?: string[] | null;
  /** true: only conversations outside every queue; false: only those in one. */
  unrouted?: boolean | null;
  statuses?: ConversationStatus[] | null;
  workStates?: WorkState[] | null;
  contactId?: string | null;
  assigneeId?: string | null;
  ticketNumber?: number | null;
  tags?: string[] | null;
  /** Full text over subject and message bodies (PostgreSQL text search, simple config). */
  text?: string | null;
}

/** Keyset position: newest activity first, id as tie-break; stable under inserts. */
export interface ConversationCursor {
  at: Date;
  id: string;
}

/**
 * The rows a viewer may see: its tenant, and for non-admins only its queues. Everything
 * that reads conversations goes through this, so no path forgets the access profile.
 */
/** Rows of `conversation` the viewer may see (for callers that lock or join it themselves). */
export function visibility(viewer: Viewer): SQL | undefined {
  const tenant = eq(conversation.tenantId, viewer.tenantId);
  if (viewer.queueIds === null) return tenant;
  const ids = [...viewer.queueIds];
  const inQueues = ids.length > 0 ? inArray(conversation.queueId, ids) : sql`false`;
  // Agents always see what they own, even after it moved to a queue they cannot see.
  const owned = or(eq(conversation.assigneeId, viewer.userId), eq(conversation.offeredToId, viewer.userId));
  return and(tenant, or(inQueues, owned));
}

export async function listConversations(
  ctx: EngineContext,
  viewer: Viewer,
  filter: ConversationFilter,
  page: { first: number; after: ConversationCursor | null },
): Promise<Conversation[]> {
  const conds: (SQL | undefined)[] = [visibility(viewer)];
  if (filter.queueIds?.length) conds.push(inArray(conversation.queueId, filter.queueIds));
  if (filter.unrouted != null) {
    conds.push(filter.unrouted ? isNull(conversation.queueId) : isNotNull(conversation.queueId));
  }
  if (filter.statuses?.length) conds.push(inArray(conversation.status, filter.statuses));
  if (filter.workStates?.length) conds.push(inArray(conversation.workState, filter.workStates));
  if (filter.contactId) conds.push(eq(conversation.contactId, filter.contactId));
  if (filter.assigneeId) conds.push(eq(conversation.assigneeId, filter.assigneeId));
  if (filter.ticketNumber != null) conds.push(eq(conversation.ticketNumber, filter.ticketNumber));
  // No stored tag or text holds U+0000 (PostgreSQL refuses it): a NUL is dropped, not an error.
  if (filter.tags?.length) {
    conds.push(
      arrayContains(
        conversation.tags,
        filter.tags.map((tag) => tag.replaceAll("\u0000", "")),
      ),
    );
  }
  if (page.after) {
    conds.push(
      // The first condition alone bounds the index range (conversation_tenant_activity_idx);
      // the OR is only the tie-break. Without it every row before the cursor was read and
      // dropped: 95,000 rows at 95 % depth of a 100k-conversation tenant (scale probe).
      lte(conversation.lastActivityAt, page.after.at),
      or(
        lt(conversation.lastActivityAt, page.after.at),
        and(eq(conversation.lastActivityAt, page.after.at), lt(conversation.id, page.after.id)),
      ),
    );
  }
  const limit = Math.min(Math.max(page.first, 0), 200) + 1;
  const order = [desc(conversation.lastActivityAt), desc(conversation.id)];
  const text = clip(wellFormed(filter.text?.replaceAll("\u0000", "") ?? ""), 200).trim();
  if (!text) {
    return ctx.db
      .select()
      .from(conversation)
      .where(and(...conds))
      .orderBy(...order)
      .limit(limit);
  }
  // Text: the subject as a substring, or any message's words (engine/search.ts).
  const subject = likePattern(text);
  const ids = (rows: { conversation_id: string }[]) => rows.map((r) => r.conversation_id);
  // Messages the indexer has not reached yet, read once for every step below.
  const pendingIds = ids(await ctx.db.execute(pendingMatching(viewer.tenantId, text)));
  // Subjects that contain the text, up to the cap, by trigrams; null when the text is too
  // short for trigrams or too common to list (then each conversation's subject is tested).
  const subjectIds =
    text.length >= SUBJECT_TRIGRAM_MIN
      ? ids(await ctx.db.execute(subjectMatching(viewer.tenantId, subject, SEARCH_CAP)))
      : null;
  const listed = subjectIds !== null && subjectIds.length < SEARCH_CAP;
  const anyOf = (list: string[]) => sql`${conversation.id} = ANY (${sql.param([...new Set(list)])}::uuid[])`;
  const bySubject = listed ? anyOf(subjectIds) : ilike(conversation.subject, subject);
  /** The page of the conversations that pass the other filters and `cond`. */
  const matching = (cond: SQL | undefined) =>
    ctx.db
      .select()
      .from(conversation)
      .where(and(...conds, cond))
      .orderBy(...order)
      .limit(limit);
  // A word with few indexed matches: all of them in one capped read, then one ordered pass
  // (with the subjects listed too, a lookup of that many conversations by id).
  const capped = ids(await ctx.db.execute(indexedMatching(viewer.tenantId, text, SEARCH_CAP)));
  if (capped.length < SEARCH_CAP) {
    return matching(
      listed
        ? anyOf([...subjectIds, ...capped, ...pendingIds])
        : or(bySubject, anyOf([...capped, ...pendingIds])),
    );
  }
  // A common word: first the newest conversations that pass the other filters, each tested
  // on its own; it fills the page there, without reading every message that has it. (A CTE,
  // so the per-conversation test runs on those rows only, and a scalar subquery, which
  // PostgreSQL cannot turn into a scan of every document.)
  const newest = ctx.db
    .select({
      id: conversation.id,
      subject: conversation.subject,
      lastActivityAt: conversation.lastActivityAt,
    })
    .from(conversation)
    .where(and(...conds))
    .orderBy(...order)
    .limit(SEARCH_PROBE);
  const probed = await ctx.db
    .select()
    .from(conversation)
    .where(
      inArray(
        conversation.id,
        sql`(WITH newest AS MATERIALIZED (${newest})
             SELECT n.id FROM newest n
              WHERE n.subject ILIKE ${subject} OR ${indexedMatchOf(sql`n.id`, text)} OR n.id = ANY (${sql.param(pendingIds)}::uuid[])
              ORDER BY n.last_activity_at DESC, n.id DESC LIMIT ${limit})`,
      ),
    )
    .orderBy(...order)
    .limit(limit);
  if (probed.length === limit) return probed;
  // Fewer than SEARCH_PROBE conversations pass the other filters (one customer's history, a
  // small queue): the probe saw all of them, so its matches are all there are. Until
  // 2026-11-23 this case went on to the pass below, which for a common word compared each
  // of them against every match in the tenant: 477–813 ms for one contact's conversations
  // in a tenant of 510k messages (scale probe, session 17).
  const [beyond] = await ctx.db
    .select({ id: conversation.id })
    .from(conversation)
    .where(and(...conds))
    .orderBy(...order)
    .offset(SEARCH_PROBE)
    .limit(1);
  if (!beyond) return probed;
  // Otherwise every match of the tenant, from the index (a word common only in older mail).
  return matching(
    or(bySubject, sql`${conversation.id} IN ${indexedMatching(viewer.tenantId, text)}`, anyOf(pendingIds)),
  );
}

export async function getConversation(ctx: EngineContext, viewer: Viewer, id: string): Promise<Conversation> {
  const [row] = await ctx.db
    .select()
    .from(conversation)
    .where(and(eq(conversation.id, id), visibility(viewer)));
  if (!row) throw new NotFoundError("Conversation", id);
  return row;
}

/** Batch form of getConversation (same visibility); IDs not visible are absent from the map. */
export async function conversationsByIds(
  ctx: EngineContext,
  viewer: Viewer,
  ids: readonly string[],
): Promise<Map<string, Conversation>> {
  if (ids.length === 0) return new Map();
  const rows = await ctx.db
    .select()
    .from(conversation)
    .where(and(inArray(conversation.id, [...new Set(ids)]), visibility(viewer)));
  return new Map(rows.map((r) => [r.id, r]));
}

/** Messages of conversations the caller already resolved (so visibility is settled), batched. */
/**
 * One page of messages for each of the conversations the caller already resolved (so
 * visibility is settled), in conversation order (received, then created, then id), keyset-
 * paged by a message of that conversation: `forward` reads the `limit` + 1 messages after
 * `cursor` (a message id; or from the first), `backward` the `limit` + 1 before it (or from the newest);
 * the extra one says another page exists. Each list comes back oldest first. A cursor that
 * is not a message of the conversation gives it an empty page. One statement for a whole
 * page of conversations, through message_conversation_idx.
 */
export async function messagesOf(
  ctx: EngineContext,
  tenantId: string,
  conversationIds: readonly string[],
  page: { limit: number; cursor: string | null; direction: "forward" | "backward" },
): Promise<Map<string, (typeof message.$inferSelect)[]>> {
  const out = new Map<string, (typeof message.$inferSelect)[]>(conversationIds.map((id) => [id, []]));
  if (conversationIds.length === 0) return out;
  const ids = [...new Set(conversationIds)];
  const limit = Math.min(Math.max(page.limit, 0), 500) + 1;
  const forward = page.direction === "forward";
  const order = forward
    ? sql`ORDER BY m.received_at, m.created_at, m.id`
    : sql`ORDER BY m.received_at DESC, m.created_at DESC, m.id DESC`;
  const after =
    page.cursor === null
      ? sql`TRUE`
      : forward
        ? sql`(m.received_at, m.created_at, m.id) > (cur.received_at, cur.created_at, cur.id)`
        : sql`(m.received_at, m.created_at, m.id) < (cur.received_at, cur.created_at, cur.id)`;
  const cursorJoin =
    page.cursor === null
      ? sql``
      : sql`JOIN ${message} cur ON cur.id = ${page.cursor}::uuid AND cur.tenant_id = ${tenantId}
              AND cur.conversation_id = c.id`;
  const rows = await ctx.db
    .select()
    .from(message)
    .where(
      inArray(
        message.id,
        // The ids as one array parameter (a JS array here would be one parameter each).
        sql`(SELECT p.id FROM unnest(${`{${ids.join(",")}}`}::uuid[]) AS c(id) CROSS JOIN LATERAL (
               SELECT m.id FROM ${message} m ${cursorJoin}
                WHERE m.tenant_id = ${tenantId} AND m.conversation_id = c.id AND ${after}
                ${order} LIMIT ${limit}) p)`,
      ),
    )
    .orderBy(asc(message.receivedAt), asc(message.createdAt), asc(message.id));
  for (const m of rows) out.get(m.conversationId)?.push(m);
  return out;
}

export async function attachmentsOf(ctx: EngineContext, tenantId: string, messageIds: readonly string[]) {
  const rows = await ctx.db
    .select({
      id: attachment.id,
      tenantId: attachment.tenantId,
      messageId: attachment.messageId,
      filename: attachment.filename,
      contentType: attachment.contentType,
      sizeBytes: attachment.sizeBytes,
      contentId: attachment.contentId,
      inline: attachment.inline,
      sha256: attachment.sha256,
      createdAt: attachment.createdAt,
      updatedAt: attachment.updatedAt,
    })
    .from(attachment)
    .where(and(eq(attachment.tenantId, tenantId), inArray(attachment.messageId, [...messageIds])));
  return messageIds.map((id) => rows.filter((r) => r.messageId === id));
}

/** An attachment's bytes, only if its conversation is visible to the viewer. */
export async function downloadAttachment(
  ctx: EngineContext,
  viewer: Viewer,
  attachmentId: string,
): Promise<AttachmentFile> {
  const [row] = await ctx.db
    .select(attachmentFileColumns)
    .from(attachment)
    .innerJoin(message, eq(message.id, attachment.messageId))
    .innerJoin(conversation, eq(conversation.id, message.conversationId))
    .where(and(eq(attachment.id, attachmentId), visibility(viewer)));
  if (!row) throw new NotFoundError("Attachment", attachmentId);
  return attachmentFile(row);
}

/** An attachment to download: what its response's headers say, and where its bytes are read from. */
export interface AttachmentFile {
  filename: string;
  contentType: string;
  sizeBytes: number;
  /** Hex SHA-256 of the bytes: an attachment never changes, so this is its strong ETag. */
  sha256: string;
  /** Read in parts, or a range of it (`readByteaParts`), never whole into memory. */
  value: ByteaValue;
}

/** What `AttachmentFile` is made of; the value's size and compression read its TOAST pointer only. */
export const attachmentFileColumns = {
  id: attachment.id,
  tenantId: attachment.tenantId,
  filename: attachment.filename,
  contentType: attachment.contentType,
  sha256: attachment.sha256,
  sizeBytes: sql<number>`octet_length(${attachment.data})`,
  compressed: sql<boolean>`pg_column_compression(${attachment.data}) IS NOT NULL`,
};

export function attachmentFile(row: {
  id: string;
  tenantId: string;
  filename: string;
  contentType: string;
  sha256: string;
  sizeBytes: number;
  compressed: boolean;
}): AttachmentFile {
  return {
    filename: row.filename,
    contentType: row.contentType,
    sizeBytes: Number(row.sizeBytes),
    sha256: row.sha256,
    value: { table: "attachment", id: row.id, tenantId: row.tenantId, compressed: row.compressed },
  };
}

export async function contactsByIds(ctx: EngineContext, tenantId: string, ids: readonly string[]) {
  const rows = await ctx.db
    .select()
    .from(contact)
    .where(and(eq(contact.tenantId, tenantId), inArray(contact.id, [...ids])));
  return ids.map((id) => rows.find((r) => r.id === id) ?? new NotFoundError("Contact", id));
}

/**
 * Contacts a viewer may see: all of the tenant's for those who see every queue; for the
 * others (agents, supervisors with an access profile) those with a conversation they may
 * see — a customer who only wrote to another queue stays unknown to them.
 */
function contactVisibility(db: EngineContext["db"], viewer: Viewer): SQL | undefined {
  if (viewer.queueIds === null) return undefined;
  return exists(
    db
      .select({ one: sql`1` })
      .from(conversation)
      .where(and(eq(conversation.contactId, contact.id), visibility(viewer))),
  );
}

export async function listContacts(
  ctx: EngineContext,
  viewer: Viewer,
  filter: { search?: string | null },
  page: { limit: number; offset: number },
): Promise<Contact[]> {
  const s = filter.search?.trim();
  const clamped = clampPage(page);
  return ctx.db
    .select()
    .from(contact)
    .where(
      and(
        eq(contact.tenantId, viewer.tenantId),
        contactVisibility(ctx.db, viewer),
        s ? or(ilike(contact.email, likePattern(s)), ilike(contact.name, likePattern(s))) : undefined,
      ),
    )
    .orderBy(asc(contact.email))
    .limit(clamped.limit)
    .offset(clamped.offset);
}

export async function getContact(ctx: EngineContext, viewer: Viewer, id: string): Promise<Contact> {
  const [row] = await ctx.db
    .select()
    .from(contact)
    .where(and(eq(contact.id, id), eq(contact.tenantId, viewer.tenantId), contactVisibility(ctx.db, viewer)));
  if (!row) throw new NotFoundError("Contact", id);
  return row;
}

/** Rejected and quarantined mail with its reason: ADMIN only (it may hold anything). */
export async function listRejectedMessages(
  ctx: EngineContext,
  viewer: Viewer,
  page: { limit: number; offset: number },
): Promise<RejectedMessage[]> {
  requireRole(viewer, "ADMIN");
  const clamped = clampPage(page);
  return ctx.db
    .select()
    .from(rejectedMessage)
    .where(eq(rejectedMessage.tenantId, viewer.tenantId))
    .orderBy(desc(rejectedMessage.receivedAt), desc(rejectedMessage.id))
    .limit(clamped.limit)
    .offset(clamped.offset);
}

/**
 * The timelines of conversations the caller already resolved (so visibility is settled,
 * as for `messagesOf`), one page each, oldest first, keyset-paged by event id: at most
 * `first` + 1 events per conversation (the extra one says a next page exists). One
 * statement for a whole page of conversations, through event_conversation_idx; before
 * 2026-11-23 each conversation's timeline took two (its visibility again, its events).
 */
export async function eventsOf(
  ctx: EngineContext,
  tenantId: string,
  conversationIds: readonly string[],
  page: { first: number; afterId: number | null },
): Promise<Map<string, (typeof event.$inferSelect)[]>> {
  const out = new Map<string, (typeof event.$inferSelect)[]>(conversationIds.map((id) => [id, []]));
  if (conversationIds.length === 0) return out;
  const limit = Math.min(Math.max(page.first, 0), 500) + 1;
  const ids = [...new Set(conversationIds)];
  // Each conversation's first `limit` events after the cursor, by its index, then the rows.
  const rows = await ctx.db
    .select()
    .from(event)
    .where(
      inArray(
        event.id,
        // The ids as one array parameter (a JS array here would be one parameter each).
        sql`(SELECT e.id FROM unnest(${`{${ids.join(",")}}`}::uuid[]) AS c(id) CROSS JOIN LATERAL (
               SELECT ev.id FROM ${event} ev
                WHERE ev.tenant_id = ${tenantId} AND ev.conversation_id = c.id
                  AND (${page.afterId}::bigint IS NULL OR ev.id > ${page.afterId}::bigint)
                ORDER BY ev.id LIMIT ${limit}) e)`,
      ),
    )
    .orderBy(asc(event.id));
  for (const e of rows) out.get(e.conversationId!)?.push(e);
  return out;
}

/** The tenant's address `id` if it exists and is not archived: where mail may still arrive. */
export async function liveAddress(
  ctx: EngineContext,
  tenantId: string,
  id: string,
): Promise<{ id: string } | undefined> {
  const [address] = await ctx.db
    .select({ id: emailAddress.id })
    .from(emailAddress)
    .where(
      and(eq(emailAddress.id, id), eq(emailAddress.tenantId, tenantId), isNull(emailAddress.archivedAt)),
    );
  return address;
}

/**
 * Admin import of a raw RFC 822 message for one of the tenant's addresses (importers,
 * demos, tests). Goes through exactly the pipeline SMTP and IMAP mail takes.
 */
export async function ingestRaw(
  ctx: EngineContext,
  viewer: Viewer,
  input: { addressId: string; raw: Buffer },
): Promise<IngestResult> {
  requireRole(viewer, "ADMIN");
  new Problems().check(input.raw.length > 0, "raw", "must not be empty").throwIfAny();
  const address = await liveAddress(ctx, viewer.tenantId, input.addressId);
  if (!address) throw new NotFoundError("EmailAddress", input.addressId);
  const parsed = await ctx.mime.parse(input.raw);
  const ingest: IngestInput = {
    tenantId: viewer.tenantId,
    addressId: address.id,
    raw: input.raw,
    parsed,
    receivedAt: ctx.clock.now(),
    source: { kind: "api", userId: viewer.userId },
  };
  // As over SMTP and IMAP: mail the database can never store is kept, quarantined.
  return ingestOrQuarantine(ctx, ingest);
}
