import { createHash } from "node:crypto";
import { ImapFlow } from "imapflow";
import postgres from "postgres";
import { sameMailboxName } from "../engine/config/mail-accounts.js";
import type { EngineContext, Logger } from "../engine/context.js";
import { type IngestInput, ingestMessages, ingestOrQuarantine } from "../engine/ingest/ingest.js";
import {
  accountAddressResolver,
  type FetchPause,
  fetchPause,
  getCheckpoint,
  getImapAccount,
  type ImapAccount,
  imapServerKey,
  listImapAccounts,
  parkedAccountCleared,
  passedOverUids,
  recordAccountStatus,
} from "../engine/ingest/mailbox.js";
import type { ParseOutcome } from "../engine/ingest/parsed-mail.js";
import { registerGauge } from "../engine/metrics.js";
import { ByteBudget } from "./byte-budget.js";
import { FetchTrouble } from "./fetch-trouble.js";
import { describeImapError, ImapConnectorError } from "./imap-errors.js";
import { HEADLINE_BYTES, headerFields } from "./mime/headline.js";
import { MIME_PARSER_DEFAULTS, oversizeOutcome } from "./mime/parse.js";

export interface ImapSettings {
  /** The database the advisory locks live in (each lock holds one dedicated session). */
  databaseUrl: string;
  /** Reconciliation poll and account reload interval. */
  pollSeconds: number;
  /** IDLE is broken and restarted this often (RFC 2177: servers may drop it after 30 min). */
  idleRestartSeconds: number;
  /** How often a worker that does not hold its mailbox's lock tries again. */
  lockRetrySeconds: number;
  /** While paused (email channel off, over the processing limit), how often a worker re-checks. */
  pauseRecheckSeconds: number;
  /**
   * How far apart two misses of a UID the server leaves out of FETCH answers count toward
   * its three (`FetchTrouble.missed`); default `pauseRecheckSeconds`, the retry wait.
   */
  missGapSeconds?: number;
  /** UIDs fetched (and parsed in parallel) per round trip. */
  batchSize: number;
  /** false: no IDLE, new mail arrives with the poll only (servers without IDLE, tests). */
  idle: boolean;
  /**
   * MAX_MESSAGE_BYTES, the parser's limit: a message whose RFC822.SIZE is above it is
   * recorded as oversize without its body being downloaded.
   */
  maxMessageBytes: number;
  /**
   * The sources of one batch together stop at this many bytes (at least one message per
   * batch); default 64 MB, never below `maxMessageBytes`. A batch of big mail is cut
   * short instead of holding `batchSize` × the limit.
   */
  batchBytes?: number;
  /**
   * What all mailbox workers of the process hold in memory together (fetched, not yet
   * ingested), in bytes; default 512 MB (`ByteBudget`).
   */
  bufferedBytes?: number;
}

export const DEFAULT_IMAP_BUFFERED_BYTES = 512 * 1024 * 1024;

export const defaultImapSettings = (databaseUrl: string): ImapSettings => ({
  databaseUrl,
  pollSeconds: 60,
  idleRestartSeconds: 25 * 60,
  lockRetrySeconds: 5,
  pauseRecheckSeconds: 15,
  batchSize: 50,
  idle: true,
  maxMessageBytes: MIME_PARSER_DEFAULTS.maxBytes,
});

/** A session that lasted this long was healthy: the reconnect after it starts from the shortest wait. */
const HEALTHY_SESSION_MS = 60_000;

/** A batch's byte budget when none is set: typical mail is far below it, so 50 UIDs fit. */
const DEFAULT_BATCH_BYTES = 64 * 1024 * 1024;

export interface SyncResult {
  /** UIDs ingested (stored, duplicate or rejected) in this run. */
  processed: number;
  /** Why the run stopped before the end of the mailbox; the rest stays on the server. */
  paused: FetchPause | null;
  /** The mailbox lock's session ended during the run (`lockAlive`): it stopped there. */
  lockLost?: boolean;
  /**
   * It stopped before a UID the server lists and did not deliver (`stillListed`): the
   * worker tries again after `pauseRecheckSeconds`, not a whole poll, since the mail
   * after that UID waits for it.
   */
  retrySoon?: boolean;
}

/**
 * A stable 64-bit advisory-lock key per account. Derived in JS (not `hashtext`) so it
 * cannot change with a PostgreSQL upgrade while old and new processes overlap.
 */
export function mailboxLockKey(accountId: string): string {
  const h = createHash("sha256").update(`switchboard:imap:${accountId}`).digest();
  return h.readBigInt64BE(0).toString();
}

/**
 * The database session that holds a process's mailbox locks: one per process and
 * database, however many accounts. Until 2026-11-23 each lock had a connection of its
 * own, and so did each standby's lock while it retried: accounts × instances connections
 * (150 accounts on two instances took 281 of PostgreSQL's 300, and polls of working
 * accounts then failed with "too many clients").
 *
 * A session-level advisory lock lives as long as its backend. postgres.js reconnects by
 * itself, so a session that was ended (a PostgreSQL restart, a failover, an idle-session
 * killer) quietly became a new one without the locks, and `SELECT 1` still answered:
 * another instance could take the mailbox while this one went on fetching. So each lock
 * remembers the backend it was taken in, and is alive only while the session is still
 * that backend. Advisory locks are re-entrant within a session, so the process keeps its
 * own list: a key it holds is not granted to it a second time (a one-shot poll while its
 * own worker runs). The session ends when it holds nothing, so standbys hold no
 * connection between their tries.
 */
class LockSession {
  private static readonly sessions = new Map<string, LockSession>();
  private sql: postgres.Sql | null = null;
  /** Held keys → the backend pid they were taken in. */
  private readonly held = new Map<string, number>();
  /** Keys being taken right now: a second try meanwhile would be granted too (re-entrant). */
  private readonly taking = new Set<string>();
  private busy = 0;

  static for(url: string): LockSession {
    let session = LockSession.sessions.get(url);
    if (!session) {
      session = new LockSession(url);
      LockSession.sessions.set(url, session);
    }
    return session;
  }

  private constructor(private readonly url: string) {}

  /** Connections this process holds for mailbox locks now (0 or 1 per database; tests). */
  static connections(): number {
    let n = 0;
    for (const s of LockSession.sessions.values()) if (s.sql) n++;
    return n;
  }

  private async use<T>(query: (sql: postgres.Sql) => Promise<T>): Promise<T> {
    this.sql ??= postgres(this.url, {
      max: 1,
      idle_timeout: 0,
      max_lifetime: null,
      onnotice: () => {},
      // The pid tells an operator (and the two-process test) which instance owns a mailbox.
      connection: { application_name: `switchboard-imap-lock:${process.pid}` },
    });
    this.busy++;
    try {
      return await query(this.sql);
    } finally {
      this.busy--;
      if (this.busy === 0 && this.held.size === 0) {
        const sql = this.sql;
        this.sql = null;
        await sql?.end({ timeout: 2 }).catch(() => {});
      }
    }
  }

