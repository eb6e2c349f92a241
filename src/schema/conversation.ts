import { and, eq, inArray } from "drizzle-orm";
import { GraphQLError, type GraphQLResolveInfo } from "graphql";
import { type MailboxAddress, type RecipientFailure, user } from "../db/schema/index.js";
import {
  inlineImageHtml,
  LINK_DEFAULT_SECONDS,
  LINK_MAX_SECONDS,
  LINK_MIN_SECONDS,
  signedAttachmentPath,
  validateBaseUrl,
  validateLinkLifetime,
} from "../engine/attachment-links.js";
import {
  type Attachment,
  attachmentsOf,
  type Contact,
  type Conversation,
  contactsByIds,
  eventsOf,
  getContact,
  getConversation,
  ingestRaw,
  listContacts,
  listConversations,
  listRejectedMessages,
  type Message,
  messagesOf,
  type RejectedMessage,
} from "../engine/conversations.js";
import {
  CONVERSATION_STATUSES,
  MESSAGE_DIRECTIONS,
  OUTBOUND_STATUSES,
  WORK_STATES,
} from "../engine/domain.js";
import { ValidationError } from "../engine/errors.js";
import type { EventRow } from "../engine/event-hub.js";
import type { IngestResult } from "../engine/ingest/ingest.js";
import { releaseRejectedMessage } from "../engine/rejected.js";
import { builder } from "./builder.js";
import type { GraphQLContext } from "./context.js";
import { asGraphQLErrors, standardErrors } from "./errors.js";
import { EventRef } from "./event.js";
import { decodeId, decodeIds, encodeId } from "./ids.js";
import { loadVisible } from "./load.js";
import { batchLoad } from "./loaders.js";
import { badCursor, forwardPageSize, offsetConnection, PAGE_SIZES, twoWayPage } from "./paging.js";
import { UserRef } from "./viewer.js";

export const ConversationStatusEnum = builder.enumType("ConversationStatus", {
  description: "Lifecycle status (SPEC §4): NEW, ACTIVE, PAUSED, RESOLVED, CLOSED, REOPENED.",
  values: CONVERSATION_STATUSES,
});
export const WorkStateEnum = builder.enumType("WorkState", {
  description: "Routing position: WAITING in the queue, OFFERED, owned ACTIVE or PARKED, or DONE.",
  values: WORK_STATES,
});
const DirectionEnum = builder.enumType("MessageDirection", {
  description: "INBOUND from the customer, OUTBOUND from us, NOTE internal (never sent).",
  values: MESSAGE_DIRECTIONS,
});
const OutboundStatusEnum = builder.enumType("OutboundStatus", {
  description: "Delivery state of an outbound message.",
  values: OUTBOUND_STATUSES,
});

const MailboxRef = builder.objectRef<MailboxAddress>("Mailbox").implement({
  description: "An email address with its display name.",
  fields: (t) => ({
    address: t.exposeString("address", { description: "The addr-spec, e.g. jane@example.com." }),
    name: t.exposeString("name", { description: "Display name; empty if none." }),
  }),
});

const RecipientFailureRef = builder.objectRef<RecipientFailure>("RecipientFailure").implement({
  description:
    "A recipient of an outbound message that the relay refused when it was sent (its reply to RCPT TO). " +
    "A 5xx refusal also marks the contact with that address undeliverable.",
  fields: (t) => ({
    address: t.exposeString("address", { description: "The refused recipient address." }),
    responseCode: t.exposeInt("responseCode", {
      nullable: true,
      description: "SMTP reply code: 5xx permanent, 4xx temporary; null when the server gave none.",
    }),
    reason: t.exposeString("reason", { description: "The server's reply text." }),
  }),
});

export const ContactRef = builder.objectRef<Contact>("Contact");
export const ConversationRef = builder.objectRef<Conversation>("Conversation");
export const MessageRef = builder.objectRef<Message>("Message");
const AttachmentRef = builder.objectRef<Attachment>("Attachment");

