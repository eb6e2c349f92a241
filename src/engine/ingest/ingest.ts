import { createHash, randomUUID } from "node:crypto";
import { and, desc, eq, inArray, isNull, sql } from "drizzle-orm";
import { pipelinedTransaction, rawClient, type Tx } from "../../db/client.js";
import { insertRows, insertRowsInParts, rowFromJson } from "../../db/fast.js";
import {
  attachment,
  contact,
  conversation,
  emailAddress,
  mailboxCheckpoint,
  message,
  queue,
  rawMessage,
  rejectedMessage,
  rule,
  tenant,
} from "../../db/schema/index.js";
import type { EngineContext } from "../context.js";
import type { ConversationStatus, ImapAfterProcess, ThreadingMode } from "../domain.js";
import { NotFoundError } from "../errors.js";
import { appendEvents, type NewEvent } from "../events.js";
import { scheduleStatusTimer } from "../lifecycle.js";
import { isLiveQueue, liveQueues, type QueueRow } from "../live-queues.js";
import { metrics } from "../metrics.js";
import { scheduleAutoReply } from "../outbound/auto-reply-service.js";
import { retentionCutoff } from "../retention.js";
import type { CompiledRuleSet } from "../rules/compile.js";
import { evaluateRules } from "../rules/evaluate.js";
import { compileRuleRows, ruleInputOf } from "../rules/service.js";
import type { RuleEvaluation } from "../rules/types.js";
import { applyStatusToSla, recordInboundSla, startConversationSla } from "../sla.js";
import { clip } from "../text.js";
import { onInboundMail, statusAfterInbound } from "../time/lifecycle.js";
import { type Classification, classify, plainDeliveryStatus, reportActionOf } from "./classify.js";
import { decideDisplayName, normalizeEmailAddress, senderContact } from "./contact.js";
import type { ParsedMail, ParseOutcome } from "./parsed-mail.js";
import {
  decideThread,
  type MessageIdCandidate,
  type ThreadingLookups,
  type TicketCandidate,
  threadingLookups,
} from "./threading.js";

/**
 * Where a raw message came from. An IMAP position — account, folder, UIDVALIDITY, UID — is
 * a dedupe key and the checkpoint; the folder is part of it because two folders may share
 * a UIDVALIDITY (RFC 3501), so their UIDs say nothing without it.
 */
export type IngestSource =
  | { kind: "smtp"; mailFrom: string | null; rcptTo: string[] }
  | {
      kind: "imap";
      accountId: string;
      mailbox: string;
      uidValidity: number;
      uid: number;
      /** A resync under way through this UID (`mailbox_checkpoint.resync_through_uid`). */
      resyncThrough?: number | null;
      /**
       * The first UID of the batch this mail was fetched in, and the account's post-ingest
       * action then: recorded with the checkpoint (`batch_first_uid`, `batch_action`), they
       * bound the repair of a server action a stop or crash cut off to that batch.
       */
      batch?: { firstUid: number; action: ImapAfterProcess };
      /**
       * The server and login the mail was fetched with. The checkpoint is written only
       * while the account still names them (`advanceCheckpoint`): a worker that fetched
       * from a server the admin has since replaced must not move the new server's
       * checkpoint.
       */
      server?: ImapServer;
    }
  | { kind: "api"; userId: string };

/** Which server and login an IMAP position is on (`mail_account` imap_host, its port, imap_user). */
export interface ImapServer {
  host: string;
  port: number;
  user: string;
}

/** Thrown by the ingest of mail fetched with server settings the account no longer has. */
export class StaleImapServerError extends Error {
  constructor(accountId: string) {
    super(`mail account ${accountId} now names another IMAP server or login; this fetch is not committed`);
    this.name = "StaleImapServerError";
  }
}

export interface IngestInput {
  tenantId: string;
  /** The point of contact it was delivered to. */
  addressId: string;
  raw: Buffer;
  /**
   * Parsed outside the transaction (worker thread); a rejection is recorded, not thrown.
   * `ingest_failed` is what `quarantineMessage` passes for mail the database refused.
   */
  parsed:
    | ParseOutcome
    | {
        ok: false;
        reason: "ingest_failed";
        detail: string;
        sizeBytes: number;
        /** The parsed mail's content key and raw hash (`quarantineMessage`). */
        contentHash?: string;
        rawSha256?: string;
      };
  /** When we received it: time-dependent decisions use this, never the processing time. */
  receivedAt: Date;
  source: IngestSource;
  /**
   * An admin released this mail from the rejected records (`releaseRejectedMessage`): spam
   * is tagged instead of dropped, and a rule's drop is ignored (its other actions apply).
   */
  release?: boolean;
  /**
   * Fetched by an IMAP resync (a UIDVALIDITY change re-reads the whole mailbox). Mail
   * received before the tenant's retention period is passed over as a duplicate: it was
   * ingested before, and if it is no longer stored, retention purged it — it must not come
   * back as new work.
   */
  resync?: boolean;
}

export type IngestResult =
  | {
      status: "stored";
      conversationId: string;
      messageId: string;
      ticketNumber: number;
      created: boolean;
      queueId: string | null;
    }
  | { status: "duplicate"; messageId: string | null }
  | { status: "rejected"; rejectedId: string; reason: string }
  | { status: "report"; rejectedId: string; bouncedMessageIds: string[] };

type AddressRow = typeof emailAddress.$inferSelect;
type TenantRow = typeof tenant.$inferSelect;

/**
 * One inbound message, one transaction (ARCHITECTURE "The flow of one email"): raw stored,
 * de-duplicated, classified, threaded, placed in its queue, events written and — for IMAP —
 * the mailbox checkpoint advanced, all committed together. A crash anywhere before commit
 * leaves nothing behind and the checkpoint unmoved, so the message is fetched again; after
 * commit the (account, folder, UIDVALIDITY, UID) key makes a second fetch a no-op.
 */
export async function ingestMessage(ctx: EngineContext, input: IngestInput): Promise<IngestResult> {
  const [result] = await ingestMessages(ctx, [input]);
  return result!;
}

/**
 * Several messages in one transaction, in order, as if each were ingested alone — a later
 * one threads onto or de-duplicates against an earlier one exactly as it would after its
 * commit. For an IMAP backlog (one batch of UIDs): the begin, commit, fsync and checkpoint
 * write are paid once per batch instead of once per message. All or nothing: when one
 * message fails, nothing of the batch is committed and the checkpoint stays where it was —
 * the caller retries the messages one by one (so only the bad one fails).
 */
export async function ingestMessages(ctx: EngineContext, inputs: IngestInput[]): Promise<IngestResult[]> {
  // Each message's inserts are not awaited where they are sent: they are pipelined with the
  // next message's opening read and, after the last message, with the checkpoint and the
  // COMMIT (one round trip less per message). A failed insert aborts the transaction, so
  // every later statement fails with 25P02 and the COMMIT ends in a rollback — which
  // postgres.js reports as success: the inserts' own outcomes are therefore checked after
  // the transaction, and the first failure is what this throws. Nothing is signalled or
  // answered before that check.
  const pending: Promise<unknown>[] = [];
  const written = (writes: Promise<unknown>) => {
    writes.catch(() => {}); // checked below; an early rejection must not count as unhandled
    pending.push(writes);
  };
  const firstFailure = async (): Promise<unknown> => {
    for (const r of await Promise.allSettled(pending)) if (r.status === "rejected") return r.reason;
    return null;
  };
  let results: IngestResult[];
  try {
    // BEGIN goes out with the opening reads (pipelinedTransaction, db/client.ts).
    results = await pipelinedTransaction(ctx.db, async (tx) => {
      const out: IngestResult[] = [];
      const checkpoints = new Map<string, IngestInput>();
      await ingestEach(tx, ctx, inputs, out, checkpoints, written);
      // The checkpoint only moves forward within a UIDVALIDITY, so the batch's last UID per
      // mailbox is all there is to write.
      for (const input of checkpoints.values()) {
        if (input.source.kind === "imap") await advanceCheckpoint(tx, input.tenantId, input.source);
      }
      return out;
    });
  } catch (err) {
    throw (await firstFailure()) ?? err;
  }
  const failure = await firstFailure();
  if (failure) throw failure;
  results.forEach((r, i) => {
    metrics.ingested.inc({ source: inputs[i]!.source.kind, outcome: r.status });
  });
  const routed = new Set<string>();
  results.forEach((r, i) => {
    if (r.status !== "stored" || !r.queueId) return;
    const key = `${inputs[i]!.tenantId}:${r.queueId}`;
    if (routed.has(key)) return;
    routed.add(key);
    ctx.signals.routeQueue(inputs[i]!.tenantId, r.queueId, "demand");
  });
  ctx.hub.wake();
  return results;
}

