import { sql } from "drizzle-orm";
import {
  bigint,
  bigserial,
  boolean,
  customType,
  date,
  index,
  integer,
  jsonb,
  pgTable,
  primaryKey,
  text,
  uniqueIndex,
  uuid,
} from "drizzle-orm/pg-core";
import type {
  ActorType,
  ConversationStatus,
  ImapAfterProcess,
  MessageDirection,
  OutboundStatus,
  WorkState,
} from "../../engine/domain.js";
import { autoReplyTemplate, emailAddress, mailAccount, queue } from "./channel.js";
import { emptyTextArray, emptyUuidArray, id, timestamps, tstz } from "./common.js";
import { tenant, user } from "./tenancy.js";

/**
 * The inserting transaction's id. Sequence ids are handed out at insert but transactions
 * commit in another order, so readers order by (tx_id, id) and read only below the
 * snapshot's xmin: every transaction that could still add a row there has ended.
 */
export const xid8 = customType<{ data: string; driverData: string }>({
  dataType: () => "xid8",
});

export const bytea = customType<{ data: Buffer; driverData: Buffer }>({
  dataType: () => "bytea",
});

/** A text-search document; only ever written and read in SQL (engine/search.ts). */
export const tsvector = customType<{ data: string; driverData: string }>({
  dataType: () => "tsvector",
});

/** One recipient of an outbound message refused by the relay (RFC 5321 §4.2 reply). */
export interface RecipientFailure {
  address: string;
  /** SMTP reply code (5yz permanent, 4yz temporary), null when unknown. */
  responseCode: number | null;
  reason: string;
}

export interface MailboxAddress {
  address: string;
  name: string;
}

export const contact = pgTable(
  "contact",
  {
    id: id(),
    tenantId: uuid("tenant_id")
      .notNull()
      .references(() => tenant.id, { onDelete: "cascade" }),
    /** Normalised (lower-case, trimmed) address. */
    email: text("email").notNull(),
    name: text("name").notNull().default(""),
    /** Last agent who handled this contact (SPEC §4 continuity, §8 preferred agent). */
    preferredAgentId: uuid("preferred_agent_id").references(() => user.id, { onDelete: "set null" }),
    preferredAgentAt: tstz("preferred_agent_at"),
    undeliverable: boolean("undeliverable").notNull().default(false),
    undeliverableReason: text("undeliverable_reason"),
    attributes: jsonb("attributes").$type<Record<string, string>>().notNull().default({}),
    ...timestamps(),
  },
  (t) => [uniqueIndex("contact_tenant_email_uq").on(t.tenantId, t.email)],
);