builder.node(ContactRef, {
  description: "A customer, identified by email address within the tenant.",
  id: { resolve: (c) => c.id },
  loadOne: loadVisible(ContactRef, getContact),
  fields: (t) => ({
    email: t.exposeString("email", { description: "Normalised (lower-case) address." }),
    name: t.exposeString("name", { description: "Display name as last seen; may be empty." }),
    undeliverable: t.exposeBoolean("undeliverable", {
      description: "A permanent bounce (5.x.x) marked this address as not deliverable.",
    }),
    undeliverableReason: t.exposeString("undeliverableReason", {
      nullable: true,
      description: "The status and diagnostic of that bounce.",
    }),
    preferredAgentId: t.id({
      nullable: true,
      description:
        "Global ID of the agent who last handled this contact (continuity, preferred-agent routing).",
      resolve: (c) => (c.preferredAgentId ? encodeId("User", c.preferredAgentId) : null),
    }),
    attributes: t.field({
      type: "JSON",
      description: "Free-form attributes (CRM data).",
      resolve: (c) => c.attributes,
    }),
    createdAt: t.expose("createdAt", { type: "DateTime", description: "First seen." }),
  }),
});

builder.node(ConversationRef, {
  description: "A thread of mail with one customer: the unit that is queued, routed, answered and timed.",
  id: { resolve: (c) => c.id },
  loadOne: loadVisible(ConversationRef, getConversation),
  fields: (t) => ({
    ticketNumber: t.int({
      description: "Human-friendly number, unique in the tenant.",
      resolve: (c) => c.ticketNumber,
    }),
    subject: t.exposeString("subject", { description: "Subject of the first message." }),
    status: t.field({
      type: ConversationStatusEnum,
      description: "Lifecycle status.",
      resolve: (c) => c.status,
    }),
    workState: t.field({
      type: WorkStateEnum,
      description: "Routing position.",
      resolve: (c) => c.workState,
    }),
    priority: t.exposeInt("priority", {
      description: "Routing priority; queue score = priority + minutes waiting.",
    }),
    tags: t.exposeStringList("tags", { description: "Tags set by rules or agents (e.g. `spam`)." }),
    spam: t.exposeBoolean("spam", { description: "The first message carried a spam verdict." }),
    language: t.exposeString("language", {
      nullable: true,
      description: "Language used for routing, if known.",
    }),
    queueId: t.id({
      nullable: true,
      description: "Global ID of the queue it is in.",
      resolve: (c) => (c.queueId ? encodeId("Queue", c.queueId) : null),
    }),
    addressId: t.id({
      nullable: true,
      description: "Global ID of the point of contact (email address) it came in on.",
      resolve: (c) => (c.addressId ? encodeId("EmailAddress", c.addressId) : null),
    }),
    requiredSkillIds: t.idList({
      description: "Global IDs of the skills an agent needs to get it.",
      resolve: (c) => c.requiredSkillIds.map((id) => encodeId("Skill", id)),
    }),
    contact: t.loadable({
      type: ContactRef,
      description: "The customer.",
      // Batched per request: a page of conversations costs one contact query, not one each.
      load: (ids: string[], ctx) => contactsByIds(ctx.engine, ctx.viewer!.tenantId, ids),
      resolve: (c) => c.contactId,
    }),
    assignee: t.loadable({
      type: UserRef,
      nullable: true,
      description: "The agent who owns it, if any.",
      load: async (ids: string[], ctx) => {
        const rows = await ctx.engine.db
          .select()
          .from(user)
          .where(and(inArray(user.id, ids), eq(user.tenantId, ctx.viewer!.tenantId)));
        return ids.map((id) => rows.find((r) => r.id === id) ?? null);
      },
      resolve: (c) => c.assigneeId,
    }),
    enqueuedAt: t.expose("enqueuedAt", {
      type: "DateTime",
      nullable: true,
      description: "When it entered the queue.",
    }),
    receivedAt: t.expose("receivedAt", {
      type: "DateTime",
      description: "When the first message was received (time-dependent rules use this).",
    }),
    lastInboundAt: t.expose("lastInboundAt", {
      type: "DateTime",
      nullable: true,
      description: "Last customer mail.",
    }),
    lastOutboundAt: t.expose("lastOutboundAt", {
      type: "DateTime",
      nullable: true,
      description: "Last reply sent.",
    }),
    lastActivityAt: t.expose("lastActivityAt", { type: "DateTime", description: "Last change of any kind." }),
    previousConversationId: t.id({
      nullable: true,
      description: "The closed conversation this one continues (new mail after the reopen window).",
      resolve: (c) => (c.previousConversationId ? encodeId("Conversation", c.previousConversationId) : null),
    }),
    handleTimeMs: t.float({
      description: "Time agents spent with it ACTIVE, in ms, including the running segment.",
      resolve: (c, _a, ctx) =>
        c.handleTimeMs +
        (c.activeSince ? Math.max(0, ctx.engine.clock.now().getTime() - c.activeSince.getTime()) : 0),
    }),
    messages: t.connection({
      type: MessageRef,
      description:
        "Its messages (inbound, outbound, notes), oldest first in each page. Page forward with first/after " +
        "(from the oldest), or back from the newest with last/before; 100 by default, at most 500 a page.",
      resolve: async (c, args, ctx) => {
        const page = twoWayPage(args, PAGE_SIZES["Conversation.messages"], UUID_TEXT);
        const load = batchLoad(
          ctx,
          `messages:${page.direction}:${page.limit}:${page.cursor ?? ""}`,
          (ids: string[]) => messagesOf(ctx.engine, ctx.viewer!.tenantId, ids, page),
        );
        const rows = (await load(c.id)) ?? [];
        const more = rows.length > page.limit;
        const list = !more ? rows : page.direction === "forward" ? rows.slice(0, page.limit) : rows.slice(1);
        const cursor = (m: Message) => Buffer.from(m.id).toString("base64url");
        return {
          edges: list.map((m) => ({ node: m, cursor: cursor(m) })),
          pageInfo: {
            hasNextPage: page.direction === "forward" ? more : page.cursor !== null,
            hasPreviousPage: page.direction === "forward" ? page.cursor !== null : more,
            startCursor: list[0] ? cursor(list[0]) : null,
            endCursor: list.at(-1) ? cursor(list.at(-1)!) : null,
          },
        };
      },
    }),
    timeline: t.connection({
      type: EventRef,
      description:
        "Everything that happened to it and why (SPEC §11), oldest first; 100 by default, at most 500 a page.",
      resolve: async (c, args, ctx) => {
        const first = forwardPageSize(args, PAGE_SIZES["Conversation.timeline"]);
        const afterId = decodeEventCursor(args.after);
        // One statement for every conversation of the page asking with the same arguments.
        const load = batchLoad(ctx, `timeline:${first}:${afterId ?? ""}`, (ids: string[]) =>
          eventsOf(ctx.engine, ctx.viewer!.tenantId, ids, { first, afterId }),
        );
        const rows = (await load(c.id)) ?? [];
        const page = rows.slice(0, first);
        return {
          edges: page.map((e) => ({
            node: { ...e, txId: e.txId } as EventRow,
            cursor: Buffer.from(String(e.id)).toString("base64url"),
          })),
          pageInfo: {
            hasNextPage: rows.length > first,
            hasPreviousPage: afterId !== null,
            startCursor: page[0] ? Buffer.from(String(page[0].id)).toString("base64url") : null,
            endCursor: page.at(-1) ? Buffer.from(String(page.at(-1)!.id)).toString("base64url") : null,
          },
        };
      },
    }),
    createdAt: t.expose("createdAt", { type: "DateTime", description: "When it was created." }),
  }),
});