  async tryAcquire(key: string): Promise<boolean> {
    if (this.held.has(key) || this.taking.has(key)) return false;
    this.taking.add(key);
    try {
      // Recorded inside `use`: a session that holds nothing is ended when `use` returns.
      return await this.use(async (sql) => {
        const [row] = await sql<{ ok: boolean; pid: number }[]>`
          SELECT pg_try_advisory_lock(${key}::bigint) AS ok, pg_backend_pid() AS pid`;
        if (row?.ok !== true) return false;
        this.held.set(key, row.pid);
        return true;
      });
    } finally {
      this.taking.delete(key);
    }
  }

  async alive(key: string): Promise<boolean> {
    const pid = this.held.get(key);
    if (pid === undefined) return false;
    try {
      const [row] = await this.use((sql) => sql<{ pid: number }[]>`SELECT pg_backend_pid() AS pid`);
      if (row?.pid === pid) return true;
    } catch {
      // No session: no lock.
    }
    this.held.delete(key);
    return false;
  }

  async release(key: string): Promise<void> {
    const pid = this.held.get(key);
    if (pid === undefined) return;
    this.held.delete(key);
    // Unlocked only in the backend it was taken in; in any other the lock is gone already.
    await this.use(
      (sql) =>
        sql`SELECT pg_advisory_unlock(${key}::bigint) FROM (SELECT 1) x WHERE pg_backend_pid() = ${pid}`,
    ).catch(() => {});
  }
}

/**
 * "Exactly one instance per mailbox": a session-level advisory lock, held as long as the
 * worker runs, in the process's lock session (`LockSession`). When the process dies,
 * PostgreSQL ends the session and the lock with it, so another instance takes over on its
 * next try.
 */
export class MailboxLock {
  private readonly session: LockSession;
  private readonly key: string;
  private held = false;

  constructor(url: string, accountId: string) {
    this.session = LockSession.for(url);
    this.key = mailboxLockKey(accountId);
  }

  /** Connections this process holds for mailbox locks now. */
  static connections(): number {
    return LockSession.connections();
  }

  get isHeld(): boolean {
    return this.held;
  }

  async tryAcquire(): Promise<boolean> {
    this.held = await this.session.tryAcquire(this.key);
    return this.held;
  }

  /** The lock lives only as long as the session it was taken in. */
  async alive(): Promise<boolean> {
    if (!this.held) return false;
    this.held = await this.session.alive(this.key);
    return this.held;
  }

  async release(): Promise<void> {
    if (!this.held) return;
    this.held = false;
    await this.session.release(this.key);
  }
}

export function imapClient(
  account: ImapAccount,
  settings: Pick<ImapSettings, "idle" | "idleRestartSeconds">,
) {
  return new ImapFlow({
    host: account.host,
    port: account.port,
    secure: account.tls,
    auth: { user: account.user, pass: account.password },
    logger: false,
    disableAutoIdle: !settings.idle,
    // imapflow waits 15 s of silence before IDLE by default: new mail would wait that long.
    // A sync's commands come back to back, so a short delay costs nothing extra there.
    autoIdleDelay: 500,
    maxIdleTime: settings.idleRestartSeconds * 1000,
    connectionTimeout: 30_000,
    greetingTimeout: 15_000,
    socketTimeout: 5 * 60_000,
  });
}

/**
 * Ingests every message above the committed checkpoint, in UID order, under the IMAP
 * mailbox lock (released in `finally`). Each message is its own transaction that also
 * advances the checkpoint; the server-side action for a batch runs only after those
 * commits. A crash in between re-fetches nothing (the checkpoint moved) and at worst
 * leaves the last batch unflagged — \Seen is never read back as state.
 */