export const conversation = pgTable(
  "conversation",
  {
    id: id(),
    tenantId: uuid("tenant_id")
      .notNull()
      .references(() => tenant.id, { onDelete: "cascade" }),
    ticketNumber: bigint("ticket_number", { mode: "number" }).notNull(),
    subject: text("subject").notNull().default(""),
    status: text("status").$type<ConversationStatus>().notNull().default("NEW"),
    contactId: uuid("contact_id")
      .notNull()
      .references(() => contact.id, { onDelete: "restrict" }),
    /** The point of contact the conversation came in on (or goes out from). */
    addressId: uuid("address_id").references(() => emailAddress.id, { onDelete: "set null" }),
    queueId: uuid("queue_id").references(() => queue.id, { onDelete: "set null" }),
    requiredSkillIds: uuid("required_skill_ids").array().notNull().default(emptyUuidArray),
    language: text("language"),
    priority: integer("priority").notNull().default(0),
    tags: text("tags").array().notNull().default(emptyTextArray),
    spam: boolean("spam").notNull().default(false),
    /** Routing position, independent of status (see WorkState). */
    workState: text("work_state").$type<WorkState>().notNull().default("WAITING"),
    assigneeId: uuid("assignee_id").references(() => user.id, { onDelete: "set null" }),
    /** When it (re)entered the queue: the "minutes waiting" of the queue score. */
    enqueuedAt: tstz("enqueued_at"),
    offeredToId: uuid("offered_to_id").references(() => user.id, { onDelete: "set null" }),
    offerExpiresAt: tstz("offer_expires_at"),
    /** Agents who rejected or let an offer expire since it last entered the queue. */
    offerExcludedIds: uuid("offer_excluded_ids").array().notNull().default(emptyUuidArray),
    assignedAt: tstz("assigned_at"),
    /** Handle time: accumulated ms while ACTIVE, plus the running segment since activeSince. */
    handleTimeMs: bigint("handle_time_ms", { mode: "number" }).notNull().default(0),
    activeSince: tstz("active_since"),
    /** A conversation opened because the old one was closed past the reopen window. */
    previousConversationId: uuid("previous_conversation_id"),
    /** Received time of the first message: time-dependent rules use this, not processing time. */
    receivedAt: tstz("received_at").notNull(),
    lastInboundAt: tstz("last_inbound_at"),
    lastOutboundAt: tstz("last_outbound_at"),
    lastActivityAt: tstz("last_activity_at").notNull(),
    firstRespondedAt: tstz("first_responded_at"),
    statusChangedAt: tstz("status_changed_at").notNull(),
    resolvedAt: tstz("resolved_at"),
    closedAt: tstz("closed_at"),
    /** SLA clock state and deadlines (engine/time/sla). */
    slaPolicyId: uuid("sla_policy_id"),
    slaState: jsonb("sla_state").$type<Record<string, unknown>>(),
    firstResponseDueAt: tstz("first_response_due_at"),
    nextResponseDueAt: tstz("next_response_due_at"),
    resolutionDueAt: tstz("resolution_due_at"),
    slaBreached: boolean("sla_breached").notNull().default(false),
    /**
     * From when the conversation counts as at risk / breached in queue figures, until its
     * SLA state next changes (engine/time/sla `slaMarks`); null = not without a change.
     */
    slaAtRiskFrom: tstz("sla_at_risk_from"),
    slaBreachedFrom: tstz("sla_breached_from"),
    ...timestamps(),
  },
  (t) => [
    uniqueIndex("conversation_tenant_ticket_uq").on(t.tenantId, t.ticketNumber),
    index("conversation_waiting_idx")
      .on(t.tenantId, t.queueId, t.enqueuedAt)
      .where(sql`work_state = 'WAITING'`),
    index("conversation_assignee_idx").on(t.assigneeId).where(sql`assignee_id IS NOT NULL`),
    index("conversation_offered_to_idx").on(t.offeredToId).where(sql`offered_to_id IS NOT NULL`),
    // An agent's open work (routing's pass, queue figures): finished work keeps its owner,
    // so the indexes above read an agent's whole history for it — 4,300 rows per agent in
    // the scale probe of session 17, 50× slower routing passes at 100k conversations.
    index("conversation_open_assignee_idx")
      .on(t.assigneeId)
      .where(sql`work_state IN ('ACTIVE', 'PARKED', 'OFFERED')`),
    index("conversation_open_offered_to_idx")
      .on(t.offeredToId)
      .where(sql`work_state IN ('ACTIVE', 'PARKED', 'OFFERED')`),
    // A queue's unfinished work (queue figures): not its whole history.
    index("conversation_queue_open_idx").on(t.queueId).where(sql`work_state <> 'DONE'`),
    // The routing sweep's overdue offers, across tenants, every 30 s.
    index("conversation_offer_expiry_idx").on(t.offerExpiresAt).where(sql`work_state = 'OFFERED'`),
    // SPEC §8 "at most one active conversation per agent", enforced by the database as the
    // last line behind the routing locks.
    uniqueIndex("conversation_one_active_uq").on(t.assigneeId).where(sql`work_state = 'ACTIVE'`),
    index("conversation_contact_idx").on(t.contactId),
    index("conversation_tenant_status_idx").on(t.tenantId, t.status),
    index("conversation_tenant_activity_idx").on(t.tenantId, t.lastActivityAt),
    // The conversation list's text filter matches subjects as substrings (ILIKE): trigrams
    // (pg_trgm, with btree_gin for the tenant) find them without reading every
    // conversation of the tenant (migrations/0013, docs/search.md).
    index("conversation_subject_trgm_idx").using("gin", t.tenantId, t.subject.op("gin_trgm_ops")),
    // Retention (engine/retention.ts): the tenant's conversations closed before the cutoff,
    // oldest first, and the newer conversations that link to a purged one.
    index("conversation_closed_idx").on(t.tenantId, t.closedAt).where(sql`status = 'CLOSED'`),
    index("conversation_previous_idx")
      .on(t.previousConversationId)
      .where(sql`previous_conversation_id IS NOT NULL`),
  ],
);