/** A page's messages' attachments in one query, shared by `attachments` and `inlineHtml`. */
function messageAttachments(ctx: GraphQLContext) {
  return batchLoad(ctx, "messageAttachments", async (ids: string[]) => {
    const lists = await attachmentsOf(ctx.engine, ctx.viewer!.tenantId, ids);
    return new Map(ids.map((id, i) => [id, lists[i]!]));
  });
}

MessageRef.implement({
  description: "One email (or internal note) of a conversation.",
  fields: (t) => ({
    id: t.id({ description: "Global ID.", resolve: (m) => encodeId("Message", m.id) }),
    direction: t.field({
      type: DirectionEnum,
      description: "INBOUND, OUTBOUND or NOTE.",
      resolve: (m) => m.direction,
    }),
    messageIdHeader: t.exposeString("messageIdHeader", {
      nullable: true,
      description: "RFC 5322 Message-ID without angle brackets.",
    }),
    inReplyTo: t.exposeString("inReplyTo", { nullable: true, description: "In-Reply-To header." }),
    from: t.field({ type: MailboxRef, nullable: true, description: "Sender.", resolve: (m) => m.from }),
    to: t.field({ type: [MailboxRef], description: "To recipients.", resolve: (m) => m.to }),
    cc: t.field({ type: [MailboxRef], description: "Cc recipients.", resolve: (m) => m.cc }),
    bcc: t.field({
      type: [MailboxRef],
      description: "Bcc recipients of outbound mail; empty unless the caller has SEE_BCC.",
      resolve: (m, _a, ctx) => (ctx.viewer?.permissions.has("SEE_BCC") ? m.bcc : []),
    }),
    replyTo: t.field({ type: [MailboxRef], description: "Reply-To addresses.", resolve: (m) => m.replyTo }),
    subject: t.exposeString("subject", { description: "Subject as received or sent." }),
    text: t.string({
      description: "Plain-text body (generated from HTML when only HTML was sent).",
      resolve: (m, _a, ctx, info) => spendBodyBytes(ctx, info, m.text),
    }),
    html: t.string({
      nullable: true,
      description:
        "Sanitised HTML, safe to render: scripts, handlers, forms and frames removed; remote images neutralised " +
        "(original URL in data-remote-src); cid: images kept as cid: (match Attachment.contentId).",
      resolve: (m, _a, ctx, info) => (m.html === null ? null : spendBodyBytes(ctx, info, m.html)),
    }),
    inlineHtml: t.string({
      nullable: true,
      description:
        "`html` with each cid: image that names one of the message's attachments pointing at a signed link " +
        "(Attachment.signedDownloadPath), so a browser shows it without an Authorization header. Prefixed by " +
        "`baseUrl`, the address clients reach this server at (default: paths relative to the server). " +
        "Remote images stay neutralised.",
      args: {
        baseUrl: t.arg.string({ description: "e.g. https://switchboard.example.com; http(s), no query." }),
        expiresInSeconds: t.arg.int({
          description: `How long the links work: ${LINK_MIN_SECONDS}–${LINK_MAX_SECONDS} s (default ${LINK_DEFAULT_SECONDS}).`,
        }),
      },
      resolve: async (m, args, ctx, info) => {
        // Checked first: invalid arguments are an error whether or not this message has HTML.
        const [base, lifetime] = asGraphQLErrors(() => [
          validateBaseUrl(args.baseUrl),
          validateLinkLifetime(args.expiresInSeconds),
        ]);
        if (m.html === null) return null;
        // Counted before the copy is made: 100 copies of a 16.8 MB body took the process
        // past its heap (fourth re-probe, session 16).
        spendBodyBytes(ctx, info, m.html);
        if (!/cid:/i.test(m.html)) return m.html;
        const attachments = (await messageAttachments(ctx)(m.id)) ?? [];
        return inlineImageHtml(
          m.html,
          attachments,
          (a) => signedAttachmentPath(ctx.engine, a, lifetime),
          base,
        );
      },
    }),
    remoteResources: t.exposeStringList("remoteResources", {
      description: "Remote URLs the original HTML wanted to load (blocked by default).",
    }),
    headers: t.field({
      type: "JSON",
      description: "Headers of interest (lower-case name → values): auto-submitted, list-id, spam verdicts …",
      resolve: (m) => m.headers,
    }),
    parseWarnings: t.exposeStringList("parseWarnings", {
      description:
        "Irregularities found while parsing (bad date, undecodable charset …); the message is kept.",
    }),
    dateHeader: t.expose("dateHeader", {
      type: "DateTime",
      nullable: true,
      description: "Date the sender claimed.",
    }),
    receivedAt: t.expose("receivedAt", { type: "DateTime", description: "When we received (or queued) it." }),
    autoSubmitted: t.exposeBoolean("autoSubmitted", { description: "Sent by a machine (RFC 3834)." }),
    outboundStatus: t.field({
      type: OutboundStatusEnum,
      nullable: true,
      description: "Delivery state (outbound only).",
      resolve: (m) => m.outboundStatus,
    }),
    outboundError: t.exposeString("outboundError", {
      nullable: true,
      description: "Why sending failed or bounced.",
    }),
    failedRecipients: t.field({
      type: [RecipientFailureRef],
      description:
        "Recipients the relay refused at send time (outbound only). The message is SENT when others were " +
        "accepted, FAILED when all were refused. Bcc recipients only for callers with SEE_BCC.",
      resolve: (m, _a, ctx) => {
        if (ctx.viewer?.permissions.has("SEE_BCC")) return m.failedRecipients;
        // A refused Bcc recipient would name whom the mail was blind-copied to.
        const visible = new Set([...m.to, ...m.cc].map((a) => a.address.toLowerCase()));
        return m.failedRecipients.filter((f) => visible.has(f.address.toLowerCase()));
      },
    }),
    sizeBytes: t.exposeInt("sizeBytes", { description: "Size of the raw message." }),
    attachments: t.field({
      type: [AttachmentRef],
      description: "Attachments and inline images.",
      resolve: async (m, _a, ctx) => (await messageAttachments(ctx)(m.id)) ?? [],
    }),
  }),
});