async function ingestEach(
  tx: Tx,
  ctx: EngineContext,
  inputs: IngestInput[],
  out: IngestResult[],
  checkpoints: Map<string, IngestInput>,
  written: (writes: Promise<unknown>) => void,
): Promise<void> {
  // The opening reads of a batch go out together, ahead of its writes: what they read
  // (tenant, address, queues, rules, own addresses, an IMAP position) no batch message
  // changes, except the content dedupe — a message whose bytes' hash repeats an earlier
  // one's in the batch reads when its turn comes, after that one's inserts. (Threading
  // reads happen later, in turn, and see everything before them.)
  // Copies of one mail ingested at the same moment (two mailboxes fetched at once, SMTP to
  // two addresses on two connections) would both pass the content dedupe, each before the
  // other committed: the batch first locks what its duplicate checks look for. It goes out
  // ahead of them on the same connection, so they run only once the locks are held.
  const locks = lockDuplicateKeys(tx, inputs);
  if (locks) written(locks);
  const decide = async (input: IngestInput, read: Prefetched & SharedRead): Promise<void> => {
    const { tenant: t, address, ...pre } = read;
    if (!t || !address) throw new NotFoundError("EmailAddress", input.addressId);
    out.push(await ingestInTx(tx, ctx, t, address, input, pre, written));
    const src = input.source;
    if (src.kind === "imap") checkpoints.set(`${src.accountId}\n${src.mailbox}`, input);
  };
  if (inputs.length === 1) {
    // One message (SMTP, the admin import, a retry one by one): everything in one read,
    // and in the same round trip the draws of mail that opens a conversation whatever
    // the read finds (`drawAhead` without the address).
    const input = inputs[0]!;
    const read = openingRead(tx, input);
    read.catch(() => {}); // awaited just below; the draws must go out behind it first
    const drawn = drawAhead(tx, input, null, written);
    return decide(input, { ...(await read), ...drawn });
  }
  // A batch: what is the same for every message of an address (tenant, address, queues,
  // rules, own addresses) is read once per address; the duplicate checks per message.
  const shared = new Map<string, Promise<SharedRead>>();
  const sharedOf = (input: IngestInput): Promise<SharedRead> => {
    const key = `${input.tenantId}/${input.addressId}`;
    let read = shared.get(key);
    if (!read) {
      const withRules = inputs.some(
        (i) => i.parsed.ok && i.tenantId === input.tenantId && i.addressId === input.addressId,
      );
      read = sharedRead(tx, input.tenantId, input.addressId, withRules);
      read.catch(() => {}); // awaited in turn below; a failure then fails the batch
      shared.set(key, read);
    }
    return read;
  };
  const hashes = new Set<string>();
  const early = inputs.map((input) => {
    sharedOf(input);
    const hash = input.parsed.ok ? input.parsed.mail.contentHash : null;
    if (hash !== null && hashes.has(hash)) return null;
    if (hash !== null) hashes.add(hash);
    const read = duplicateRead(tx, input);
    read.catch(() => {}); // awaited in turn below; a failure then fails the batch
    return read;
  });
  // Once those reads are back (one round trip for the whole batch): a message that will
  // surely open a conversation — stored, not a duplicate, bounce or dropped spam, naming no
  // earlier message or ticket — needs nothing of the messages before it, so its contact
  // upsert and ticket number go out now, in message order, for all of them together. The
  // batch's inserts then follow one another without a round trip per message.
  const drawn: (Pick<Prefetched, "contact" | "ticket" | "replies"> | null)[] = [];
  for (const [i, input] of inputs.entries()) {
    const read = early[i];
    const { tenant: t, address } = await sharedOf(input);
    const duplicates = read ? await read : null;
    drawn.push(
      read && t && address && duplicates && !duplicates.imapDuplicate && !duplicates.contentDuplicate
        ? drawAhead(tx, input, address, written)
        : null,
    );
  }
  // Replies read ahead cannot see a reply earlier in this batch (not inserted yet): a
  // message answered by one reads them in turn instead.
  const repliedTo = new Set<string>();
  for (const [i, input] of inputs.entries()) {
    const mail = input.parsed.ok ? input.parsed.mail : null;
    const own = drawn[i];
    if (own?.replies && mail?.messageId && repliedTo.has(mail.messageId)) delete own.replies;
    if (mail?.inReplyTo) repliedTo.add(mail.inReplyTo);
  }
  for (const [i, input] of inputs.entries()) {
    const duplicates = await (early[i] ?? duplicateRead(tx, input));
    await decide(input, { ...(await sharedOf(input)), ...duplicates, ...drawn[i] });
  }
}

/**
 * Locks, until commit, the content-dedupe key (tenant + Message-ID, or the hash of mail
 * without one) of every message of a batch (a rejected one's by the Message-ID its header
 * names): a transaction ingesting a copy of one
 * of them waits for this one's commit, and its duplicate check then sees the stored
 * message. Taken in key order in one statement, so two batches never deadlock. Not awaited
 * (pipelined ahead of the reads); null when the batch has nothing to lock.
 */