export const rawMessage = pgTable("raw_message", {
  id: id(),
  tenantId: uuid("tenant_id")
    .notNull()
    .references(() => tenant.id, { onDelete: "cascade" }),
  sha256: text("sha256").notNull(),
  sizeBytes: integer("size_bytes").notNull(),
  /** The bytes exactly as received (or as sent), kept for audit and re-parsing. */
  data: bytea("data").notNull(),
  ...timestamps(),
});

export const message = pgTable(
  "message",
  {
    id: id(),
    tenantId: uuid("tenant_id")
      .notNull()
      .references(() => tenant.id, { onDelete: "cascade" }),
    conversationId: uuid("conversation_id")
      .notNull()
      .references(() => conversation.id, { onDelete: "cascade" }),
    direction: text("direction").$type<MessageDirection>().notNull(),
    /** RFC 5322 Message-ID without angle brackets; ours for outbound. */
    messageIdHeader: text("message_id_header"),
    inReplyTo: text("in_reply_to"),
    references: text("references").array().notNull().default(emptyTextArray),
    from: jsonb("from").$type<MailboxAddress | null>(),
    to: jsonb("to").$type<MailboxAddress[]>().notNull().default([]),
    cc: jsonb("cc").$type<MailboxAddress[]>().notNull().default([]),
    bcc: jsonb("bcc").$type<MailboxAddress[]>().notNull().default([]),
    replyTo: jsonb("reply_to").$type<MailboxAddress[]>().notNull().default([]),
    subject: text("subject").notNull().default(""),
    text: text("text").notNull().default(""),
    /** Sanitised HTML, safe to render; the original stays in raw_message. */
    html: text("html"),
    remoteResources: text("remote_resources").array().notNull().default(emptyTextArray),
    headers: jsonb("headers").$type<Record<string, string[]>>().notNull().default({}),
    parseWarnings: text("parse_warnings").array().notNull().default(emptyTextArray),
    /** Date header as the sender claimed it (may be absent or wrong). */
    dateHeader: tstz("date_header"),
    /** When we received it (inbound) or queued it (outbound). */
    receivedAt: tstz("received_at").notNull(),
    authorId: uuid("author_id").references(() => user.id, { onDelete: "set null" }),
    autoSubmitted: boolean("auto_submitted").notNull().default(false),
    isAutoReply: boolean("is_auto_reply").notNull().default(false),
    spam: boolean("spam").notNull().default(false),
    outboundStatus: text("outbound_status").$type<OutboundStatus>(),
    outboundError: text("outbound_error"),
    sendAttempts: integer("send_attempts").notNull().default(0),
    /** Recipients the relay refused at send time (RCPT TO reply), with its reply. */
    failedRecipients: jsonb("failed_recipients").$type<RecipientFailure[]>().notNull().default([]),
    sentAt: tstz("sent_at"),
    /** The address (point of contact) it came in on / goes out from. */
    addressId: uuid("address_id").references(() => emailAddress.id, { onDelete: "set null" }),
    accountId: uuid("account_id").references(() => mailAccount.id, { onDelete: "set null" }),
    /**
     * IMAP mail: the folder it was fetched from (`mail_account.imap_mailbox` then). The
     * IMAP position is (account, folder, UIDVALIDITY, UID): two folders may share a
     * UIDVALIDITY (RFC 3501), so without the folder another folder's UIDs would match.
     */
    imapMailbox: text("imap_mailbox"),
    uidValidity: bigint("uid_validity", { mode: "number" }),
    uid: bigint("uid", { mode: "number" }),
    contentHash: text("content_hash"),
    rawMessageId: uuid("raw_message_id").references(() => rawMessage.id, { onDelete: "set null" }),
    sizeBytes: integer("size_bytes").notNull().default(0),
    ...timestamps(),
  },
  (t) => [
    index("message_conversation_idx").on(t.conversationId, t.receivedAt),
    // The foreign key's ON DELETE SET NULL: without it, each raw row retention deletes read
    // every message of every tenant (190× slower purges in the scale probe, session 17).
    index("message_raw_message_idx").on(t.rawMessageId).where(sql`raw_message_id IS NOT NULL`),
    index("message_tenant_msgid_idx").on(t.tenantId, t.messageIdHeader),
    // Replies that arrived before the mail they answer (threading's `earlier-reply`).
    index("message_tenant_irt_idx")
      .on(t.tenantId, t.inReplyTo)
      .where(sql`in_reply_to IS NOT NULL AND direction = 'INBOUND'`),
    uniqueIndex("message_imap_uid_uq")
      .on(t.accountId, t.imapMailbox, t.uidValidity, t.uid)
      .where(sql`uid IS NOT NULL`),
    index("message_tenant_hash_idx").on(t.tenantId, t.contentHash),
    index("message_outbound_idx").on(t.outboundStatus).where(sql`outbound_status IS NOT NULL`),
  ],
);