AttachmentRef.implement({
  description: "A file attached to a message, or an inline image referenced by cid:.",
  fields: (t) => ({
    id: t.id({ description: "Global ID.", resolve: (a) => encodeId("Attachment", a.id) }),
    filename: t.exposeString("filename", { description: "File name (decoded)." }),
    contentType: t.exposeString("contentType", { description: "MIME type." }),
    sizeBytes: t.exposeInt("sizeBytes", { description: "Decoded size." }),
    contentId: t.exposeString("contentId", {
      nullable: true,
      description: "Content-ID for cid: references.",
    }),
    inline: t.exposeBoolean("inline", {
      description:
        "Shown inline in the HTML body: `html` keeps a cid: image naming this part's contentId, which `inlineHtml` " +
        "shows (the first part of each Content-ID). Its Content-Disposition alone does not make it inline; a " +
        "client that lists only parts not inline lists every file the body does not show.",
    }),
    sha256: t.exposeString("sha256", { description: "SHA-256 of the content (hex)." }),
    downloadPath: t.string({
      description: "GET this path on the server with the same Authorization header to download the bytes.",
      resolve: (a) => `/attachments/${a.id}`,
    }),
    signedDownloadPath: t.string({
      description:
        "A path that downloads the bytes without an Authorization header until it expires (for <img src> and " +
        "plain links). Anyone holding it can fetch the file until then; an expired link answers 410.",
      args: {
        expiresInSeconds: t.arg.int({
          description: `How long the link works: ${LINK_MIN_SECONDS}–${LINK_MAX_SECONDS} s (default ${LINK_DEFAULT_SECONDS}).`,
        }),
      },
      resolve: (a, args, ctx) =>
        signedAttachmentPath(
          ctx.engine,
          a,
          asGraphQLErrors(() => validateLinkLifetime(args.expiresInSeconds)),
        ),
    }),
  }),
});