export async function syncMailbox(
  ctx: EngineContext,
  client: ImapFlow,
  account: ImapAccount,
  opts: {
    batchSize: number;
    maxMessageBytes: number;
    batchBytes?: number;
    log: Logger;
    isStopped?: () => boolean;
    repair?: boolean;
    /** Shared with the process's other mailboxes; a private one without it. */
    budget?: ByteBudget;
    /** What this mailbox's fetches failed on (kept across sessions by the connector). */
    trouble?: FetchTrouble;
    /** Called once the folder is selected: the settings work (the account is VALID). */
    onSelected?: () => Promise<void>;
    /** Whether the mailbox lock is still held: checked before each batch after the first. */
    lockAlive?: () => Promise<boolean>;
    /** Told of every batch committed (also of a run that ends in an error afterwards). */
    onCommitted?: (count: number) => void;
  },
): Promise<SyncResult> {
  const { log } = opts;
  const limits: FetchLimits = {
    maxBytes: opts.maxMessageBytes,
    batchBytes: Math.max(opts.batchBytes ?? DEFAULT_BATCH_BYTES, opts.maxMessageBytes),
    budget: opts.budget ?? new ByteBudget(DEFAULT_IMAP_BUFFERED_BYTES),
  };
  let processed = 0;
  const lock = await client.getMailboxLock(account.mailbox);
  try {
    await opts.onSelected?.();
    const mailbox = client.mailbox;
    if (!mailbox) throw new Error(`mailbox ${account.mailbox} not selected`);
    const uidValidity = Number(mailbox.uidValidity);
    if (opts.repair) await repairAfterProcess(ctx, client, account, uidValidity, log);
    for (;;) {
      if (opts.isStopped?.()) return { processed, paused: null };
      const first = await fetchPause(ctx, account.tenantId, account.id);
      if (first.pause) return { processed, paused: first.pause };
      let room = first.room;
      const cp = await getCheckpoint(ctx, account.id, account.mailbox);
      // A new UIDVALIDITY invalidates every stored UID: fetch the whole mailbox again and
      // let the Message-ID + content-hash dedupe in ingestMessage drop what we already have.
      const resync = cp !== null && cp.uidValidity !== uidValidity;
      if (resync) {
        log.warn({ from: cp.uidValidity, to: uidValidity }, "UIDVALIDITY changed: resynchronising mailbox");
      }
      const from = cp && !resync ? cp.lastUid + 1 : 1;
      // `n:*` always matches the highest UID even when it is below n (RFC 3501 §6.4.8).
      const found = (await client.search({ uid: `${from}:*` }, { uid: true })) || [];
      const todo = found.filter((u) => u >= from).sort((a, b) => a - b);
      if (todo.length === 0) return { processed, paused: null };
      // Mail up to here is fetched as a resync: the whole mailbox as it was when the change
      // was seen, also when this sync is interrupted and a later one goes on from the
      // checkpoint (which keeps the bound: `resync_through_uid`).
      const resyncThrough = resync
        ? todo.at(-1)!
        : cp?.uidValidity === uidValidity
          ? cp.resyncThroughUid
          : null;
      const resolve = await accountAddressResolver(ctx, account.id);
      // The last address was taken off the account since `fetchPause` looked: the mail waits.
      if (!resolve) return { processed, paused: "no_address" };
      const trouble = opts.trouble ?? new FetchTrouble();
      trouble.validity(uidValidity);
      // The batch from `p` on: fetched (one UID at a time after a failed batch), or the one
      // message the server failed to deliver too often, passed over (`FetchTrouble`).
      const prepareAt = (p: number): Promise<PreparedBatch> => {
        const first = todo[p]!;
        const poisoned = trouble.poisoned(first);
        if (poisoned) return Promise.resolve(passedOver(first, poisoned));
        // Under a processing limit no more than the room left is fetched: cut after the
        // fetch, each message at room 1 cost a batch and the one fetched ahead (second
        // re-probe, session 16: 15,050 sources fetched and parsed for 200 replies).
        const asked = todo.slice(
          p,
          p + Math.min(trouble.batchSize(first, opts.batchSize), Math.max(1, room)),
        );
        // A batch ends before the next UID to be passed over: it is passed as its own batch.
        const cut = asked.findIndex((u, i) => i > 0 && trouble.poisoned(u) !== null);
        const uids = cut > 0 ? asked.slice(0, cut) : asked;
        return prepareBatch(ctx, client, uids, limits).then(
          (b) => {
            // Only what came back: a UID the server lists but never returns keeps its count.
            trouble.fetched(b.returned ?? b.messages.map((m) => m.uid));
            // Each counts a miss now, not only the first: the mail behind four such UIDs
            // waited three tries for each of them in turn (re-probe, ~3 min at 15 s).
            if (b.missing) trouble.missed(b.missing, LISTED_NOT_FETCHED);
            return b;
          },
          (err) => {
            // The parser pool failing (closed at shutdown, broken) is not the server's doing.
            if (!(err instanceof ParserUnavailableError)) trouble.failed(uids, err);
            // A message the server fails on says nothing about the account's settings: the
            // session ends and the next fetches these UIDs one by one (`FetchTrouble`),
            // after the short backoff, not a permanent error's minute and INVALID.
            const info = describeImapError(err);
            const range = uids.length === 1 ? `UID ${uids[0]}` : `UIDs ${uids[0]}–${uids.at(-1)}`;
            throw new ImapConnectorError(
              {
                kind: info.kind === "auth" ? "auth" : "transient",
                code: info.code,
                message: `fetching ${range} failed: ${info.message}`,
              },
              { cause: err },
            );
          },
        );
      };
      // Fetch and parse the next batch while this one is ingested: ingest is serial (UID
      // order keeps threading and the checkpoint right), the rest overlaps with it. Where
      // the next batch starts is known once this one is prepared (the byte budget may have
      // cut it short), which is before the next one is started.
      let pos = 0;
      let prepared = 0;
      let next: Promise<PreparedBatch> | null = prepareAt(0);
      try {
        for (let i = 0; next; i++) {
          const batch: PreparedBatch = await next;
          next = null;
          try {
            pos += batch.consumed;
            if (opts.isStopped?.()) return { processed, paused: null };
            if (i > 0) {
              const [state, locked] = await Promise.all([
                fetchPause(ctx, account.tenantId, account.id),
                opts.lockAlive?.() ?? true,
              ]);
              // The lock's session ended (and another instance may have the mailbox now):
              // no more batches; the worker finds out and takes the lock again.
              if (!locked) return { processed, paused: null, lockLost: true };
              if (state.pause) return { processed, paused: state.pause };
              room = state.room;
            }
            // Under a processing limit the batch takes only the room left: a batch of 50
            // took a tenant with a limit of 3 to 50 open conversations (probe, session 16).
            // The rest stays after the checkpoint, on the server, until there is room.
            const cut = batch.messages.length > room;
            if (cut) batch.messages.length = room;
            if (pos < todo.length && !cut && !batch.missing) {
              next = prepareAt(pos);
              // Not awaited if we stop early; its failure must not become an unhandled rejection.
              next.catch(() => {});
            }
            prepared += batch.messages.length;
            // The mail before a UID the server listed and did not deliver is ingested, and the
            // sync ends there: the checkpoint stays below it until it is fetched, or until it
            // has failed three times and is recorded and passed (`FetchTrouble`).
            const stop = batch.missing !== undefined;
            if (batch.messages.length === 0) {
              if (stop) return { processed, paused: null, retrySoon: true };
              continue;
            }
            const done = await ingestBatch(ctx, account, uidValidity, batch.messages, resolve, resyncThrough);
            processed += done.length;
            opts.onCommitted?.(done.length);
            if (batch.passed !== undefined) {
              // Recorded: its count ends. The server action is not tried on what the
              // server cannot deliver; it stays where it is, for an admin to look at.
              trouble.passed(batch.passed);
              log.warn(
                { uid: batch.passed },
                "message the server failed to deliver recorded as rejected and passed",
              );
              continue;
            }
            await afterProcess(ctx, client, account, done, log);
            if (stop) return { processed, paused: null, retrySoon: true };
            // The rest of this search is not taken (the next batch, fetched ahead, starts
            // past the cut): search again from the checkpoint, after the room is counted
            // again. Replies that joined open conversations opened nothing, so the room is
            // still there (re-probe, session 16: pausing here took them one per 15 s).
            if (cut) break;
          } finally {
            batch.release();
          }
        }
      } finally {
        // A batch fetched ahead and not used (stopped, paused, a failure): its bytes go back.
        next?.then(
          (b) => b.release(),
          () => {},
        );
      }
      if (prepared === 0) {
        // SEARCH listed UIDs that FETCH returned nothing for. Mostly they were expunged in
        // between, and the next SEARCH will not list them; a server that keeps listing
        // them had this loop search again at once, dozens of times a second, for good.
        // Now it waits for the next wake-up or poll, and each such UID counts as a failed
        // fetch: after three it is recorded (fetch_failed) and passed (`FetchTrouble`).
        for (const uid of todo) trouble.failed([uid], LISTED_NOT_FETCHED);
        return { processed, paused: null };
      }
    }
  } finally {
    lock.release();
  }
}

const LISTED_NOT_FETCHED = new Error("listed by UID SEARCH, but UID FETCH returned nothing for it");

interface FetchLimits {
  /** Above this RFC822.SIZE a message is oversize and its body is not fetched. */
  maxBytes: number;
  /** A batch's sources together; at least one message per batch. */
  batchBytes: number;
  /** What every mailbox of the process holds together. */
  budget: ByteBudget;
}

interface Prepared {
  uid: number;
  raw: Buffer;
  internalDate: Date | null;
  parsed: ParseOutcome;
  /** Addresses the mail may have been delivered to, best first (`recipientCandidates`). */
  recipients: string[];
}