/**
 * The text-search document of a message (subject and text), written by the search indexer
 * (engine/search.ts) after the message committed. Its own table, so the wide `message` row
 * is neither rewritten to add it nor read with it.
 */
export const messageSearch = pgTable(
  "message_search",
  {
    messageId: uuid("message_id")
      .primaryKey()
      .references(() => message.id, { onDelete: "cascade" }),
    tenantId: uuid("tenant_id").notNull(),
    /** The message's conversation (messages never move), so a search needs no join. */
    conversationId: uuid("conversation_id").notNull(),
    document: tsvector("document").notNull(),
  },
  (t) => [
    // The tenant is a key of the index (btree_gin, as for subjects): on the document alone
    // it was a filter, and a search read every tenant's matching documents — a small
    // tenant's beside a big one took 98–269 ms instead of 14–37 (scale probe, session 17).
    index("message_search_document_idx").using("gin", t.tenantId, t.document),
    index("message_search_conversation_idx").on(t.conversationId),
  ],
);

/**
 * Messages not yet in `message_search`: filled by a trigger on every insert into `message`
 * (migrations/0011), emptied by the indexer. One index and no key or foreign key, so an
 * insert costs the ingest transaction as little as a row can; a row whose message is gone
 * is dropped by the indexer, and a message queued twice is indexed twice, harmlessly.
 */
export const messageSearchQueue = pgTable(
  "message_search_queue",
  {
    messageId: uuid("message_id").notNull(),
    tenantId: uuid("tenant_id").notNull(),
    enqueuedAt: tstz("enqueued_at").notNull().defaultNow(),
  },
  (t) => [index("message_search_queue_enqueued_idx").on(t.enqueuedAt)],
);

export const attachment = pgTable(
  "attachment",
  {
    id: id(),
    tenantId: uuid("tenant_id")
      .notNull()
      .references(() => tenant.id, { onDelete: "cascade" }),
    messageId: uuid("message_id")
      .notNull()
      .references(() => message.id, { onDelete: "cascade" }),
    filename: text("filename").notNull(),
    contentType: text("content_type").notNull(),
    sizeBytes: integer("size_bytes").notNull(),
    contentId: text("content_id"),
    inline: boolean("inline").notNull().default(false),
    sha256: text("sha256").notNull(),
    data: bytea("data").notNull(),
    ...timestamps(),
  },
  (t) => [index("attachment_message_idx").on(t.messageId)],
);

/**
 * Files an auto-reply template carries (SPEC §9): up to 10 inline images (referenced from
 * its HTML as `cid:<contentId>`) and 10 attachments, 25 MB in total, of the allowed types.
 * Replaced as a whole when the template's attachments are updated.
 */
export const autoReplyAttachment = pgTable(
  "auto_reply_attachment",
  {
    id: id(),
    tenantId: uuid("tenant_id")
      .notNull()
      .references(() => tenant.id, { onDelete: "cascade" }),
    templateId: uuid("template_id")
      .notNull()
      .references(() => autoReplyTemplate.id, { onDelete: "cascade" }),
    /** Order in the template's list (and in the sent mail). */
    position: integer("position").notNull(),
    filename: text("filename").notNull(),
    contentType: text("content_type").notNull(),
    sizeBytes: integer("size_bytes").notNull(),
    /** Set for inline images: the HTML refers to `cid:<contentId>`. */
    contentId: text("content_id"),
    inline: boolean("inline").notNull().default(false),
    sha256: text("sha256").notNull(),
    data: bytea("data").notNull(),
    ...timestamps(),
  },
  (t) => [uniqueIndex("auto_reply_attachment_position_uq").on(t.templateId, t.position)],
);