const RejectedMessageRef = builder.objectRef<RejectedMessage>("RejectedMessage").implement({
  description: "Mail that did not become a message (oversize, unparseable, spam dropped, delivery report …).",
  fields: (t) => ({
    id: t.id({ description: "Global ID.", resolve: (r) => encodeId("RejectedMessage", r.id) }),
    reason: t.exposeString("reason", {
      description:
        "oversize, unparseable, timeout, too_many_parts, header_too_large, fetch_failed, spam_dropped, delivery_report …",
    }),
    detail: t.exposeString("detail", { description: "Human-readable details." }),
    sizeBytes: t.exposeInt("sizeBytes", { description: "Size of the raw message." }),
    messageIdHeader: t.exposeString("messageIdHeader", {
      nullable: true,
      description: "Message-ID, if known.",
    }),
    fromAddress: t.exposeString("fromAddress", { nullable: true, description: "Sender, if known." }),
    subject: t.exposeString("subject", { nullable: true, description: "Subject, if known." }),
    rawAvailable: t.boolean({
      description: "Whether the raw bytes were kept (not for oversize mail).",
      resolve: (r) => r.rawMessageId !== null,
    }),
    rawDownloadPath: t.string({
      nullable: true,
      description:
        "GET this path on the server with the same Authorization header (ADMIN) to download the raw original as message/rfc822, byte for byte as received. Null when the raw bytes were not kept (oversize mail).",
      resolve: (r) => (r.rawMessageId === null ? null : `/rejected-messages/${r.id}/raw`),
    }),
    receivedAt: t.expose("receivedAt", { type: "DateTime", description: "When it arrived." }),
    releasedAt: t.expose("releasedAt", {
      type: "DateTime",
      nullable: true,
      description: "When an admin released it into ingest (`releaseRejectedMessage`); null if not.",
    }),
  }),
});