interface PreparedBatch {
  messages: Prepared[];
  /** The UID of a message passed over as `fetch_failed` (the batch holds only it). */
  passed?: number;
  /** How many of the UIDs asked for this batch covers; the rest go to the next one. */
  consumed: number;
  /**
   * The UIDs of the batch the FETCH left out that the server still lists (`stillListed`),
   * in order: the batch stops before the first, and so does this sync; the next one
   * fetches them again.
   */
  missing?: number[];
  /** Every UID the FETCH did return, also those behind the first missing (not ingested this time). */
  returned?: number[];
  /** Gives the batch's bytes back to the shared budget (once ingested, or not used). */
  release: () => void;
}

/**
 * The fields in which the delivering MTA names the envelope recipient. Mail that reached
 * the mailbox by Bcc, an alias or a forward names our address only there, not in To/Cc.
 * X-Original-To (Postfix), Envelope-To (Exim) and X-Envelope-To carry the recipient as
 * the sender's server gave it, before alias expansion; Delivered-To (RFC 9228; Postfix,
 * Dovecot LMTP, Gmail) usually the final one — the mailbox's own address, on every mail
 * an alias brought in as well.
 */
export const DELIVERY_FIELDS = ["x-original-to", "envelope-to", "x-envelope-to", "delivered-to"];

/**
 * The addresses in a header block's delivery fields, earliest hop first: each server on
 * the way adds its fields above the earlier ones, so a forward's first recipient (the
 * address the sender used) is the bottom-most.
 */