/** Mail that was not turned into a message (oversize, unparseable, dropped): never silently lost. */
export const rejectedMessage = pgTable(
  "rejected_message",
  {
    id: id(),
    tenantId: uuid("tenant_id")
      .notNull()
      .references(() => tenant.id, { onDelete: "cascade" }),
    accountId: uuid("account_id").references(() => mailAccount.id, { onDelete: "set null" }),
    addressId: uuid("address_id").references(() => emailAddress.id, { onDelete: "set null" }),
    /** Machine-readable reason: oversize, unparseable, timeout, spam_dropped, rule_dropped, … */
    reason: text("reason").notNull(),
    detail: text("detail").notNull().default(""),
    sizeBytes: integer("size_bytes").notNull(),
    messageIdHeader: text("message_id_header"),
    /**
     * For mail without a Message-ID: the content key (`ParsedMail.contentHash`: SHA-256 of
     * the bytes after our own trace lines), by which the same mail delivered again is known
     * (ingest.ts `alreadyRejected`). Null where the Message-ID is the key, and for oversize
     * mail and parse timeouts.
     */
    contentHash: text("content_hash"),
    fromAddress: text("from_address"),
    subject: text("subject"),
    /** IMAP mail: the folder it was fetched from; part of the IMAP position (as on `message`). */
    imapMailbox: text("imap_mailbox"),
    uidValidity: bigint("uid_validity", { mode: "number" }),
    uid: bigint("uid", { mode: "number" }),
    /** Raw bytes when they could be kept (not for oversize mail beyond the cap). */
    rawMessageId: uuid("raw_message_id").references(() => rawMessage.id, { onDelete: "set null" }),
    receivedAt: tstz("received_at").notNull(),
    /** When an admin released it into ingest (dropped spam or a rule's drop), and the message it became. */
    releasedAt: tstz("released_at"),
    releasedMessageId: uuid("released_message_id"),
    ...timestamps(),
  },
  (t) => [
    index("rejected_message_tenant_idx").on(t.tenantId, t.receivedAt),
    // As message_raw_message_idx: the foreign key's ON DELETE SET NULL.
    index("rejected_message_raw_message_idx").on(t.rawMessageId).where(sql`raw_message_id IS NOT NULL`),
    // The de-duplication of rejections by Message-ID (ingest.ts `alreadyRejected`).
    index("rejected_message_msgid_idx")
      .on(t.tenantId, t.messageIdHeader)
      .where(sql`message_id_header IS NOT NULL`),
    // … and of those without one, by their content key.
    index("rejected_message_hash_idx").on(t.tenantId, t.contentHash).where(sql`content_hash IS NOT NULL`),
    uniqueIndex("rejected_message_imap_uid_uq")
      .on(t.accountId, t.imapMailbox, t.uidValidity, t.uid)
      .where(sql`uid IS NOT NULL`),
  ],
);

/** IMAP checkpoint, committed in the same transaction as the messages it covers. */
export const mailboxCheckpoint = pgTable(
  "mailbox_checkpoint",
  {
    id: id(),
    tenantId: uuid("tenant_id")
      .notNull()
      .references(() => tenant.id, { onDelete: "cascade" }),
    accountId: uuid("account_id")
      .notNull()
      .references(() => mailAccount.id, { onDelete: "cascade" }),
    mailbox: text("mailbox").notNull(),
    uidValidity: bigint("uid_validity", { mode: "number" }).notNull(),
    lastUid: bigint("last_uid", { mode: "number" }).notNull().default(0),
    /**
     * A resync after a UIDVALIDITY change is under way through this UID (the mailbox's
     * highest when the change was seen): mail up to it is fetched as a resync even after
     * an interruption. Null when none is.
     */
    resyncThroughUid: bigint("resync_through_uid", { mode: "number" }),
    /**
     * The first UID of the last committed batch: [batch_first_uid, last_uid] is the mail
     * whose server action (`batch_action`) may not have run yet when the process stopped.
     * Written with `last_uid`, in the same statement. The repair at the start of a session
     * covers only this range (connectors/imap.ts `repairAfterProcess`).
     */
    batchFirstUid: bigint("batch_first_uid", { mode: "number" }),
    /** The post-ingest action in force when that batch was committed; null: none known. */
    batchAction: text("batch_action").$type<ImapAfterProcess>(),
    ...timestamps(),
  },
  (t) => [uniqueIndex("mailbox_checkpoint_account_mailbox_uq").on(t.accountId, t.mailbox)],
);