const ConversationFilterInput = builder.inputType("ConversationFilter", {
  description: "Filters for `conversations`; all given ones must match.",
  fields: (t) => ({
    queueIds: t.idList({ description: "Only these queues (global IDs)." }),
    unrouted: t.boolean({
      description:
        "true: only conversations outside every queue (mail to an address without a routing target, or whose " +
        "queue was archived), which admins and supervisors without an access profile see and transfer by hand; " +
        "false: only those in a queue.",
    }),
    statuses: t.field({ type: [ConversationStatusEnum], description: "Only these statuses." }),
    workStates: t.field({ type: [WorkStateEnum], description: "Only these routing positions." }),
    contactId: t.id({ description: "Only this contact." }),
    assigneeId: t.id({ description: "Only conversations owned by this agent." }),
    ticketNumber: t.int({ description: "Exactly this ticket number." }),
    tags: t.stringList({ description: "Conversations carrying all these tags." }),
    text: t.string({
      description:
        "Conversations whose subject contains this text, or with a message whose subject or body has every word of it (docs/search.md).",
    }),
  }),
});

/**
 * `<lastActivityAt ISO>|<id>`, as `encodeConvCursor` makes it. Anything else is refused here:
 * a year PostgreSQL has no date for, or an id that is not a UUID, failed the query.
 */
const CONV_CURSOR =
  /^(\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z)\|([0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})$/i;

function decodeConvCursor(cursor: string | null | undefined) {
  if (cursor == null) return null;
  const m = CONV_CURSOR.exec(Buffer.from(cursor, "base64url").toString("latin1"));
  const d = new Date(m?.[1] ?? "");
  if (!m || Number.isNaN(d.getTime()) || d.getUTCFullYear() < 1) throw badCursor("after");
  return { at: d, id: m[2]!.toLowerCase() };
}

/** A filter's list of IDs, each one bound as a parameter: no more than `n` (PostgreSQL takes 65,535). */
function atMost<T>(list: readonly T[], n: number, field: string): readonly T[] {
  if (list.length > n) throw new ValidationError({ field, message: `at most ${n}` });
  return list;
}

/** Standard or URL-safe base64, padded or not, with line breaks: what `Buffer.from(s, "base64")` decodes whole. */
function isBase64(s: string): boolean {
  const compact = s.replace(/[\r\n\t ]+/g, "");
  return compact.length % 4 !== 1 && /^[A-Za-z0-9+/_-]*={0,2}$/.test(compact);
}

/** An event id, as the timeline's cursors hold it; at most 15 digits (a safe integer). */
function decodeEventCursor(cursor: string | null | undefined): number | null {
  if (cursor == null) return null;
  const text = Buffer.from(cursor, "base64url").toString("latin1");
  if (!/^\d{1,15}$/.test(text)) throw badCursor("after");
  return Number(text);
}
const UUID_TEXT = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;
const encodeConvCursor = (c: Conversation) =>
  Buffer.from(`${c.lastActivityAt.toISOString()}|${c.id}`).toString("base64url");