function lockDuplicateKeys(tx: Tx, inputs: IngestInput[]): Promise<unknown> | null {
  const keys: string[] = [];
  for (const input of inputs) {
    const parsed = input.parsed;
    if (parsed.ok) {
      keys.push(`ingest-dedupe:${input.tenantId}:${parsed.mail.messageId ?? `#${parsed.mail.contentHash}`}`);
    } else {
      // A rejection is de-duplicated by its Message-ID, or without one by its content key
      // (`alreadyRejected`).
      const key = rejectionKeyOf(parsed);
      if (key.messageId) keys.push(`ingest-dedupe:${input.tenantId}:${key.messageId}`);
      else if (key.contentHash) keys.push(`ingest-dedupe:${input.tenantId}:#${key.contentHash}`);
    }
  }
  if (keys.length === 0) return null;
  // The lock calls are evaluated after the sort (PostgreSQL postpones volatile functions
  // of the select list past ORDER BY), i.e. in key order.
  return rawClient(tx)`
    SELECT pg_advisory_xact_lock(k) FROM (
      SELECT DISTINCT hashtextextended(key, 0) AS k FROM unnest(${keys}::text[]) AS key) d
    ORDER BY k`.execute();
}

/**
 * An error the message itself causes, so retrying it can never succeed: SQLSTATE class 22
 * (data exception: a value PostgreSQL cannot store), 23 (integrity constraint) or 54
 * (program limit exceeded: e.g. an index row too large). Connection loss, deadlocks,
 * serialization failures, a full disk or a bug of ours are not: those are retried.
 */
function isMessageDataError(err: unknown): boolean {
  for (let e: unknown = err, depth = 0; e && depth < 5; e = (e as { cause?: unknown }).cause, depth++) {
    const code = (e as { code?: unknown }).code;
    if (typeof code === "string" && /^(22|23|54)[0-9A-Z]{3}$/.test(code)) return true;
  }
  return false;
}

/**
 * Keeps a message the database refused (`isMessageDataError`) as a rejected record of
 * reason `ingest_failed` with its raw bytes and the error, and — for IMAP — moves the
 * checkpoint past it: one bad mail must not stall its mailbox (or, over SMTP, be refused
 * until the sender gives up and it is lost). Admins see it among rejected messages.
 * Mail that was being recorded as rejected already (unparseable, oversize, …) keeps its
 * reason, with the error added to the detail: only the record failed, not the mail.
 */
async function quarantineMessage(
  ctx: EngineContext,
  input: IngestInput,
  err: unknown,
): Promise<IngestResult> {
  const detail = (
    err instanceof Error ? (err.cause instanceof Error ? err.cause.message : err.message) : String(err)
  )
    .replaceAll("\u0000", "")
    .slice(0, 2000);
  ctx.log.error(
    { err, tenantId: input.tenantId, source: input.source.kind },
    "message quarantined: ingest refused it",
  );
  // Known by the content key, so the same mail refused again is one record. Nothing of its
  // header goes into the record: the database may be refusing just that (a value it
  // cannot hold, an index entry too large).
  const p = input.parsed;
  const parsed: IngestInput["parsed"] = p.ok
    ? {
        ok: false,
        reason: "ingest_failed",
        detail,
        sizeBytes: input.raw.length,
        contentHash: p.mail.contentHash,
        rawSha256: p.mail.rawSha256,
      }
    : ({
        ok: false,
        reason: p.reason,
        detail: `${p.detail}; the record of it failed without its header fields: ${detail}`.slice(0, 2000),
        sizeBytes: p.sizeBytes,
        ...(p.contentHash ? { contentHash: p.contentHash } : {}),
        ...("rawSha256" in p && p.rawSha256 ? { rawSha256: p.rawSha256 } : {}),
      } as IngestInput["parsed"]);
  return ingestMessage(ctx, { ...input, parsed });
}

/**
 * `ingestMessage`, with mail the database can never store (`isMessageDataError`)
 * quarantined instead of thrown; passing errors are thrown for the caller to retry. What
 * every entry point (SMTP, IMAP, the admin import) calls for one message.
 */
export async function ingestOrQuarantine(ctx: EngineContext, input: IngestInput): Promise<IngestResult> {
  try {
    return await ingestMessage(ctx, input);
  } catch (err) {
    if (!isMessageDataError(err)) throw err;
    return quarantineMessage(ctx, input, err);
  }
}

interface Prefetched {
  /** A stored or rejected message at the same IMAP position. */
  imapDuplicate: string | null;
  /** A stored message with the same Message-ID and bytes in the tenant. */
  contentDuplicate: string | null;
  ownAddresses: string[];
  /** The address's live routing and spam queues, by id (what a new conversation is placed in). */
  queues: Map<string, QueueRow>;
  /** The address's and tenant's rules, compiled; null without rules. */
  rules: CompiledRuleSet | null;
  /** Drawn ahead for mail that surely opens a conversation (`drawAhead`). */
  contact?: Promise<{ id: string; attributes: Record<string, string> }>;
  ticket?: Promise<number>;
  /** Read ahead with them: replies to this mail that arrived first (`earlierReplies`). */
  replies?: Promise<{ conversationId: string }[]>;
}

/**
 * The contact upsert and ticket number of mail that will surely open a conversation, sent
 * ahead so they need no round trip of their own; `ingestInTx` takes them from `Prefetched`
 * instead of drawing. "Surely": parsed, not a delivery report, not spam that may be dropped,
 * naming no earlier Message-ID or ticket number —
 * - in a batch, after its reads, with the `address` known: spam only when the address drops
 *   it, lookups in the address's threading mode (what `ingestInTx` will decide);
 * - for one message alone, with its opening read (`address` null): no spam at all, and
 *   nothing named even in REFERENCES_THEN_TICKET, which looks up everything TICKET_ONLY
 *   does and more. What that read can still turn up changes nothing for the draws: a
 *   duplicate (the upsert only touched the sender's contact row; the ticket number stays
 *   unused, as after any rollback) or a missing address (the transaction fails). Rules
 *   that drop the mail read the contact anyway.
 * Null for any other mail, which draws in turn. Both are checked after the transaction
 * (`written`), so a failure cannot pass unseen when the decision ends early.
 */
function drawAhead(
  tx: Tx,
  input: IngestInput,
  address: AddressRow | null,
  written: (writes: Promise<unknown>) => void,
): Pick<Prefetched, "contact" | "ticket" | "replies"> | null {
  // A resync may pass its mail over (`IngestInput.resync`): draw nothing for it.
  if (!input.parsed.ok || input.resync) return null;
  const mail = input.parsed.mail;
  // Own addresses only weigh on loop risks, not on bounce or spam.
  const cls = classifyInput(input, mail, []);
  if (cls.bounce || (cls.spam && (address === null || address.spamRouting === "DROP"))) return null;
  const lookups = lookupsOf(address?.threadingMode ?? "REFERENCES_THEN_TICKET", mail);
  if (!namesNothing(lookups)) return null;
  // A sender without a usable address gets a new contact (`upsertSender`), which must not
  // be made before the duplicate checks: each re-delivery of such mail left one behind.
  if (!senderContact(mail.from)) return null;
  const contact = upsertSender(tx, input.tenantId, mail);
  const ticket = nextTicketNumber(tx);
  written(contact);
  written(ticket);
  if (lookups.repliedBy === null) return { contact, ticket };
  const replies = earlierReplies(tx, input.tenantId, lookups.repliedBy);
  written(replies);
  return { contact, ticket, replies };
}

// The steps of a message's decision that `ingestInTx` takes and `drawAhead` foresees:
// one definition each, so the two cannot drift apart.

function classifyInput(input: IngestInput, mail: ParsedMail, ownAddresses: string[]): Classification {
  return classify(mail, {
    mailFrom: input.source.kind === "smtp" ? (input.source.mailFrom ?? "") : undefined,
    ownAddresses,
  });
}

function lookupsOf(mode: ThreadingMode, mail: ParsedMail) {
  return threadingLookups({
    mode,
    messageId: mail.messageId,
    inReplyTo: mail.inReplyTo,
    references: mail.references,
    subject: mail.subject,
  });
}

/**
 * Mail that names no earlier Message-ID or ticket number opens a conversation, unless a
 * reply to it arrived first (`decideThread`): then the number drawn for it stays unused, a
 * gap in the sequence as after any rollback.
 */
function namesNothing(lookups: ReturnType<typeof lookupsOf>): boolean {
  return lookups.messageIds.length === 0 && lookups.ticketNumbers.length === 0;
}

/**
 * The contact of the From mailbox (never Reply-To, which anyone can set), found or created.
 * Mail with no usable From address (none, a name only, `<>`) gets a contact of its own,
 * `unknown-<uuid>@invalid` with the name it gave: nothing says two such senders are one
 * person. Until session 16 they all shared one contact, `unknown@invalid`, and with it
 * their history, attributes (which rules read) and preferred agent (probe).
 */
function upsertSender(tx: Tx, tenantId: string, mail: ParsedMail) {
  const sender = senderContact(mail.from);
  if (sender) return upsertContact(tx, tenantId, sender.email, sender.displayName ?? "");
  const email = `unknown-${randomUUID()}@invalid`;
  return upsertContact(tx, tenantId, email, decideDisplayName(mail.from?.name, email) ?? "");
}

/** Whether a queue of the tenant is live; the address's prefetched live queues answer without a read. */
async function isLiveOrPrefetched(
  tx: Tx,
  tenantId: string,
  id: string,
  prefetched: Map<string, QueueRow>,
): Promise<boolean> {
  return prefetched.has(id) || (await isLiveQueue(tx, tenantId, id));
}

/**
 * The opening read of a message, one statement (hand-written: the hot path, see
 * src/db/fast.ts): the tenant and address rows, the dedupe lookups, the tenant's own
 * addresses, the address's live queues and its rules. Rows come back as JSON and are
 * mapped to exactly what drizzle's selects return.
 */
type Sql = ReturnType<typeof rawClient>;

// The parts of a message's opening read, as fragments: `openingRead` sends them all in one
// statement; a batch reads the shared ones once per address and the duplicate checks per
// message.

/** Every address (and From address) of the tenant: mail from them is not a customer's. */
const ownAddressesSql = (sql: Sql, tenantId: string) => sql`
  ARRAY(SELECT v.x FROM email_address a, LATERAL (VALUES (a.address), (a.from_address)) v(x)
        WHERE a.tenant_id = ${tenantId}::uuid AND v.x IS NOT NULL)`;

/**
 * The address's live routing and spam queues, as a JSON array, key-share locked until the
 * ingest commits: the same rule as `live-queues.ts`, in the opening read's one statement.
 */
const addressQueuesSql = (sql: Sql, tenantId: string, addressId: string) => sql`
  (SELECT coalesce(json_agg(q), '[]'::json) FROM (
    SELECT * FROM queue q
     WHERE q.tenant_id = ${tenantId}::uuid AND q.archived_at IS NULL
       AND q.id IN (SELECT a.queue_id FROM email_address a WHERE a.id = ${addressId}::uuid
                    UNION ALL SELECT a.spam_queue_id FROM email_address a WHERE a.id = ${addressId}::uuid)
       FOR KEY SHARE OF q) q)`;

/** The address's rules by position, then the tenant's (rules/service.ts ruleRowsForAddress). */
const addressRulesSql = (sql: Sql, tenantId: string, addressId: string, wanted: boolean) => sql`
  (SELECT coalesce(json_agg(r ORDER BY r.address_id IS NULL, r.position, r.created_at), '[]'::json) FROM rule r
    WHERE ${wanted}::boolean AND r.tenant_id = ${tenantId}::uuid
      AND (r.address_id = ${addressId}::uuid OR r.address_id IS NULL))`;

/**
 * The same IMAP position, stored or rejected (a re-fetch after a crash between commit and
 * flagging). The folder is part of it: another folder of the account with the same
 * UIDVALIDITY has UIDs 1..n too (until 2026-11-23 its mail was taken for duplicates).
 */
function imapDuplicateSql(sql: Sql, input: IngestInput) {
  if (input.source.kind !== "imap") return sql`NULL::uuid`;
  const { accountId, mailbox, uidValidity, uid } = input.source;
  return sql`
    (SELECT d.id FROM (
       SELECT m.id FROM message m WHERE m.account_id = ${accountId}::uuid
         AND m.imap_mailbox = ${mailbox}::text
         AND m.uid_validity = ${uidValidity}::bigint AND m.uid = ${uid}::bigint
       UNION ALL
       SELECT r.id FROM rejected_message r WHERE r.account_id = ${accountId}::uuid
         AND r.imap_mailbox = ${mailbox}::text
         AND r.uid_validity = ${uidValidity}::bigint AND r.uid = ${uid}::bigint
     ) d LIMIT 1)`;
}

/**
 * The same mail again: its Message-ID and the same authored content — another delivered
 * copy (to another of our addresses) or a re-delivery — or, for mail that has no
 * Message-ID, the same bytes (a UIDVALIDITY resync or an SMTP retry after a lost reply
 * re-delivers exactly the same message; two different deliveries differ in their trace
 * headers). See `ParsedMail.contentHash`. Messages stored while the key was the raw
 * bytes' hash for all mail (until 2026-11-22) hold that hash: an exact re-delivery of one
 * of them still matches it, through `rawSha256`.
 */
function contentDuplicateSql(sql: Sql, input: IngestInput) {
  if (!input.parsed.ok) return sql`NULL::uuid`;
  const mail = input.parsed.mail;
  // One statement text per case, each with every column of an index it can use in its
  // conditions: these statements are prepared, and a generic plan made while the table
  // was small (a new tenant's first IMAP backlog) picked message_tenant_msgid_idx on
  // tenant_id alone when the Message-ID test was a CASE — a scan of all the tenant's
  // messages for every message (docs/ingest.md "The duplicate checks' plans").
  if (mail.messageId === null) {
    // No Message-ID: the key is the raw bytes' hash (contentHash === rawSha256).
    return sql`
      (SELECT m.id FROM message m
        WHERE m.tenant_id = ${input.tenantId}::uuid AND m.content_hash = ${mail.contentHash}::text
          AND m.message_id_header IS NULL AND m.direction = 'INBOUND'
        LIMIT 1)`;
  }
  return sql`
    (SELECT m.id FROM message m
      WHERE m.tenant_id = ${input.tenantId}::uuid AND m.message_id_header = ${mail.messageId}::text
        AND m.content_hash IN (${mail.contentHash}::text, ${mail.rawSha256}::text)
      LIMIT 1)`;
}

/** What every message of an address shares, as the columns tenant, address, own, queues, rules. */
const sharedColumnsSql = (sql: Sql, tenantId: string, addressId: string, withRules: boolean) => sql`
  (SELECT row_to_json(t) FROM tenant t WHERE t.id = ${tenantId}::uuid) AS tenant,
  (SELECT row_to_json(a) FROM email_address a
    WHERE a.id = ${addressId}::uuid AND a.tenant_id = ${tenantId}::uuid) AS address,
  ${ownAddressesSql(sql, tenantId)} AS own,
  ${addressQueuesSql(sql, tenantId, addressId)} AS queues,
  ${addressRulesSql(sql, tenantId, addressId, withRules)} AS rules`;

interface SharedRow {
  tenant: Record<string, unknown> | null;
  address: Record<string, unknown> | null;
  own: string[];
  queues: Record<string, unknown>[];
  rules: Record<string, unknown>[];
}

type SharedRead = Omit<Prefetched, "imapDuplicate" | "contentDuplicate"> & {
  tenant: TenantRow | null;
  address: AddressRow | null;
};

async function sharedFromRow(tx: Tx, tenantId: string, row: SharedRow): Promise<SharedRead> {
  const queues = (row.queues ?? []).map((q) => rowFromJson(queue, q));
  const ruleRows = (row.rules ?? []).map((r) => rowFromJson(rule, r));
  return {
    tenant: row.tenant ? rowFromJson(tenant, row.tenant) : null,
    address: row.address ? rowFromJson(emailAddress, row.address) : null,
    ownAddresses: row.own,
    queues: new Map(queues.map((q) => [q.id, q])),
    rules: ruleRows.length > 0 ? await compileRuleRows(tx, tenantId, ruleRows) : null,
  };
}

/** Everything one message needs before deciding anything, in one statement. */
async function openingRead(tx: Tx, input: IngestInput): Promise<Prefetched & SharedRead> {
  const { tenantId, addressId } = input;
  const sql = rawClient(tx);
  const [row] = await sql<(SharedRow & { imap_dup: string | null; content_dup: string | null })[]>`
    SELECT ${sharedColumnsSql(sql, tenantId, addressId, input.parsed.ok)},
      ${imapDuplicateSql(sql, input)} AS imap_dup, ${contentDuplicateSql(sql, input)} AS content_dup`;
  return {
    ...(await sharedFromRow(tx, tenantId, row!)),
    imapDuplicate: row!.imap_dup,
    contentDuplicate: row!.content_dup,
  };
}

/** `openingRead` without the duplicate checks: what every message of an address shares in a batch. */
async function sharedRead(
  tx: Tx,
  tenantId: string,
  addressId: string,
  withRules: boolean,
): Promise<SharedRead> {
  const sql = rawClient(tx);
  const [row] = await sql<SharedRow[]>`
    SELECT ${sharedColumnsSql(sql, tenantId, addressId, withRules)}`;
  return sharedFromRow(tx, tenantId, row!);
}

/**
 * The duplicate checks of `openingRead` alone, as a statement (a batch's message; the rest
 * is shared). Exported for the test of its plans (test/integration/ingest-plans.test.ts).
 */
export function duplicateChecks(sql: Sql, input: IngestInput) {
  return sql<{ imap_dup: string | null; content_dup: string | null }[]>`
    SELECT ${imapDuplicateSql(sql, input)} AS imap_dup, ${contentDuplicateSql(sql, input)} AS content_dup`;
}

async function duplicateRead(
  tx: Tx,
  input: IngestInput,
): Promise<Pick<Prefetched, "imapDuplicate" | "contentDuplicate">> {
  const [row] = await duplicateChecks(rawClient(tx), input);
  return { imapDuplicate: row!.imap_dup, contentDuplicate: row!.content_dup };
}

/** The IMAP position columns of a message or rejected row (all null for other sources). */
type ImapPosition = { imapMailbox: string | null; uidValidity: number | null; uid: number | null };

async function ingestInTx(
  tx: Tx,
  ctx: EngineContext,
  t: TenantRow,
  address: AddressRow,
  input: IngestInput,
  pre: Prefetched,
  written: (writes: Promise<unknown>) => void,
): Promise<IngestResult> {
  const { source, receivedAt, parsed } = input;
  const accountId = source.kind === "imap" ? source.accountId : address.accountId;

  // 1. The same IMAP position twice (a re-fetch after a crash between commit and flagging).
  if (pre.imapDuplicate) return { status: "duplicate", messageId: pre.imapDuplicate };

  // Written on every row this mail becomes (message or rejected record).
  const imapPos: ImapPosition =
    source.kind === "imap"
      ? { imapMailbox: source.mailbox, uidValidity: source.uidValidity, uid: source.uid }
      : { imapMailbox: null, uidValidity: null, uid: null };

  // 2. Unparseable, oversize, timed out: kept as a rejected record with its reason, never lost.
  if (!parsed.ok) {
    const headline = "headline" in parsed ? parsed.headline : undefined;
    const key = rejectionKeyOf(parsed);
    if (await alreadyRejected(tx, t.id, key, parsed.reason)) {
      return { status: "duplicate", messageId: null };
    }
    // Oversize mail is not stored: holding it is the very cost the limit prevents.
    // Oversize mail keeps no bytes; mail the server failed to deliver has none.
    const rawId =
      parsed.reason === "oversize" || parsed.reason === "fetch_failed"
        ? null
        : await storeRaw(tx, t.id, input);
    const [rej] = await tx
      .insert(rejectedMessage)
      .values({
        tenantId: t.id,
        accountId,
        addressId: address.id,
        reason: parsed.reason,
        detail: parsed.detail.slice(0, 2000),
        sizeBytes: parsed.sizeBytes,
        messageIdHeader: key.messageId,
        contentHash: key.contentHash,
        fromAddress: headline?.from ?? null,
        subject: headline?.subject ?? null,
        rawMessageId: rawId,
        receivedAt,
        ...imapPos,
      })
      .returning({ id: rejectedMessage.id });
    await appendEvents(tx, [
      {
        tenantId: t.id,
        type: "message.rejected",
        occurredAt: ctx.clock.now(),
        payload: {
          rejectedId: rej!.id,
          reason: parsed.reason,
          detail: parsed.detail.slice(0, 500),
          addressId: address.id,
        },
      },
    ]);
    return { status: "rejected", rejectedId: rej!.id, reason: parsed.reason };
  }

  const mail = parsed.mail;

  // 3. One mail sent to several of our addresses (or re-fetched after a UIDVALIDITY change)
  //    is one message: same Message-ID and same bytes within the tenant.
  if (pre.contentDuplicate) return { status: "duplicate", messageId: pre.contentDuplicate };
  //    A resync's mail from before the retention period that is not stored (see
  //    `IngestInput.resync`): most likely purged by retention, so not new work — but in
  //    case it never was stored, it is recorded (with its raw bytes, releasable), not lost.
  if (
    input.resync &&
    t.retentionDays !== null &&
    receivedAt < retentionCutoff(ctx.clock.now(), t.retentionDays)
  ) {
    const now = ctx.clock.now();
    return recordRejection(
      tx,
      ctx,
      t.id,
      address,
      // Recorded now: the record lasts a retention period from today, not from the mail.
      { ...input, receivedAt: now },
      mail,
      "expired",
      `received ${receivedAt.toISOString()}, before the retention period of ${t.retentionDays} days; ` +
        "a mailbox resync found it and it is not stored here (retention purged it, or it never came in)",
      imapPos,
    );
  }

  const cls = classifyInput(input, mail, pre.ownAddresses);

  // 4. Delivery reports never open conversations (RFC 3464); they mark what they report on.
  if (cls.bounce) return recordDeliveryReport(tx, ctx, t.id, address, input, mail, cls, imapPos);

  // 5. Spam per the address's policy; a drop is still recorded.
  let queueId = address.queueId;
  const tags: string[] = [];
  if (cls.spam) {
    if (address.spamRouting === "DROP" && !input.release) {
      return recordRejection(
        tx,
        ctx,
        t.id,
        address,
        input,
        mail,
        "spam_dropped",
        cls.spamReason ?? "",
        imapPos,
      );
    }
    if (address.spamRouting === "QUEUE" && address.spamQueueId) queueId = address.spamQueueId;
    tags.push("spam");
  }

  // 6. The contact: the From mailbox (never Reply-To, which anyone can set).
  // 7. Threading. Both go out together (pipelined on the transaction's connection).
  const sender = senderContact(mail.from);
  const lookups = lookupsOf(address.threadingMode, mail);
  // Mail that names no earlier message or ticket opens a conversation: its ticket number
  // is drawn in this round trip too (a threaded reply draws none).
  const surelyNew = namesNothing(lookups);
  // (Mail that surely opens a conversation may have drawn both ahead: `drawAhead`.)
  const [sent, { byMessageId, byTicket, byReply }, earlyTicket] = await Promise.all([
    pre.contact ?? upsertSender(tx, t.id, mail),
    threadCandidates(tx, t.id, lookups, pre.replies, sender?.email ?? null),
    surelyNew ? (pre.ticket ?? nextTicketNumber(tx)) : null,
  ]);
  const contactId = sent.id;
  const decision = decideThread({
    mode: address.threadingMode,
    inReplyTo: mail.inReplyTo,
    references: mail.references,
    subject: mail.subject,
    candidatesByMessageId: byMessageId,
    candidatesByTicket: byTicket,
    candidatesByReply: byReply,
    senderEmail: sender?.email ?? null,
  });

  const now = ctx.clock.now();
  // A conversation waits from when its mail was received, not from when it was processed:
  // mail held back (processing limit, an outage, an IMAP backlog) keeps its place in the
  // queue order (priority + minutes waiting). Never in the future (a skewed Date header
  // is not the source of receivedAt, but a mail server's clock may be).
  const waitingSince = receivedAt < now ? receivedAt : now;
  const events: NewEvent[] = [];
  let conv: typeof conversation.$inferSelect | undefined;
  let created = false;
  let previousConversationId: string | null = null;
  // The conversation's state before this mail: what the auto-reply trigger is decided on.
  let before: { status: ConversationStatus; lastActivityAt: Date } | null = null;

  if (decision.kind === "existing") {
    [conv] = await tx
      .select()
      .from(conversation)
      .where(and(eq(conversation.id, decision.conversationId), eq(conversation.tenantId, t.id)))
      .for("update");
  }
  if (conv) {
    before = { status: conv.status, lastActivityAt: conv.lastActivityAt };
    // An automatic reply (RFC 3834: out of office, vacation) joins its conversation as it
    // is: it reopens, reactivates or requeues nothing, starts no SLA target, and does not
    // count as the customer writing — else every out-of-office answer to an agent's
    // reply would hand finished work back to the queue, or open new work after the window.
    const automatic = cls.autoSubmitted;
    const reopen = { reopenEnabled: t.reopenEnabled, reopenWindowDays: t.reopenWindowDays };
    let effect = automatic ? "SAME" : onInboundMail(conv.status, conv.closedAt, receivedAt, reopen);
    // Past the reopen window, the customer's first mail started a new conversation linked
    // to this one; their next mails (sent before anyone answered from the new ticket, so
    // still naming this one) go to that follow-up instead of opening one each: joined while
    // it is open, reopened inside its own window once it is closed, and past that window
    // the chain goes on from the newest. Until session 16 a CLOSED follow-up was passed
    // over, and every further reply to the old mail opened yet another conversation (probe).
    // The chain is read in one statement (`followUpChain`, each link the newest one linked
    // to the one before; its first walk stopped after 20 links, re-probe); the member that
    // takes the mail is then locked, and read again after the lock: a mail that waited on it
    // sees the follow-up the other one opened, so two such mails at once open one.
    for (let rounds = 0; effect === "NEW_LINKED" && rounds < 100; rounds++) {
      const links = await followUpChain(tx, t.id, conv.id);
      if (links.length === 0) break;
      const target =
        links.find((l) => onInboundMail(l.status, l.closedAt, receivedAt, reopen) !== "NEW_LINKED") ??
        links.at(-1)!;
      const [row] = await tx
        .select()
        .from(conversation)
        .where(and(eq(conversation.id, target.id), eq(conversation.tenantId, t.id)))
        .for("update");
      if (!row) break;
      conv = row;
      before = { status: conv.status, lastActivityAt: conv.lastActivityAt };
      effect = onInboundMail(conv.status, conv.closedAt, receivedAt, reopen);
    }
    if (effect === "NEW_LINKED") {
      previousConversationId = conv.id;
      conv = undefined;
    } else {
      const next = statusAfterInbound(conv.status, effect) ?? conv.status;
      const ownerless = conv.assigneeId === null && conv.offeredToId === null;
      // A reply on a finished or ownerless conversation puts it back in the queue.
      const requeue = !automatic && ownerless && (conv.workState === "DONE" || conv.workState === "WAITING");
      // Its queue archived since (or it never had one): the address's live queue takes it.
      let requeueTo = conv.queueId;
      if (requeue && !(conv.queueId && (await isLiveOrPrefetched(tx, t.id, conv.queueId, pre.queues)))) {
        requeueTo = fallbackQueue(address, conv.spam, pre.queues)?.id ?? null;
      }
      const [updated] = await tx
        .update(conversation)
        .set({
          status: next,
          ...(automatic ? {} : { lastInboundAt: receivedAt, lastActivityAt: now }),
          ...(next !== conv.status
            ? {
                statusChangedAt: now,
                ...(next === "REOPENED" || next === "ACTIVE" ? { closedAt: null, resolvedAt: null } : {}),
              }
            : {}),
          ...(requeue
            ? {
                workState: "WAITING" as const,
                enqueuedAt: conv.workState === "WAITING" ? conv.enqueuedAt : waitingSince,
                ...(requeueTo !== conv.queueId ? { queueId: requeueTo } : {}),
              }
            : {}),
          ...(tags.length
            ? { tags: sql`array(SELECT DISTINCT unnest(${conversation.tags} || ${tags}::text[]))` }
            : {}),
        })
        .where(eq(conversation.id, conv.id))
        .returning();
      events.push({
        tenantId: t.id,
        type: "conversation.threaded",
        conversationId: conv.id,
        queueId: conv.queueId,
        occurredAt: now,
        payload:
          decision.kind === "existing"
            ? {
                via: decision.via,
                matched: decision.matched,
                senderIsMember: decision.senderIsMember,
                ...(automatic ? { automatic: true } : {}),
              }
            : {},
      });
      if (next !== conv.status) {
        events.push(statusEvent(t.id, conv, conv.status, next, now, effect));
      }
      if (requeue && requeueTo && (conv.workState === "DONE" || requeueTo !== conv.queueId)) {
        events.push({
          tenantId: t.id,
          type: "conversation.queued",
          conversationId: conv.id,
          queueId: requeueTo,
          occurredAt: now,
          payload: {
            reason: "customer-reply",
            ...(requeueTo !== conv.queueId
              ? { previousQueueId: conv.queueId, previousQueue: conv.queueId ? "archived" : "none" }
              : {}),
          },
        });
      } else if (requeue && !requeueTo && conv.workState === "DONE") {
        events.push(unroutedEvent(t.id, conv.id, conv.queueId, now));
      }
      const statusChanged = next !== conv.status;
      conv = updated!;
      // SLA: a reactivated conversation's clock runs again; the message may start a next-response target.
      if (statusChanged) await applyStatusToSla(tx, ctx, conv.id, next, now);
      if (!automatic) {
        await recordInboundSla(tx, ctx, conv.id, receivedAt);
        await scheduleStatusTimer(tx, ctx, conv, {
          activeToPausedDays: t.activeToPausedDays,
          pausedToClosedDays: t.pausedToClosedDays,
          resolvedToClosedDays: t.resolvedToClosedDays,
        });
      }
    }
  }

  // 8. Rules (SPEC §7) decide the route of mail that opens a conversation, evaluated at
  //    the time it was *received* so a backlog never changes where it goes. Replies keep
  //    their conversation's route.
  let ruling: RuleEvaluation | null = null;
  if (!conv) {
    const compiled = pre.rules;
    if (compiled) {
      ruling = evaluateRules(
        compiled,
        ruleInputOf(mail, {
          spam: cls.spam,
          language: address.language,
          contactAttributes: sent.attributes,
          receivedAt,
        }),
      );
      if (ruling.outcome.dropped && !input.release) {
        const by = ruling.matched.at(-1);
        const res = await recordRejection(
          tx,
          ctx,
          t.id,
          address,
          input,
          mail,
          "rule_dropped",
          `dropped by rule ${JSON.stringify(by?.name ?? "")}`,
          imapPos,
        );
        if (res.status === "duplicate") return res;
        await appendEvents(tx, ruleEvents(t.id, null, null, ruling, receivedAt, now));
        return res;
      }
      if (ruling.outcome.queueId) queueId = ruling.outcome.queueId;
      for (const tag of ruling.outcome.tags) if (!tags.includes(tag)) tags.push(tag);
    }
  }

  // The rows written below get their ids here, so the inserts that refer to each other go
  // out together in one pipelined round trip. The driver does not promise the order they
  // reach the server in, so the references among them (message → conversation, raw
  // message; attachment → message) are DEFERRABLE INITIALLY DEFERRED (migration 0006) and
  // checked at commit; a failing insert aborts the transaction as before.
  const raw = rawRow(t.id, input);
  const messageRowId = randomUUID();
  const writes: Promise<unknown>[] = [];
  // Inserts that may carry a value large enough to go in parts (db/fast.ts).
  const byParts = [insertRowsInParts(rawClient(tx), rawMessage, [raw])];
  // What the rest needs of the conversation, new or threaded.
  let c: { id: string; queueId: string | null; ticketNumber: number };
  let queueRow: QueueRow | null = null;
  if (!conv) {
    // A queue chosen by a rule is usually not one of the address's prefetched queues.
    const [candidates, ticket] = await Promise.all([
      queueId && !pre.queues.has(queueId) ? liveQueues(tx, t.id, [queueId]) : pre.queues,
      earlyTicket ?? nextTicketNumber(tx),
    ]);
    // The queue asked for (a rule's, the spam queue, the address's) may have been archived
    // since: the next of the address's own live queues takes the mail rather than none.
    const requested = queueId;
    queueRow = (queueId && candidates.get(queueId)) || null;
    if (!queueRow && queueId) queueRow = fallbackQueue(address, cls.spam, pre.queues);
    queueId = queueRow?.id ?? null;
    const values = {
      id: randomUUID(),
      tenantId: t.id,
      ticketNumber: ticket,
      subject: clip(mail.subject, 998),
      status: "NEW" as const,
      contactId,
      addressId: address.id,
      queueId,
      requiredSkillIds: ruledSkills(address.requiredSkillIds, ruling),
      language: ruling?.outcome.language ?? address.language,
      priority: ruling?.outcome.priority ?? address.priority ?? queueRow?.defaultPriority ?? 0,
      tags,
      spam: cls.spam,
      workState: "WAITING" as const,
      enqueuedAt: waitingSince,
      previousConversationId,
      receivedAt,
      lastInboundAt: receivedAt,
      lastActivityAt: now,
      statusChangedAt: now,
    };
    writes.push(insertRows(rawClient(tx), conversation, [values]).execute());
    c = { id: values.id, queueId, ticketNumber: ticket };
    created = true;
    events.push({
      tenantId: t.id,
      type: "conversation.created",
      conversationId: c.id,
      queueId,
      occurredAt: now,
      payload: {
        ticketNumber: ticket,
        addressId: address.id,
        previousConversationId,
        rejectedThreadMatches: decision.rejected,
      },
    });
    if (ruling) events.push(...ruleEvents(t.id, c.id, queueId, ruling, receivedAt, now));
    if (queueId) {
      events.push({
        tenantId: t.id,
        type: "conversation.queued",
        conversationId: c.id,
        queueId,
        occurredAt: now,
        payload: {
          reason: "new",
          priority: values.priority,
          requiredSkillIds: values.requiredSkillIds,
          language: values.language,
          spam: cls.spam,
          ...(requested !== queueId ? { requestedQueueId: requested, requestedQueue: "archived" } : {}),
        },
      });
    } else {
      events.push(unroutedEvent(t.id, c.id, requested, now));
    }
  } else {
    c = { id: conv.id, queueId: conv.queueId, ticketNumber: conv.ticketNumber };
  }

  const html = parsed.sanitized;
  writes.push(
    insertRows(rawClient(tx), message, [
      {
        id: messageRowId,
        tenantId: t.id,
        conversationId: c.id,
        direction: "INBOUND",
        messageIdHeader: mail.messageId,
        inReplyTo: mail.inReplyTo,
        references: mail.references.slice(-100),
        from: mail.from,
        to: mail.to,
        cc: mail.cc,
        replyTo: mail.replyTo,
        subject: clip(mail.subject, 998),
        text: mail.text,
        html: html?.html ?? null,
        remoteResources: html?.remoteResources ?? [],
        headers: mail.headers as Record<string, string[]>,
        parseWarnings: mail.warnings,
        dateHeader: mail.date,
        receivedAt,
        autoSubmitted: cls.autoSubmitted,
        spam: cls.spam,
        addressId: address.id,
        accountId,
        ...imapPos,
        contentHash: mail.contentHash,
        rawMessageId: raw.id,
        sizeBytes: mail.sizeBytes,
      },
    ]).execute(),
  );
  if (mail.attachments.length > 0) {
    byParts.push(
      insertRowsInParts(
        rawClient(tx),
        attachment,
        mail.attachments.map((a, i) => ({
          id: randomUUID(),
          tenantId: t.id,
          messageId: messageRowId,
          filename: a.filename ?? `attachment-${i + 1}`,
          contentType: a.contentType,
          sizeBytes: a.size,
          contentId: a.contentId,
          inline: a.inline,
          sha256: a.sha256,
          data: a.content,
        })),
      ),
    );
  }
  events.unshift({
    tenantId: t.id,
    type: "message.received",
    conversationId: c.id,
    queueId: c.queueId,
    actorType: "CONTACT",
    occurredAt: now,
    payload: {
      messageId: messageRowId,
      from: mail.from?.address ?? null,
      subject: clip(mail.subject, 200),
      receivedAt: receivedAt.toISOString(),
      sizeBytes: mail.sizeBytes,
      attachments: mail.attachments.length,
      warnings: mail.warnings.length,
      autoSubmitted: cls.autoSubmitted,
      spam: cls.spam,
      source: source.kind,
    },
  });
  writes.push(appendEvents(tx, events), ...byParts.map((b) => b.done));
  // Not awaited here: nothing below needs their results, and the statements that follow
  // on this connection — here and for the batch's next message — run after them on the
  // server (see ingestMessages). That holds only for statements already sent: a value
  // that goes in parts is sent after the insert answered, so then the writes are awaited
  // here, before anything else is sent.
  const all = Promise.all(writes);
  if (byParts.some((b) => b.inParts)) await all;
  written(all);

  // The queue row read above saves the auto-reply decision its read; the SLA clock starts
  // only when a queue, address or tenant policy is set at all (the common "no SLA" case
  // costs no reads; which one applies is the SLA service's decision).
  await scheduleAutoReply(tx, ctx, {
    tenantId: t.id,
    queueId: c.queueId,
    messageId: messageRowId,
    created,
    previousStatus: created ? null : (before?.status ?? null),
    previousActivityAt: created ? null : (before?.lastActivityAt ?? null),
    receivedAt,
    templateId: ruling?.outcome.autoReplyTemplateId ?? null,
    queue: queueRow,
  });
  if (created && (queueRow?.slaPolicyId || address.slaPolicyId || t.defaultSlaPolicyId)) {
    await startConversationSla(tx, ctx, c.id);
  }
  return {
    status: "stored",
    conversationId: c.id,
    messageId: messageRowId,
    ticketNumber: c.ticketNumber,
    created,
    queueId: c.queueId,
  };
}

/** SET_SKILLS replaces the address's skills; ADD_SKILLS adds to them. */
function ruledSkills(base: string[], ruling: RuleEvaluation | null): string[] {
  if (!ruling) return base;
  const replaces = ruling.matched.some((m) => m.actions.some((a) => a.type === "SET_SKILLS"));
  return [...new Set([...(replaces ? [] : base), ...ruling.outcome.skillIds])];
}

/** One `rule.matched` event per matched rule, each with the whole trace (SPEC §7: every decision on the timeline). */
function ruleEvents(
  tenantId: string,
  conversationId: string | null,
  queueId: string | null,
  ruling: RuleEvaluation,
  receivedAt: Date,
  now: Date,
): NewEvent[] {
  const trace = ruling.trace.slice(0, 100);
  return ruling.matched.map((m) => ({
    tenantId,
    type: "rule.matched",
    conversationId,
    queueId,
    occurredAt: now,
    payload: {
      ruleId: m.ruleId,
      name: m.name,
      reason: ruling.trace.find((e) => e.ruleId === m.ruleId)?.reason ?? "",
      actions: m.actions,
      receivedAt: receivedAt.toISOString(),
      trace,
    },
  }));
}

/**
 * Where mail goes when the queue asked for is archived: the address's spam queue for spam
 * (when it routes spam to one), else the address's routing queue — whichever is live.
 */
function fallbackQueue(
  address: { queueId: string | null; spamQueueId: string | null; spamRouting: string },
  spam: boolean,
  live: Map<string, QueueRow>,
): QueueRow | null {
  const order = [spam && address.spamRouting === "QUEUE" ? address.spamQueueId : null, address.queueId];
  for (const id of order) {
    const q = id ? live.get(id) : undefined;
    if (q) return q;
  }
  return null;
}

/**
 * A conversation that no queue takes: it waits outside every queue, which only supervisors
 * and admins see (filter `unrouted`), until one of them transfers it. `requestedQueueId`:
 * the archived queue it was meant for; null when the address has no routing target.
 */
function unroutedEvent(
  tenantId: string,
  conversationId: string,
  requestedQueueId: string | null,
  now: Date,
): NewEvent {
  return {
    tenantId,
    type: "conversation.unrouted",
    conversationId,
    occurredAt: now,
    payload: requestedQueueId
      ? { reason: "queue_archived", requestedQueueId }
      : { reason: "no_routing_target" },
  };
}

function statusEvent(
  tenantId: string,
  conv: { id: string; queueId: string | null },
  from: ConversationStatus,
  to: ConversationStatus,
  at: Date,
  reason: string,
): NewEvent {
  return {
    tenantId,
    type: "conversation.status_changed",
    conversationId: conv.id,
    queueId: conv.queueId,
    occurredAt: at,
    payload: { from, to, reason: `inbound:${reason.toLowerCase()}` },
  };
}

/** The raw message row of an ingested mail (stored as received, for audit and re-parsing). */
function rawRow(tenantId: string, input: IngestInput, id: string = randomUUID()) {
  return {
    id,
    tenantId,
    // The parser hashed these very bytes already (a rejection off the event loop too);
    // hashing 40 MB again here would block the event loop for tens of milliseconds.
    sha256: input.parsed.ok
      ? input.parsed.mail.rawSha256
      : "rawSha256" in input.parsed && input.parsed.rawSha256
        ? input.parsed.rawSha256
        : createHash("sha256").update(input.raw).digest("hex"),
    sizeBytes: input.raw.length,
    data: input.raw,
  };
}

async function storeRaw(tx: Tx, tenantId: string, input: IngestInput): Promise<string> {
  const row = rawRow(tenantId, input);
  await insertRowsInParts(rawClient(tx), rawMessage, [row]).done;
  return row.id;
}

async function nextTicketNumber(tx: Tx): Promise<number> {
  const rows = await rawClient(tx)<{ n: string }[]>`SELECT nextval('ticket_number_seq')::text AS n`;
  return Number(rows[0]!.n);
}

async function upsertContact(
  tx: Tx,
  tenantId: string,
  email: string,
  name: string,
): Promise<{ id: string; attributes: Record<string, string> }> {
  const [row] = await rawClient(tx)<{ id: string; attributes: Record<string, string> }[]>`
    INSERT INTO contact (tenant_id, email, name) VALUES (${tenantId}::uuid, ${email}, ${name})
    ON CONFLICT (tenant_id, email) DO UPDATE
      -- Keep a name we know; learn one we did not have.
      SET name = CASE WHEN contact.name = '' THEN excluded.name ELSE contact.name END
    RETURNING id, attributes`;
  return row!;
}

/**
 * Candidates for threading, tenant-scoped: conversations holding any of the Message-IDs
 * (inbound or outbound) or ticket numbers, or inbound replies to this mail that arrived
 * before it, with their contact and the addresses that wrote in them (the membership rule
 * of `decideThread`). The three reads go out together; the members' read only when one
 * found something.
 */
async function threadCandidates(
  tx: Tx,
  tenantId: string,
  lookups: ThreadingLookups,
  /** `earlierReplies` of `lookups.repliedBy`, sent ahead (`drawAhead`); absent: read now. */
  sentReplies?: Promise<{ conversationId: string }[]>,
  /** The sender's contact address (normalised), for the membership rule; null: none. */
  senderEmail: string | null = null,
): Promise<{
  byMessageId: MessageIdCandidate[];
  byTicket: TicketCandidate[];
  byReply: MessageIdCandidate[];
}> {
  const { messageIds, ticketNumbers, repliedBy } = lookups;
  const [byMessageIdRows, byTicketRows, byReplyRows] = await Promise.all([
    messageIds.length === 0
      ? ([] as { conversationId: string; messageId: string | null }[])
      : tx
          .select({ conversationId: message.conversationId, messageId: message.messageIdHeader })
          .from(message)
          .where(and(eq(message.tenantId, tenantId), inArray(message.messageIdHeader, messageIds)))
          // Newest first: when one Message-ID sits in two conversations and the sender
          // belongs to neither, the latest one is "the caller's first" (`decideThread`).
          .orderBy(desc(message.receivedAt))
          .limit(200),
    ticketNumbers.length === 0
      ? ([] as { conversationId: string; ticketNumber: number }[])
      : tx
          .select({ conversationId: conversation.id, ticketNumber: conversation.ticketNumber })
          .from(conversation)
          .where(
            and(
              eq(conversation.tenantId, tenantId),
              inArray(conversation.ticketNumber, ticketNumbers.slice(0, 20)),
            ),
          ),
    repliedBy === null ? [] : (sentReplies ?? earlierReplies(tx, tenantId, repliedBy)),
  ]);
  const ids = [
    ...new Set([
      ...byMessageIdRows.map((r) => r.conversationId),
      ...byTicketRows.map((r) => r.conversationId),
      ...byReplyRows.map((r) => r.conversationId),
    ]),
  ];
  const members = new Map<string, { contactEmail: string; participants: string[] }>();
  if (ids.length > 0) {
    const rows = await tx
      .select({
        id: conversation.id,
        contactEmail: contact.email,
        // Everyone who wrote or was written to in the conversation (inbound From, To and
        // Cc; outbound To and Cc) — a colleague the customer copied, a supplier the agent
        // wrote to — but never the tenant's own addresses: mail with a forged
        // `From: support@…` must not count as a member of every conversation.
        // Not read when the sender is the conversation's contact (a member whatever the
        // list says; the common reply): the list reads every message of the conversation,
        // 56–106 ms for a reply into one of 10,000 messages (scale probe, session 17).
        senders: sql<(string | null)[]>`CASE WHEN ${contact.email} = ${senderEmail}::text
          THEN ARRAY[]::text[] ELSE array(
          SELECT DISTINCT lower(p.address) FROM message m
          CROSS JOIN LATERAL (
            SELECT m.from->>'address' AS address WHERE m.direction = 'INBOUND'
            UNION ALL SELECT x->>'address' FROM jsonb_array_elements(m.to) x
            UNION ALL SELECT x->>'address' FROM jsonb_array_elements(m.cc) x
          ) p
          WHERE m.conversation_id = ${conversation.id} AND p.address IS NOT NULL
            AND NOT EXISTS (SELECT 1 FROM email_address a
                             WHERE a.tenant_id = ${conversation.tenantId}
                               AND lower(a.address) = lower(p.address))) END`,
      })
      .from(conversation)
      .innerJoin(contact, eq(contact.id, conversation.contactId))
      .where(inArray(conversation.id, ids));
    for (const r of rows) {
      members.set(r.id, {
        contactEmail: r.contactEmail,
        participants: r.senders.filter((s): s is string => !!s),
      });
    }
  }
  const withMembers = <T extends { conversationId: string }>(r: T) => {
    const m = members.get(r.conversationId);
    return { ...r, contactEmail: m?.contactEmail ?? "", participantEmails: m?.participants ?? [] };
  };
  return {
    byMessageId: byMessageIdRows
      .filter((r): r is { conversationId: string; messageId: string } => r.messageId !== null)
      .map(withMembers),
    byTicket: byTicketRows.map(withMembers),
    byReply: byReplyRows.map((r) => withMembers({ ...r, messageId: repliedBy ?? "" })),
  };
}

/**
 * The conversations of stored inbound mail whose In-Reply-To is `messageId`: replies to a
 * mail that arrived before it (`decideThread`). Through message_tenant_irt_idx (migration
 * 0021); oldest first, as the first reply to arrive opened the conversation. The statement
 * is exported for the test of its plan (test/integration/ingest-plans.test.ts).
 */
export function earlierRepliesQuery(sql: Sql, tenantId: string, messageId: string) {
  return sql<{ conversationId: string }[]>`
    SELECT conversation_id AS "conversationId" FROM message
    WHERE tenant_id = ${tenantId}::uuid AND in_reply_to = ${messageId} AND direction = 'INBOUND'
    ORDER BY received_at LIMIT 20`;
}

async function earlierReplies(
  tx: Tx,
  tenantId: string,
  messageId: string,
): Promise<{ conversationId: string }[]> {
  return earlierRepliesQuery(rawClient(tx), tenantId, messageId);
}

/**
 * Whether mail with this Message-ID was already recorded as rejected for the same reason in
 * the tenant: the content dedupe only knows stored messages, so without this a UIDVALIDITY
 * resync, an SMTP retry or a copy to a second address recorded a dropped spam, a delivery
 * report (bouncing its message again) or an unparseable mail once more. Read under the
 * dedupe lock of the Message-ID (`lockDuplicateKeys`), through
 * `rejected_message_msgid_idx`. Mail without a Message-ID is known by its content key
 * instead (the bytes after our own trace lines, so an SMTP retry is the same mail though
 * its Received line is not), through `rejected_message_hash_idx`. A parse timeout too: the
 * parser's limit counts the thread's CPU, not a busy machine's wall clock, and each
 * delivery is still parsed anew (a mail that parses the second time is stored); only a
 * second timeout adds nothing. Oversize mail, whose bytes are never all kept, is known by
 * its size and the sender's first 64 KB (`oversizeOutcome`). Recorded each time: records
 * from before migration 0020 without either key.
 */
async function alreadyRejected(
  tx: Tx,
  tenantId: string,
  key: RejectionKey,
  reason: string,
): Promise<boolean> {
  const sql = rawClient(tx);
  let rows: { id: string }[] = [];
  if (key.messageId) {
    rows = await sql`
      SELECT id FROM rejected_message
       WHERE tenant_id = ${tenantId}::uuid AND message_id_header = ${key.messageId}::text
         AND reason = ${reason}::text
       LIMIT 1`;
  } else if (key.contentHash) {
    rows = await sql`
      SELECT id FROM rejected_message
       WHERE tenant_id = ${tenantId}::uuid AND content_hash = ${key.contentHash}::text AND reason = ${reason}::text
       LIMIT 1`;
  }
  return rows.length > 0;
}

/** What a rejected record is known by: its Message-ID, or without one its content key. */
interface RejectionKey {
  messageId: string | null;
  contentHash: string | null;
}

function rejectionKey(
  messageId: string | null | undefined,
  contentHash: string | null | undefined,
): RejectionKey {
  return messageId ? { messageId, contentHash: null } : { messageId: null, contentHash: contentHash ?? null };
}

function rejectionKeyOf(parsed: Extract<IngestInput["parsed"], { ok: false }>): RejectionKey {
  return rejectionKey("headline" in parsed ? parsed.headline?.messageId : null, parsed.contentHash);
}

async function recordRejection(
  tx: Tx,
  ctx: EngineContext,
  tenantId: string,
  address: AddressRow,
  input: IngestInput,
  mail: ParsedMail,
  reason: string,
  detail: string,
  imapPos: ImapPosition,
): Promise<IngestResult> {
  const key = rejectionKey(mail.messageId, mail.contentHash);
  if (await alreadyRejected(tx, tenantId, key, reason)) {
    return { status: "duplicate", messageId: null };
  }
  const rawId = await storeRaw(tx, tenantId, input);
  const [rej] = await tx
    .insert(rejectedMessage)
    .values({
      tenantId,
      accountId: input.source.kind === "imap" ? input.source.accountId : address.accountId,
      addressId: address.id,
      reason,
      detail: detail.slice(0, 2000),
      sizeBytes: mail.sizeBytes,
      messageIdHeader: key.messageId,
      contentHash: key.contentHash,
      fromAddress: mail.from?.address ?? null,
      subject: clip(mail.subject, 998),
      rawMessageId: rawId,
      receivedAt: input.receivedAt,
      ...imapPos,
    })
    .returning({ id: rejectedMessage.id });
  await appendEvents(tx, [
    {
      tenantId,
      type: "message.rejected",
      occurredAt: ctx.clock.now(),
      payload: { rejectedId: rej!.id, reason, detail: detail.slice(0, 500), addressId: address.id },
    },
  ]);
  return { status: "rejected", rejectedId: rej!.id, reason };
}

/**
 * A delivery report: find the outbound message it reports on (by the original Message-ID)
 * and mark it bounced; a permanent failure (5.x.x) marks the contact's address
 * undeliverable. The report itself is kept as a rejected record of reason
 * `delivery_report`, so it never opens a conversation but is never lost either.
 */
async function recordDeliveryReport(
  tx: Tx,
  ctx: EngineContext,
  tenantId: string,
  address: AddressRow,
  input: IngestInput,
  mail: ParsedMail,
  cls: Classification,
  imapPos: ImapPosition,
): Promise<IngestResult> {
  // The same report again marks nothing again.
  if (
    await alreadyRejected(tx, tenantId, rejectionKey(mail.messageId, mail.contentHash), "delivery_report")
  ) {
    return { status: "duplicate", messageId: null };
  }
  const ds = mail.deliveryStatus ?? plainDeliveryStatus(mail);
  // A plain-text notice's action is known once its text is read (a delay warning's
  // subject already says "delayed").
  const action =
    cls.bounceAction === "unknown" && ds && ds.recipients.length > 0
      ? reportActionOf(ds.recipients)
      : (cls.bounceAction ?? "unknown");
  // A plain-text delay warning marks nothing, whatever codes its text quotes.
  const delayNotice = !mail.isDeliveryReport && cls.bounceAction === "delayed";
  const failed = (delayNotice ? [] : (ds?.recipients ?? [])).filter(
    (r) => (r.action ?? "").toLowerCase() === "failed" || /^5\./.test(r.status ?? ""),
  );
  const bounced: string[] = [];
  const original = ds?.originalMessageId ? ds.originalMessageId.replace(/^<|>$/g, "") : null;
  if (original && failed.length > 0) {
    const rows = await tx
      .select({
        id: message.id,
        conversationId: message.conversationId,
        to: message.to,
        queueId: conversation.queueId,
      })
      .from(message)
      .innerJoin(conversation, eq(conversation.id, message.conversationId))
      .where(
        and(
          eq(message.tenantId, tenantId),
          eq(message.messageIdHeader, original),
          eq(message.direction, "OUTBOUND"),
        ),
      );
    const now = ctx.clock.now();
    for (const r of rows) {
      const first = failed[0]!;
      const permanent = /^5\./.test(first.status ?? "");
      await tx
        .update(message)
        .set({
          outboundStatus: "BOUNCED",
          outboundError: `${first.status ?? ""} ${first.diagnosticCode ?? ""}`.trim().slice(0, 1000),
        })
        .where(eq(message.id, r.id));
      bounced.push(r.id);
      const events: NewEvent[] = [
        {
          tenantId,
          type: "message.bounced",
          conversationId: r.conversationId,
          queueId: r.queueId,
          occurredAt: now,
          payload: {
            messageId: r.id,
            recipients: failed.map((f) => ({
              recipient: f.finalRecipient,
              status: f.status,
              diagnostic: f.diagnosticCode,
            })),
            permanent,
          },
        },
      ];
      if (permanent) {
        for (const f of failed) {
          const addr = normalizeEmailAddress((f.finalRecipient ?? "").replace(/^rfc822;\s*/i, ""))?.address;
          if (!addr) continue;
          await tx
            .update(contact)
            .set({
              undeliverable: true,
              undeliverableReason: `${f.status ?? ""} ${f.diagnosticCode ?? ""}`.trim().slice(0, 500),
            })
            .where(and(eq(contact.tenantId, tenantId), eq(contact.email, addr)));
        }
      }
      await appendEvents(tx, events);
    }
  }
  const res = await recordRejection(
    tx,
    ctx,
    tenantId,
    address,
    input,
    mail,
    "delivery_report",
    `${action}; matched ${bounced.length} outbound message(s)`,
    imapPos,
  );
  return {
    status: "report",
    rejectedId: res.status === "rejected" ? res.rejectedId : "",
    bouncedMessageIds: bounced,
  };
}

async function advanceCheckpoint(
  tx: Tx,
  tenantId: string,
  src: {
    accountId: string;
    mailbox: string;
    uidValidity: number;
    uid: number;
    resyncThrough?: number | null;
    server?: ImapServer;
    batch?: { firstUid: number; action: ImapAfterProcess };
  },
): Promise<void> {
  // A resync's bound is kept until the position passes it: an interrupted resync goes on
  // as one (`IngestInput.resync`) instead of taking old mail for new.
  const through = src.resyncThrough != null && src.resyncThrough > src.uid ? src.resyncThrough : null;
  // Still the account's server and login? Read under the account row's share lock, so an
  // admin's change of server (which resets the checkpoint and the positions,
  // `updateMailAccount`) comes wholly before this transaction or after its commit. Sent
  // with the write (one round trip); a stale worker's transaction then rolls back.
  const guard = src.server
    ? rawClient(tx)<{ id: string }[]>`
      SELECT id FROM mail_account
       WHERE id = ${src.accountId}::uuid AND lower(imap_host) = lower(${src.server.host})
         AND coalesce(imap_port, CASE WHEN imap_tls THEN 993 ELSE 143 END) = ${src.server.port}
         AND coalesce(imap_user, '') = ${src.server.user}
       FOR SHARE`
    : null;
  const write = tx
    .insert(mailboxCheckpoint)
    .values({
      tenantId,
      accountId: src.accountId,
      mailbox: src.mailbox,
      uidValidity: src.uidValidity,
      lastUid: src.uid,
      resyncThroughUid: through,
      // The batch whose server action runs after this commit: all a later repair may touch.
      batchFirstUid: src.batch?.firstUid ?? src.uid,
      batchAction: src.batch?.action ?? null,
    })
    .onConflictDoUpdate({
      target: [mailboxCheckpoint.accountId, mailboxCheckpoint.mailbox],
      set: {
        // A new UIDVALIDITY resets the position; otherwise only ever move forward.
        lastUid: sql`CASE WHEN ${mailboxCheckpoint.uidValidity} = excluded.uid_validity
                     THEN greatest(${mailboxCheckpoint.lastUid}, excluded.last_uid) ELSE excluded.last_uid END`,
        resyncThroughUid: sql`CASE WHEN ${mailboxCheckpoint.uidValidity} <> excluded.uid_validity
                     THEN excluded.resync_through_uid
                     WHEN greatest(${mailboxCheckpoint.lastUid}, excluded.last_uid)
                          >= coalesce(${mailboxCheckpoint.resyncThroughUid}, 0) THEN NULL
                     ELSE ${mailboxCheckpoint.resyncThroughUid} END`,
        uidValidity: sql`excluded.uid_validity`,
        // The last batch is the one at the position: a late commit of an earlier batch (a
        // worker that lost its lock) must not widen the repair's range below it (re-probe).
        batchFirstUid: sql`CASE WHEN ${mailboxCheckpoint.uidValidity} <> excluded.uid_validity
                                  OR excluded.last_uid > ${mailboxCheckpoint.lastUid}
                             THEN excluded.batch_first_uid ELSE ${mailboxCheckpoint.batchFirstUid} END`,
        batchAction: sql`CASE WHEN ${mailboxCheckpoint.uidValidity} <> excluded.uid_validity
                                OR excluded.last_uid > ${mailboxCheckpoint.lastUid}
                           THEN excluded.batch_action ELSE ${mailboxCheckpoint.batchAction} END`,
      },
    });
  const [rows] = await Promise.all([guard, write]);
  if (rows && rows.length === 0) throw new StaleImapServerError(src.accountId);
}

/**
 * The processing limit (SPEC §3): above `limit` open conversations ingest pauses. How many
 * more messages the tenant may take in before it does: `limit + 1` less its
 * open conversations (not RESOLVED or CLOSED), counted up to `limit + 1`. Ingest goes on
 * while the tenant has at most `limit` open, so the message that finds `limit` open may
 * still open one more; every message is counted as if it opened a conversation, though a
 * reply that threads does not.
 */
export async function processingRoom(ctx: EngineContext, tenantId: string, limit: number): Promise<number> {
  const [row] = await ctx.db.execute<{ n: number }>(sql`
    SELECT count(*)::int AS n FROM (
      SELECT 1 FROM conversation
      WHERE tenant_id = ${tenantId} AND status NOT IN ('RESOLVED', 'CLOSED')
      LIMIT ${limit + 1}) s`);
  return limit + 1 - (row?.n ?? 0);
}

/**
 * The follow-ups of conversation `id`, in order: its newest linked conversation (one opened
 * by mail past its reopen window, `previousConversationId`), that one's newest, and so on.
 */
async function followUpChain(
  tx: Tx,
  tenantId: string,
  id: string,
): Promise<{ id: string; status: ConversationStatus; closedAt: Date | null }[]> {
  const rows = await rawClient(tx)<
    { id: string; status: ConversationStatus; closedAt: string | Date | null }[]
  >`
    WITH RECURSIVE chain(id, depth) AS (
      SELECT (SELECT c.id FROM conversation c WHERE c.tenant_id = ${tenantId}::uuid
                AND c.previous_conversation_id = ${id}::uuid ORDER BY c.created_at DESC LIMIT 1), 1
      UNION ALL
      SELECT (SELECT c.id FROM conversation c WHERE c.tenant_id = ${tenantId}::uuid
                AND c.previous_conversation_id = chain.id ORDER BY c.created_at DESC LIMIT 1), chain.depth + 1
        FROM chain WHERE chain.id IS NOT NULL AND chain.depth < 100000)
    SELECT c.id, c.status, c.closed_at AS "closedAt"
      FROM chain JOIN conversation c ON c.id = chain.id ORDER BY chain.depth`;
  // The driver gives timestamps as drizzle's client left them: text, here.
  return rows.map((r) => ({ ...r, closedAt: r.closedAt === null ? null : new Date(r.closedAt) }));
}

/**
 * `postmaster` without a domain, or at a domain some configured address is on (the
 * domains this server takes mail for).
 */
export async function isPostmasterAddress(ctx: EngineContext, rcpt: string): Promise<boolean> {
  const at = rcpt.lastIndexOf("@");
  const local = at < 0 ? rcpt : rcpt.slice(0, at);
  if (local.trim().toLowerCase() !== "postmaster") return false;
  if (at < 0) return true;
  const n = normalizeEmailAddress(rcpt);
  if (!n) return false;
  const [row] = await rawClient(ctx.db)<{ one: number }[]>`
    SELECT 1 AS one FROM email_address
     WHERE archived_at IS NULL
       AND lower(split_part(address, '@', 2)) = ANY(${[n.domain, n.asciiAddress.split("@")[1]!]}::text[])
     LIMIT 1`;
  return row !== undefined;
}

/** The configured address an SMTP recipient maps to (any tenant: addresses are globally unique). */
export async function resolveRecipient(
  ctx: EngineContext,
  rcpt: string,
): Promise<{
  tenantId: string;
  addressId: string;
  emailEnabled: boolean;
  /** The tenant's processing limit; null when it has none (so there is nothing to count). */
  processingLimit: number | null;
} | null> {
  // smtp-server hands over an internationalised domain in its Unicode form whatever the
  // client sent, and an address may be configured with either (the API takes the A-label
  // form); a local part may come in another Unicode normalisation form than it was stored.
  const spelled = rcpt.trim().toLowerCase();
  const n = normalizeEmailAddress(spelled);
  const spellings = [...new Set([spelled, ...(n ? [n.address, n.asciiAddress] : [])])];
  // Once per recipient of every SMTP mail: hand-written (docs/architecture.md "Hot paths").
  const [row] = await rawClient(ctx.db)<
    { id: string; tenantId: string; emailEnabled: boolean; processingLimit: number | null }[]
  >`
    SELECT a.id, a.tenant_id AS "tenantId", t.email_enabled AS "emailEnabled",
           t.processing_limit AS "processingLimit"
    FROM email_address a JOIN tenant t ON t.id = a.tenant_id
    WHERE lower(a.address) = ANY(${spellings}::text[]) AND a.archived_at IS NULL
    LIMIT 1`;
  return row
    ? {
        tenantId: row.tenantId,
        addressId: row.id,
        emailEnabled: row.emailEnabled,
        processingLimit: row.processingLimit,
      }
    : null;
}