export function deliveryAddresses(headers: Buffer | undefined): { original: string[]; final: string[] } {
  const found = { original: [] as string[], final: [] as string[] };
  if (!headers || headers.length === 0) return found;
  for (const [name, value] of headerFields(headers.toString("utf8")).reverse()) {
    if (!DELIVERY_FIELDS.includes(name)) continue;
    const into = name === "delivered-to" ? found.final : found.original;
    // Bare, bracketed, or a list (Exim's Envelope-To may name several): each addr-spec.
    for (const m of value.matchAll(/[^\s<>,;:"'()[\]]+@[^\s<>,;:"'()[\]]+/g)) into.push(m[0]);
  }
  return found;
}

/**
 * Which addresses a mail was meant for, best first; the first that is one of the
 * account's addresses decides its address (and so its queue). The original envelope
 * recipient outranks To/Cc: it is the one this copy was delivered for (a Bcc, an alias).
 * Delivered-To comes after To/Cc: it mostly names the mailbox itself (Dovecot LMTP's and
 * Gmail's default), so ranked first it would pull every alias's mail to the mailbox's
 * address; it still decides for Bcc'd and forwarded mail whose To/Cc name none of ours.
 */
export function recipientCandidates(headers: Buffer | undefined, toCc: string[]): string[] {
  const { original, final } = deliveryAddresses(headers);
  return [...original, ...toCc, ...final];
}

const validDate = (d: Date | string | undefined): Date | null => {
  const date = d ? new Date(d) : null;
  return date && !Number.isNaN(date.getTime()) ? date : null;
};

/**
 * The answers of a UID FETCH to what it asked, one per UID, in UID order. A server also
 * sends FETCH responses nobody asked for — another client's flag changes during the
 * fetch — which imapflow returns with the rest: without a UID (Dovecot), or with one
 * that was not asked for (servers that always send it, or QRESYNC). Taken as answers they
 * put `undefined` into the next fetch's UID set (a "permanent" error that marked the
 * account INVALID), or an unrelated UID into the batch, out of order, past its checkpoint.
 */
function answered<T extends { uid?: number }>(
  asked: number[],
  rows: T[],
  carriesData: (row: T) => boolean,
): (T & { uid: number })[] {
  const wanted = new Set(asked);
  const byUid = new Map<number, T & { uid: number }>();
  for (const row of rows) {
    const uid = row.uid;
    if (uid === undefined || !wanted.has(uid) || !carriesData(row)) continue;
    if (!byUid.has(uid)) byUid.set(uid, row as T & { uid: number });
  }
  return [...byUid.values()].sort((a, b) => a.uid - b.uid);
}

/**
 * Fetches and parses a batch in two steps, so that no message costs more memory than the
 * size limit: first RFC822.SIZE, INTERNALDATE and the delivery fields of every UID; then
 * the source of the messages within the limit (only as many as fit in the batch's byte
 * budget), and of oversize ones only the first `HEADLINE_BYTES` (sender, subject and
 * Message-ID for the rejected record, as SMTP keeps them) and the ENVELOPE (To/Cc for
 * routing). An oversize message becomes the parser's own rejection (reason `oversize`,
 * its real size), which ingest records, and the checkpoint and the server action pass it
 * like any other mail. Downloaded whole first, it could exhaust memory, and then again on
 * every restart: the checkpoint never got past it.
 */
async function prepareBatch(
  ctx: EngineContext,
  client: ImapFlow,
  uids: number[],
  limits: FetchLimits,
): Promise<PreparedBatch> {
  // UIDs expunged between SEARCH and FETCH simply do not come back; the next search skips them.
  const meta = answered(
    uids,
    await client.fetchAll(
      uids,
      { uid: true, size: true, internalDate: true, headers: DELIVERY_FIELDS },
      { uid: true },
    ),
    (m) => m.size !== undefined || m.internalDate !== undefined,
  );
  const oversize = (m: { size?: number }) => m.size !== undefined && m.size > limits.maxBytes;
  let bytes = 0;
  let n = 0;
  for (; n < meta.length; n++) {
    const m = meta[n]!;
    // A server that does not say the size is trusted no further than the limit.
    const cost = oversize(m) ? 0 : (m.size ?? limits.maxBytes);
    if (n > 0 && bytes + cost > limits.batchBytes) break;
    bytes += cost;
  }
  const taken = meta.slice(0, n);
  const consumed = n < meta.length ? uids.indexOf(meta[n]!.uid) : uids.length;
  const small = taken.filter((m) => !oversize(m)).map((m) => m.uid);
  const big = taken.filter(oversize).map((m) => m.uid);
  // The sources are held until the batch is ingested: taken from the process's budget
  // first, so all mailboxes together stay within it (they wait their turn).
  const release = await limits.budget.acquire(bytes + big.length * HEADLINE_BYTES);
  try {
    const messages = await fetchSources(ctx, client, limits, taken, small, big, oversize);
    const missing = await stillListed(client, uids.slice(0, consumed), messages);
    const blocked = missing[0];
    if (blocked === undefined) return { messages, consumed, release };
    return {
      messages: messages.filter((m) => m.uid < blocked),
      consumed: uids.indexOf(blocked),
      release,
      missing,
      // What came back behind it counts as fetched too: a miss in between is no miss "in
      // a row" (second re-probe: such a UID was passed without ever being fetched).
      returned: messages.map((m) => m.uid),
    };
  } catch (err) {
    release();
    throw err;
  }
}

/**
 * The first UID a batch asked for and did not get that the server still lists, if any.
 * A UID that FETCH leaves out was mostly expunged in between: the next SEARCH does not list
 * it, and it is right to go on past it. But a server that drops one message from a FETCH
 * answer (under load, or a message it cannot convert) and still has it: ingesting the mail
 * after it moved the checkpoint past it, and it was never fetched again — lost (note 15).
 * One UID SEARCH, only when something is missing, tells the two apart.
 */
async function stillListed(client: ImapFlow, asked: number[], got: Prepared[]): Promise<number[]> {
  const have = new Set(got.map((m) => m.uid));
  const missing = asked.filter((u) => !have.has(u));
  if (missing.length === 0) return [];
  // imapflow answers `false` when the command fails (NO, BAD, a dropped connection): that
  // says nothing about the UIDs, so all of them count as still there (re-probe: read as
  // "none listed", the mail was passed and lost once more).
  const listed = await client.search({ uid: missing.join(",") }, { uid: true });
  if (!listed) return missing;
  const wanted = new Set(missing);
  return listed.filter((u) => wanted.has(u)).sort((a, b) => a - b);
}

/** The second step of `prepareBatch`: the sources (or heads) of the messages it took. */
async function fetchSources(
  ctx: EngineContext,
  client: ImapFlow,
  limits: FetchLimits,
  taken: Awaited<ReturnType<ImapFlow["fetchAll"]>>,
  small: number[],
  big: number[],
  oversize: (m: { size?: number }) => boolean,
): Promise<Prepared[]> {
  const [sources, heads] = await Promise.all([
    // At most one byte past the limit even when RFC822.SIZE understated it: BODY.PEEK[]<0.n>.
    small.length > 0
      ? client.fetchAll(
          small,
          { uid: true, source: { start: 0, maxLength: limits.maxBytes + 1 } },
          { uid: true },
        )
      : [],
    big.length > 0
      ? client.fetchAll(
          big,
          { uid: true, envelope: true, source: { start: 0, maxLength: HEADLINE_BYTES } },
          { uid: true },
        )
      : [],
  ]);
  const sourceOf = new Map(
    answered(small, sources, (m) => m.source !== undefined).map((m) => [m.uid, m.source!]),
  );
  const headOf = new Map(answered(big, heads, (m) => m.source !== undefined).map((m) => [m.uid, m]));
  const messages = await Promise.all(
    taken.map(async (m): Promise<Prepared | null> => {
      const internalDate = validDate(m.internalDate);
      if (oversize(m)) {
        const head = headOf.get(m.uid);
        if (!head) return null; // expunged in between
        const env = head.envelope;
        const listed = [...(env?.to ?? []), ...(env?.cc ?? [])].flatMap((a) =>
          a.address ? [a.address] : [],
        );
        return {
          uid: m.uid,
          // Ingest keeps no raw bytes for oversize mail.
          raw: Buffer.alloc(0),
          internalDate,
          parsed: oversizeOutcome(head.source ?? Buffer.alloc(0), m.size!, limits.maxBytes),
          recipients: recipientCandidates(m.headers, listed),
        };
      }
      const raw = sourceOf.get(m.uid);
      if (!raw) return null;
      // Cut off at the limit: RFC822.SIZE understated it. Its size is at least what came.
      const parsed =
        raw.length > limits.maxBytes
          ? oversizeOutcome(raw, Math.max(raw.length, m.size ?? 0), limits.maxBytes)
          : // the worker pool parses a batch in parallel
            await ctx.mime.parse(raw).catch((err: unknown) => {
              throw new ParserUnavailableError(err);
            });
      const listed = parsed.ok ? [...parsed.mail.to, ...parsed.mail.cc].map((a) => a.address) : [];
      return { uid: m.uid, raw, internalDate, parsed, recipients: recipientCandidates(m.headers, listed) };
    }),
  );
  return messages.filter((m) => m !== null);
}

/** The parser pool refused to parse (closed, broken): not a failure of the server's FETCH. */
class ParserUnavailableError extends Error {
  constructor(cause: unknown) {
    super(`the MIME parser is unavailable: ${cause instanceof Error ? cause.message : String(cause)}`, {
      cause,
    });
    this.name = "ParserUnavailableError";
  }
}

/** The batch of one message the server failed to deliver too often: a rejected record, no bytes. */
function passedOver(uid: number, detail: string): PreparedBatch {
  return {
    messages: [
      {
        uid,
        raw: Buffer.alloc(0),
        internalDate: null,
        parsed: { ok: false, reason: "fetch_failed", detail, sizeBytes: 0 },
        // Nothing of it is known: the account's first address takes the record.
        recipients: [],
      },
    ],
    consumed: 1,
    passed: uid,
    release: () => {},
  };
}

async function ingestBatch(
  ctx: EngineContext,
  account: ImapAccount,
  uidValidity: number,
  batch: Prepared[],
  resolve: (recipients: string[]) => { tenantId: string; addressId: string },
  resyncThrough: number | null,
): Promise<number[]> {
  // Recorded with the checkpoint: what a repair after a stop or crash may re-apply, and to what.
  const batchOf = { firstUid: batch[0]!.uid, action: account.afterProcess };
  const inputs: IngestInput[] = batch.map((m) => {
    const outcome = m.parsed;
    const target = resolve(m.recipients);
    return {
      tenantId: target.tenantId,
      addressId: target.addressId,
      raw: m.raw,
      parsed: outcome,
      // The server's INTERNALDATE is when the mail arrived: a backlog must not change routing.
      receivedAt: m.internalDate ?? ctx.clock.now(),
      source: {
        kind: "imap",
        accountId: account.id,
        mailbox: account.mailbox,
        uidValidity,
        uid: m.uid,
        resyncThrough,
        server: { host: account.host, port: account.port, user: account.user },
        batch: batchOf,
      },
      ...(resyncThrough !== null && m.uid <= resyncThrough ? { resync: true } : {}),
    };
  });
  try {
    // The whole batch in one transaction (one commit, one checkpoint write)...
    await ingestMessages(ctx, inputs);
  } catch (err) {
    // ...and when any of it fails, nothing of it was committed: once more one message per
    // transaction, so everything before the bad message lands and the bad one fails alone
    // (and is retried from the checkpoint by the next sync, as before).
    ctx.log.warn({ err, account: account.id }, "batch ingest failed; retrying the batch message by message");
    const done: number[] = [];
    for (const input of inputs) {
      // A message the database can never store is quarantined, not retried forever.
      await ingestOrQuarantine(ctx, input);
      done.push((input.source as { uid: number }).uid);
    }
    return done;
  }
  return batch.map((m) => m.uid);
}

/**
 * A stop or crash between a batch's commits and its server action leaves that batch
 * unflagged (or unmoved). On a fresh session, re-apply the action to that batch only: the
 * checkpoint records its first UID and the action in force when it was committed
 * (`batch_first_uid`, `batch_action`). MOVE moves what of it is still here, SEEN flags what
 * of it is unseen. Nothing when the action recorded is not the account's action now: an
 * admin who switches LEAVE to MOVE or SEEN changes what happens to new mail, not to the
 * mailbox's history. Until 2026-11-23 MOVE took everything at or below the checkpoint and
 * SEEN the last batch's worth of UIDs, whatever action they had been ingested under: 12
 * mails ingested under LEAVE were moved at the switch (a shared mailbox could have had
 * years of mail moved at once).
 */
async function repairAfterProcess(
  ctx: EngineContext,
  client: ImapFlow,
  account: ImapAccount,
  uidValidity: number,
  log: Logger,
): Promise<void> {
  if (account.afterProcess === "LEAVE") return;
  const cp = await getCheckpoint(ctx, account.id, account.mailbox);
  if (!cp || cp.uidValidity !== uidValidity || cp.lastUid < 1) return;
  if (cp.batchAction !== account.afterProcess || cp.batchFirstUid === null) return;
  const from = Math.min(cp.batchFirstUid, cp.lastUid);
  const range = `${from}:${cp.lastUid}`;
  const query = account.afterProcess === "SEEN" ? { uid: range, seen: false } : { uid: range };
  const found = ((await client.search(query, { uid: true })) || []).filter(
    (u) => u >= from && u <= cp.lastUid,
  );
  // Not on mail the server failed to deliver (fetch_failed, passed over): it stays where it
  // is, for an admin to look at.
  const passed =
    found.length === 0
      ? new Set<number>()
      : await passedOverUids(ctx, account.id, account.mailbox, uidValidity);
  const uids = found.filter((u) => !passed.has(u));
  if (uids.length === 0) return;
  log.info(
    { count: uids.length, action: account.afterProcess },
    "re-applying the server action of the last committed batch",
  );
  await afterProcess(
    ctx,
    client,
    account,
    uids.sort((a, b) => a - b),
    log,
  );
}

/**
 * After commit only. A failure here loses nothing: the message is stored, only the
 * flag/move is missing. What the server refuses (imapflow answers a NO with `false`, not an
 * error) is logged and shown on the account (`lastError`, status left VALID: mail still
 * comes in); a read-only mailbox and a move into the mailbox itself are not attempted.
 */
async function afterProcess(
  ctx: EngineContext,
  client: ImapFlow,
  account: ImapAccount,
  uids: number[],
  log: Logger,
): Promise<void> {
  if (uids.length === 0 || account.afterProcess === "LEAVE") return;
  const problem = await serverAction(client, account, uids);
  if (problem === null) return;
  log.warn({ action: account.afterProcess, problem }, "server action after ingest not done");
  await recordAccountStatus(ctx, account.id, "VALID", `server action: ${problem}`, account.version).catch(
    () => {},
  );
}

/** The configured server action on committed mail; what kept it from being done, or null. */
async function serverAction(client: ImapFlow, account: ImapAccount, uids: number[]): Promise<string | null> {
  // Flags and moves would fail on every message, and a MOVE there (COPY, then an EXPUNGE
  // the server refuses) would copy the mail again in every session's repair.
  if (client.mailbox ? client.mailbox.readOnly : false) {
    return "the mailbox is read-only: processed mail is left as it is";
  }
  if (account.afterProcess === "SEEN") {
    const ok = await client.messageFlagsAdd(uids, ["\\Seen"], { uid: true });
    return ok === false ? "the server refused to set \\Seen" : null;
  }
  if (!account.moveTo) return "MOVE is configured without a folder: processed mail is left as it is";
  if (sameMailboxName(account.moveTo, account.mailbox)) {
    // Saved before this was checked, or by hand: mail moved onto itself gets a new UID
    // above the checkpoint and would be read and moved again without end.
    return `the MOVE folder ${JSON.stringify(account.moveTo)} is the mailbox that is read: processed mail is left as it is`;
  }
  const moved = await client.messageMove(uids, account.moveTo, { uid: true }).catch(() => false as const);
  if (moved !== false) return null;
  // Most likely the folder does not exist yet (TRYCREATE): create it once and retry.
  await client.mailboxCreate(account.moveTo).catch(() => {});
  const again = await client.messageMove(uids, account.moveTo, { uid: true }).catch(() => false as const);
  return again === false ? `the server refused to move mail to ${JSON.stringify(account.moveTo)}` : null;
}

/** How long a LOGOUT may take before the connection is simply closed. */
const LOGOUT_TIMEOUT_MS = 5_000;

/**
 * LOGOUT, or a close once it fails or takes longer than `LOGOUT_TIMEOUT_MS`. A connection
 * that went silent (a dead NAT entry, a firewall dropping packets) answers nothing, and
 * imapflow's own socket timeout is minutes: an unbounded LOGOUT held up the worker's stop,
 * the reload of every account of the process and the shutdown for ~5 minutes. Closing the
 * socket also fails whatever command was still waiting on it.
 */
async function endSession(client: ImapFlow): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  const outcome = await Promise.race([
    client.logout().then(
      () => "done" as const,
      () => "failed" as const,
    ),
    new Promise<"timeout">((resolve) => {
      timer = setTimeout(() => resolve("timeout"), LOGOUT_TIMEOUT_MS);
    }),
  ]);
  clearTimeout(timer);
  if (outcome !== "done") client.close();
}

const sleep = (ms: number, signal: AbortSignal): Promise<void> =>
  new Promise((resolve) => {
    if (signal.aborted) return resolve();
    const t = setTimeout(done, ms);
    function done() {
      clearTimeout(t);
      signal.removeEventListener("abort", done);
      resolve();
    }
    signal.addEventListener("abort", done);
  });

/**
 * One long-running fetcher per mailbox: take the advisory lock (retrying while another
 * instance has it), connect, sync, then wait for IDLE's EXISTS, the poll interval or a
 * poll request, and sync again. Errors are mapped to our kinds and written to the
 * account; transient ones reconnect with exponential backoff, bad credentials park the
 * account until an admin edits it or a connection test finds it VALID (`whileParked`).
 */
export class MailboxWorker {
  private readonly abort = new AbortController();
  private wakeUp: (() => void) | null = null;
  private woken = false;
  private waiters: (() => void)[] = [];
  private lock: MailboxLock;
  private client: ImapFlow | null = null;
  /** Mail the current session committed (`syncMailbox`'s `onCommitted`). */
  private committed = 0;
  /** The client of a session still connecting: `stop` closes it rather than wait out its timeouts. */
  private connecting: ImapFlow | null = null;
  private running: Promise<void> | null = null;
  private readonly log: Logger;

  constructor(
    private readonly ctx: EngineContext,
    readonly account: ImapAccount,
    private readonly settings: ImapSettings,
    /** Shared by the process's workers (`ByteBudget`); a private one without it. */
    private readonly budget: ByteBudget = new ByteBudget(
      settings.bufferedBytes ?? DEFAULT_IMAP_BUFFERED_BYTES,
    ),
    /** The account's fetch failures, kept by the connector across workers (`FetchTrouble`). */
    private readonly trouble: FetchTrouble = new FetchTrouble(),
  ) {
    this.lock = new MailboxLock(settings.databaseUrl, account.id);
    this.log = ctx.log.child({ component: "imap", accountId: account.id });
  }

  get holdsLock(): boolean {
    return this.lock.isHeld && this.client !== null;
  }

  start(): void {
    this.running ??= this.run().catch((err) => this.log.error({ err }, "IMAP worker crashed"));
  }

  /** Sync now (used by the poll job when this process owns the mailbox); resolves after the next sync attempt. */
  requestSync(): Promise<void> {
    return new Promise((resolve) => {
      this.waiters.push(resolve);
      this.wake();
    });
  }

  async stop(): Promise<void> {
    this.abort.abort();
    this.wake();
    // A server that accepted TCP but never greets held every account's reload (and the
    // shutdown) for its greeting timeout (15 s), or 30 s for one that drops packets.
    this.connecting?.close();
    const c = this.client;
    if (c) await endSession(c);
    await this.running;
    for (const w of this.waiters.splice(0)) w();
  }

  private wake(): void {
    this.woken = true;
    this.wakeUp?.();
  }

  private waitForWake(ms: number): Promise<void> {
    if (this.woken || this.abort.signal.aborted) {
      this.woken = false;
      return Promise.resolve();
    }
    return new Promise((resolve) => {
      const t = setTimeout(done, ms);
      const self = this;
      function done() {
        clearTimeout(t);
        self.wakeUp = null;
        self.woken = false;
        resolve();
      }
      this.wakeUp = done;
    });
  }

  private get stopped(): boolean {
    return this.abort.signal.aborted;
  }

  private async run(): Promise<void> {
    const s = this.settings;
    let backoffMs = 1000;
    /** When the login was rejected (the account is parked), or null. */
    let parkedAt: Date | null = null;
    while (!this.stopped) {
      if (parkedAt) {
        await this.whileParked(parkedAt);
        parkedAt = null;
        backoffMs = 1000;
        continue;
      }
      try {
        if (!(await this.lock.tryAcquire())) {
          await sleep(s.lockRetrySeconds * 1000, this.abort.signal);
          continue;
        }
      } catch (err) {
        this.log.warn({ err }, "advisory lock unavailable; retrying");
        await this.lock.release();
        await sleep(s.lockRetrySeconds * 1000, this.abort.signal);
        continue;
      }
      this.log.info({}, "mailbox lock acquired");
      try {
        while (!this.stopped) {
          const startedAt = Date.now();
          this.committed = 0;
          const outcome = await this.session();
          if (outcome === "lock-lost" || outcome === "stopped") break;
          if (outcome === "parked") {
            // The lock is let go while parked; taken again when the worker resumes.
            parkedAt = this.ctx.clock.now();
            break;
          }
          // Only a session that lasted, or that committed mail, resets the backoff: a server
          // that accepts the login and drops the connection at once (a proxy, a connection
          // limit) would otherwise get a reconnect, a sync and a search every second,
          // forever. A session that got mail in before it failed (the batches before an
          // undeliverable message, which is then fetched alone and passed: FetchTrouble)
          // made progress, and the next one follows after a second, not after a minute.
          const lasted = outcome === "ok" && Date.now() - startedAt >= HEALTHY_SESSION_MS;
          if (lasted || this.committed > 0) backoffMs = 1000;
          // A permanent error (missing folder, TLS mismatch) waits the longest backoff: it
          // may be fixed on the server without an edit here, so it is retried, slowly.
          await sleep(outcome === "permanent" ? 60_000 : backoffMs, this.abort.signal);
          backoffMs = Math.min(backoffMs * 2, 60_000);
        }
      } finally {
        await this.lock.release();
      }
    }
  }

  /**
   * Parked after the server rejected the login: no login again (a wrong password retried
   * only gets the mailbox locked) until a verdict newer than the rejection, about these
   * settings, says the login works (`parkedAccountCleared`: `testMailAccount` found the
   * account VALID). The row is read every `pauseRecheckSeconds`, a database query and no
   * connection. An admin's edit restarts the worker through the supervisor, and an account
   * still parked at the supervisor's next reload has its worker stopped there (it is not
   * listed). Until 2026-11-23 the worker's loop simply ended here and it stayed in the
   * supervisor's list: a test that found the account VALID again before that reload left
   * it without a worker for good, and its mail came only with the one-shot poll.
   */
  private async whileParked(since: Date): Promise<void> {
    this.log.warn({}, "login rejected: parked until a connection test finds the account VALID");
    while (!this.stopped) {
      await sleep(this.settings.pauseRecheckSeconds * 1000, this.abort.signal);
      if (this.stopped) return;
      try {
        if (await parkedAccountCleared(this.ctx, this.account.id, this.account.version, since)) {
          this.log.info({}, "the account was found VALID again: resuming");
          return;
        }
      } catch (err) {
        this.log.warn({ err }, "could not read the parked account; looking again later");
      }
    }
  }

  /** One connection's life: connect, sync/wait until it closes or fails. */
  private async session(): Promise<"ok" | "transient" | "permanent" | "parked" | "lock-lost" | "stopped"> {
    const client = imapClient(this.account, this.settings);
    let closed = false;
    client.on("exists", () => this.wake());
    client.on("close", () => {
      closed = true;
      this.wake();
    });
    // Socket errors also surface as a rejected command or a close; logging is enough here.
    client.on("error", (err: unknown) =>
      this.log.warn({ err: describeImapError(err) }, "IMAP connection error"),
    );
    try {
      this.connecting = client;
      if (this.stopped) return "stopped";
      await client.connect();
      this.connecting = null;
      this.client = client;
      // VALID once the folder is selected, not at login: a missing folder flipped the
      // account VALID → INVALID on every retry.
      let valid = false;
      const onSelected = async () => {
        if (valid) return;
        valid = true;
        await recordAccountStatus(this.ctx, this.account.id, "VALID", null, this.account.version);
      };
      let paused: FetchPause | null = null;
      let firstSync = true;
      let retrySoon = false;
      while (!this.stopped && !closed) {
        if (!(await this.lock.alive())) {
          this.log.warn({}, "lost the mailbox lock (database session ended); re-acquiring");
          return "lock-lost";
        }
        const waiters = this.waiters.splice(0);
        this.woken = false;
        try {
          const r = await syncMailbox(this.ctx, client, this.account, {
            batchSize: this.settings.batchSize,
            maxMessageBytes: this.settings.maxMessageBytes,
            batchBytes: this.settings.batchBytes,
            log: this.log,
            isStopped: () => this.stopped,
            repair: firstSync,
            budget: this.budget,
            trouble: this.trouble,
            onSelected,
            lockAlive: () => this.lock.alive(),
            onCommitted: (n) => {
              this.committed += n;
            },
          });
          firstSync = false;
          if (r.lockLost) {
            this.log.warn({}, "lost the mailbox lock while fetching; re-acquiring");
            return "lock-lost";
          }
          if (r.paused !== paused) {
            if (r.paused === "account_off")
              this.log.info({}, "account disabled or archived: fetching stopped");
            else if (r.paused === "email_off")
              this.log.info({}, "tenant's email channel is off: fetching paused");
            else if (r.paused === "no_address")
              this.log.info({}, "no address points at the account: fetching paused");
            else if (r.paused) this.log.info({}, "tenant over its processing limit: fetching paused");
            else this.log.info({ was: paused }, "fetching resumed");
          }
          paused = r.paused;
          retrySoon = r.retrySoon === true;
        } finally {
          for (const w of waiters) w();
        }
        await this.waitForWake(
          (paused || retrySoon ? this.settings.pauseRecheckSeconds : this.settings.pollSeconds) * 1000,
        );
      }
      return this.stopped ? "stopped" : "ok";
    } catch (err) {
      if (this.stopped) return "stopped";
      const info = describeImapError(err);
      this.log.warn({ kind: info.kind, code: info.code, msg: info.message }, "IMAP session failed");
      await recordAccountStatus(
        this.ctx,
        this.account.id,
        // A passing failure says nothing about the settings: the last verdict stands
        // (an account that never connected stays UNKNOWN, with the error beside it).
        info.kind === "transient" ? null : "INVALID",
        `${info.kind}: ${info.message}`,
        this.account.version,
      ).catch(() => {});
      if (info.kind === "auth") return "parked";
      return info.kind;
    } finally {
      this.connecting = null;
      this.client = null;
      for (const w of this.waiters.splice(0)) w();
      if (!closed) await endSession(client);
    }
  }
}

export interface ImapConnector {
  /** Starts the supervisor: workers for every account now and for new ones each poll interval. */
  start(): void;
  /** The reconciliation poll for one account (the pg-boss job's handler). */
  pollAccount(accountId: string): Promise<"synced" | "skipped" | "gone">;
  /** Accounts this process currently runs a worker for. */
  workers(): ReadonlyMap<string, MailboxWorker>;
  /** Reloads the account list now (also done every poll interval). */
  reconcile(): Promise<void>;
  /** The bytes all mailboxes of this process may hold at once (`IMAP_MAX_BUFFERED_MB`). */
  readonly budget: ByteBudget;
  stop(): Promise<void>;
}

/**
 * The supervisor: one MailboxWorker per fetchable account, restarted when an admin edits
 * the account, stopped when it is disabled or archived. `onTick` runs each interval with
 * the accounts it saw (the job layer schedules their reconciliation polls from it).
 */
export function createImapConnector(
  ctx: EngineContext,
  settings: ImapSettings,
  onTick: (accountIds: string[]) => Promise<void> = async () => {},
): ImapConnector {
  const log = ctx.log.child({ component: "imap-supervisor" });
  const budget = new ByteBudget(settings.bufferedBytes ?? DEFAULT_IMAP_BUFFERED_BYTES);
  const workers = new Map<string, MailboxWorker>();
  // Per mailbox (account, server, login, folder), across its workers (an admin's edit
  // starts a new one) and one-shot polls; another server or folder starts afresh.
  const troubles = new Map<string, FetchTrouble>();
  const troubleOf = (a: ImapAccount): FetchTrouble => {
    const key = `${a.id}\n${imapServerKey(a)}\n${a.mailbox}`;
    const known = troubles.get(key);
    if (known) return known;
    const fresh = new FetchTrouble(3, (settings.missGapSeconds ?? settings.pauseRecheckSeconds) * 1000);
    troubles.set(key, fresh);
    return fresh;
  };
  registerGauge(
    "switchboard_imap_buffered_bytes",
    "Mail all IMAP mailboxes of the process hold in memory now (IMAP_MAX_BUFFERED_MB bounds it).",
    () => budget.held,
  );
  registerGauge(
    "switchboard_imap_workers",
    "IMAP mailbox workers running in this process.",
    () => workers.size,
  );
  let timer: NodeJS.Timeout | null = null;
  let stopped = false;
  let reconciling: Promise<void> | null = null;

  const reconcileOnce = async () => {
    const accounts = await listImapAccounts(ctx);
    const wanted = new Map(accounts.map((a) => [a.id, a]));
    // Stopped together: each is bounded (`endSession`), but one after the other a few
    // silent connections would still hold up every other account's reload.
    const stopping: Promise<void>[] = [];
    for (const [id, w] of workers) {
      const a = wanted.get(id);
      if (!a || a.version !== w.account.version) {
        workers.delete(id);
        stopping.push(w.stop());
      }
    }
    await Promise.all(stopping);
    for (const a of accounts) {
      if (stopped || workers.has(a.id)) continue;
      const w = new MailboxWorker(ctx, a, settings, budget, troubleOf(a));
      workers.set(a.id, w);
      w.start();
    }
    await onTick(accounts.map((a) => a.id));
  };
  const reconcile = async () => {
    reconciling ??= reconcileOnce().finally(() => {
      reconciling = null;
    });
    return reconciling;
  };

  return {
    start() {
      const tick = () => {
        if (stopped) return;
        reconcile()
          .catch((err) => log.error({ err }, "IMAP account reload failed"))
          .finally(() => {
            if (!stopped) timer = setTimeout(tick, settings.pollSeconds * 1000);
          });
      };
      tick();
    },
    reconcile,
    budget,
    workers: () => workers,
    async pollAccount(accountId) {
      const local = workers.get(accountId);
      if (local?.holdsLock) {
        await local.requestSync();
        return "synced";
      }
      const account = await getImapAccount(ctx, accountId);
      if (!account) return "gone";
      const lock = new MailboxLock(settings.databaseUrl, accountId);
      try {
        // Held by a worker (ours while connecting, or another instance's): its loop polls.
        if (!(await lock.tryAcquire())) return "skipped";
        const client = imapClient(account, { ...settings, idle: false });
        client.on("error", () => {});
        try {
          await client.connect();
          await syncMailbox(ctx, client, account, {
            onSelected: () => recordAccountStatus(ctx, accountId, "VALID", null, account.version),
            batchSize: settings.batchSize,
            maxMessageBytes: settings.maxMessageBytes,
            batchBytes: settings.batchBytes,
            log: log.child({ accountId }),
            repair: true,
            budget,
            trouble: troubleOf(account),
          });
        } catch (err) {
          const info = describeImapError(err);
          await recordAccountStatus(
            ctx,
            accountId,
            // A passing failure says nothing about the settings: the last verdict stands
            // (an account that never connected stays UNKNOWN, with the error beside it).
            info.kind === "transient" ? null : "INVALID",
            `${info.kind}: ${info.message}`,
            account.version,
          ).catch(() => {});
          throw ImapConnectorError.from(err);
        } finally {
          await endSession(client);
        }
        return "synced";
      } finally {
        await lock.release();
      }
    },
    async stop() {
      stopped = true;
      if (timer) clearTimeout(timer);
      await reconciling?.catch(() => {});
      await Promise.all([...workers.values()].map((w) => w.stop()));
      workers.clear();
    },
  };
}