builder.queryFields((t) => ({
  conversations: t.withAuth({ authenticated: true }).connection({
    type: ConversationRef,
    description:
      "Conversations in the queues the caller may see (agents also see their own), most recent activity first.",
    args: { filter: t.arg({ type: ConversationFilterInput, description: "Optional filters." }) },
    resolve: async (_root, args, ctx) => {
      const f = args.filter ?? {};
      const first = forwardPageSize(args, PAGE_SIZES["Query.conversations"]);
      // A query has no result union: a bad ID or cursor is a coded GraphQL error.
      const [filter, after] = asGraphQLErrors(
        () =>
          [
            {
              queueIds: f.queueIds
                ? decodeIds(atMost(f.queueIds, 100, "queueIds").map(String), "Queue")
                : null,
              unrouted: f.unrouted ?? null,
              // Enum values: a list of them has at most a handful of distinct ones.
              statuses: f.statuses ? [...new Set(f.statuses)] : null,
              workStates: f.workStates ? [...new Set(f.workStates)] : null,
              contactId: f.contactId != null ? decodeId(String(f.contactId), "Contact") : null,
              assigneeId: f.assigneeId != null ? decodeId(String(f.assigneeId), "User") : null,
              ticketNumber: f.ticketNumber ?? null,
              tags: f.tags ?? null,
              text: f.text ?? null,
            },
            decodeConvCursor(args.after),
          ] as const,
      );
      const rows = await listConversations(ctx.engine, ctx.viewer, filter, { first, after });
      const page = rows.slice(0, first);
      return {
        edges: page.map((c) => ({ node: c, cursor: encodeConvCursor(c) })),
        pageInfo: {
          hasNextPage: rows.length > first,
          hasPreviousPage: !!args.after,
          startCursor: page[0] ? encodeConvCursor(page[0]) : null,
          endCursor: page.at(-1) ? encodeConvCursor(page.at(-1)!) : null,
        },
      };
    },
  }),
  conversationByTicket: t.withAuth({ authenticated: true }).field({
    type: ConversationRef,
    nullable: true,
    description: "The conversation with this ticket number, if the caller may see it.",
    args: { ticketNumber: t.arg.int({ required: true, description: "The ticket number." }) },
    resolve: async (_root, args, ctx) => {
      const [row] = await listConversations(
        ctx.engine,
        ctx.viewer,
        { ticketNumber: args.ticketNumber },
        { first: 1, after: null },
      );
      return row ?? null;
    },
  }),
  contacts: t.withAuth({ authenticated: true }).connection({
    type: ContactRef,
    description: "Contacts of the tenant, by email address.",
    args: { search: t.arg.string({ description: "Substring of email or name." }) },
    resolve: (_root, args, ctx) =>
      offsetConnection(args, (page) => listContacts(ctx.engine, ctx.viewer, { search: args.search }, page)),
  }),
  rejectedMessages: t.withAuth({ admin: true }).connection({
    type: RejectedMessageRef,
    description: "Rejected and quarantined mail with reasons, newest first. ADMIN only.",
    resolve: (_root, args, ctx) =>
      offsetConnection(args, (page) => listRejectedMessages(ctx.engine, ctx.viewer, page)),
  }),
}));

const IngestOutcomeRef = builder
  .objectRef<{ status: string; conversationId: string | null; reason: string | null; created: boolean }>(
    "IngestOutcome",
  )
  .implement({
    description: "What the pipeline did with an imported message.",
    fields: (t) => ({
      status: t.exposeString("status", {
        description: "stored, duplicate, rejected or report (a delivery report).",
      }),
      conversation: t.field({
        type: ConversationRef,
        nullable: true,
        description: "The conversation it was stored in, if stored.",
        resolve: (o, _a, ctx) =>
          o.conversationId
            ? getConversation(ctx.engine, ctx.viewer!, o.conversationId).catch(() => null)
            : null,
      }),
      created: t.exposeBoolean("created", { description: "Whether it opened a new conversation." }),
      reason: t.exposeString("reason", { nullable: true, description: "Why it was rejected, if it was." }),
    }),
  });