/**
 * The append-only spine (ARCHITECTURE "Events are the spine"): every state change writes
 * one row in the same transaction; a statement trigger NOTIFYs on commit.
 */
export const event = pgTable(
  "event",
  {
    id: bigserial("id", { mode: "number" }).primaryKey(),
    tenantId: uuid("tenant_id")
      .notNull()
      .references(() => tenant.id, { onDelete: "cascade" }),
    conversationId: uuid("conversation_id"),
    queueId: uuid("queue_id"),
    /** The agent an event concerns (inbox/offer subscriptions), if any. */
    agentId: uuid("agent_id"),
    type: text("type").notNull(),
    actorType: text("actor_type").$type<ActorType>().notNull().default("SYSTEM"),
    actorId: uuid("actor_id"),
    payload: jsonb("payload").$type<Record<string, unknown>>().notNull().default({}),
    occurredAt: tstz("occurred_at").notNull(),
    createdAt: tstz("created_at").notNull().defaultNow(),
    txId: xid8("tx_id").notNull().default(sql`pg_current_xact_id()`),
  },
  (t) => [
    index("event_tx_idx").on(t.txId, t.id),
    index("event_tenant_tx_idx").on(t.tenantId, t.txId, t.id),
    index("event_conversation_idx").on(t.conversationId, t.id).where(sql`conversation_id IS NOT NULL`),
    // An agent's events in stream order: `myInbox` replays read only these.
    index("event_agent_idx").on(t.agentId, t.txId, t.id).where(sql`agent_id IS NOT NULL`),
  ],
);

/**
 * Per-agent routing counters, one row per agent, locked FOR UPDATE when capacity changes.
 * Which conversation is ACTIVE is not stored here: the conversation's work state is the
 * truth (one ACTIVE per agent by the partial unique index conversation_one_active_uq).
 */
export const agentState = pgTable("agent_state", {
  userId: uuid("user_id")
    .primaryKey()
    .references(() => user.id, { onDelete: "cascade" }),
  tenantId: uuid("tenant_id")
    .notNull()
    .references(() => tenant.id, { onDelete: "cascade" }),
  lastAssignedAt: tstz("last_assigned_at"),
  lastAutoDeliveredAt: tstz("last_auto_delivered_at"),
  /** Voice interruption: the conversation parked by interruptAgent, resumed by resumeAgent. */
  interruptedConversationId: uuid("interrupted_conversation_id"),
  interruptedAt: tstz("interrupted_at"),
  ...timestamps(),
});

/**
 * Automatic deliveries (assignments and offers made) from one queue to one agent on `day`
 * (the tenant-local date of the last increment; any other day counts as 0). Per (agent,
 * queue) because the daily auto-assign limit is a queue setting (SPEC §8; the vendors set
 * "at most N e-mails per agent per day" in the queue's auto-assign pane): an agent's
 * deliveries from queue A must not use up queue B's allowance.
 */
export const agentQueueDaily = pgTable(
  "agent_queue_daily",
  {
    userId: uuid("user_id")
      .notNull()
      .references(() => user.id, { onDelete: "cascade" }),
    queueId: uuid("queue_id")
      .notNull()
      .references(() => queue.id, { onDelete: "cascade" }),
    tenantId: uuid("tenant_id")
      .notNull()
      .references(() => tenant.id, { onDelete: "cascade" }),
    day: date("day").notNull(),
    count: integer("count").notNull(),
    ...timestamps(),
  },
  (t) => [primaryKey({ name: "agent_queue_daily_pk", columns: [t.userId, t.queueId] })],
);