function ingestOutcomeOf(r: IngestResult) {
  switch (r.status) {
    case "stored":
      return { status: r.status, conversationId: r.conversationId, reason: null, created: r.created };
    case "rejected":
      return { status: r.status, conversationId: null, reason: r.reason, created: false };
    default:
      return { status: r.status, conversationId: null, reason: null, created: false };
  }
}

builder.mutationField("releaseRejectedMessage", (t) =>
  t.withAuth({ admin: true }).field({
    type: IngestOutcomeRef,
    description:
      "Releases dropped mail (reason spam_dropped or rule_dropped: a false positive) into ingest at its address " +
      "and original received time; spam is tagged instead of dropped and a rule's drop is ignored. The record " +
      "stays, marked released. ConflictError NOT_RELEASABLE / ALREADY_RELEASED. ADMIN only.",
    errors: { types: standardErrors },
    args: { id: t.arg.id({ required: true, description: "Global ID of the RejectedMessage." }) },
    resolve: async (_root, args, ctx) => {
      const { result: r } = await releaseRejectedMessage(
        ctx.engine,
        ctx.viewer,
        decodeId(String(args.id), "RejectedMessage"),
      );
      return ingestOutcomeOf(r);
    },
  }),
);

builder.mutationField("ingestRawMessage", (t) =>
  t.withAuth({ admin: true }).field({
    type: IngestOutcomeRef,
    description:
      "Feeds a raw RFC 822 message through the ingest pipeline as if it arrived at the address. For importers, " +
      "demos and tests. ADMIN only.",
    errors: { types: standardErrors },
    args: {
      addressId: t.arg.id({ required: true, description: "Global ID of the receiving email address." }),
      raw: t.arg.string({
        required: true,
        description: "The message: RFC 822 text, or base64 when `base64` is true.",
      }),
      base64: t.arg.boolean({
        description: "Whether `raw` is base64-encoded (for 8-bit or binary content).",
      }),
    },
    resolve: async (_root, args, ctx) => {
      // Node's decoder skips what is not base64: RFC 822 text sent with `base64: true` (a
      // client that forgot to encode) became a mail of binary junk.
      if (args.base64 && !isBase64(args.raw)) {
        throw new ValidationError({ field: "raw", message: "is not base64 (or send it with base64: false)" });
      }
      const raw = args.base64 ? Buffer.from(args.raw, "base64") : Buffer.from(args.raw, "utf8");
      const r = await ingestRaw(ctx.engine, ctx.viewer, {
        addressId: decodeId(String(args.addressId), "EmailAddress"),
        raw,
      });
      return ingestOutcomeOf(r);
    },
  }),
);

/**
 * Counts a message body against what one response may carry (`GRAPHQL_MAX_RESPONSE_BODY_MB`,
 * by default room for every body of the largest mail accepted) and returns it; over that,
 * RESPONSE_TOO_LARGE. One response is one request, or one event of a subscription (each
 * event runs with its own root value). The cost limit counts a body as one field, whatever
 * its size: until the fourth re-probe of session 16, one request repeating a 16.8 MB body
 * through `nodes(ids:)` built ~512 MB of response at 1 % of the cost limit, and with
 * `inlineHtml` (a new copy each) took the process past its heap.
 */
function spendBodyBytes(ctx: GraphQLContext, info: GraphQLResolveInfo, body: string): string {
  const key = (
    typeof info.rootValue === "object" && info.rootValue !== null ? info.rootValue : info.operation
  ) as object;
  const spent = (ctx.bodyBudget.spent.get(key) ?? 0) + body.length;
  ctx.bodyBudget.spent.set(key, spent);
  if (spent > ctx.bodyBudget.limit) {
    throw new GraphQLError(
      `This response would carry more than ${Math.round(ctx.bodyBudget.limit / 1024 / 1024)} MB of message bodies; ask for fewer messages at once`,
      { extensions: { code: "RESPONSE_TOO_LARGE" } },
    );
  }
  return body;
}
