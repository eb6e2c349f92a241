import { type Column, type SQL, sql } from "drizzle-orm";
import type postgres from "postgres";
import type { Db } from "../db/client.js";
import type { Logger } from "./context.js";

/**
 * Full-text search over messages (the conversation list's `text` filter).
 *
 * A message's search document is its subject and text through PostgreSQL's `simple`
 * configuration. Building it costs ~1 µs of PostgreSQL time per word (3 ms for a 20 KB
 * body), so it is not built in the ingest transaction: a trigger queues every inserted
 * message (`message_search_queue`), and the indexer below writes the documents into
 * `message_search` (GIN-indexed) after the fact. A search reads the index for indexed
 * messages and builds the documents of the tenant's still-queued messages on the fly, so
 * results are complete at any moment; only their cost depends on the indexer keeping up.
 * See docs/search.md.
 */

/**
 * What of a message goes into its document. PostgreSQL refuses a tsvector over 1 MB
 * ("string is too long for tsvector"); 100,000 characters of text stay below that for any
 * text (the worst case measured, two-character CJK words, is ~470 KB), so one huge mail
 * can neither fail its indexing nor every search that reaches it.
 */
export const SEARCH_SUBJECT_CHARS = 1_000;
export const SEARCH_TEXT_CHARS = 100_000;

/** The search document of the `message` row under `alias`; one expression for index and fallback. */
export function searchDocumentOf(alias: string): SQL {
  const m = sql.identifier(alias);
  return sql`to_tsvector('simple', left(${m}.subject, ${sql.raw(String(SEARCH_SUBJECT_CHARS))}) || ' ' || left(${m}.text, ${sql.raw(String(SEARCH_TEXT_CHARS))}))`;
}

/**
 * A text search first tests the newest this many conversations (that pass the list's other
 * filters) one by one, and reads all of the tenant's matches only when those did not fill
 * the page (listConversations): a common word costs a few hundred index probes instead of
 * reading every message that has it; a rare word costs the probes plus its few matches.
 */
export const SEARCH_PROBE = 500;

/**
 * Before probing, a text search reads up to this many of the tenant's indexed matches: a
 * word with fewer has them all, and the list is then one ordered pass over the
 * conversations with that set in hand (listConversations).
 */
export const SEARCH_CAP = 1000;

/**
 * Subject substrings are found by trigrams (migrations/0013) from this many characters on;
 * a shorter text has no trigram to look up, and each subject is tested instead.
 */
export const SUBJECT_TRIGRAM_MIN = 3;

/**
 * Conversation ids (as `conversation_id`) of `tenantId` whose subject matches the ILIKE
 * `pattern`, up to `limit`: a read of the trigram index, not of every conversation.
 */
export function subjectMatching(tenantId: string, pattern: string, limit: number): SQL {
  return sql`SELECT c.id AS conversation_id FROM conversation c
     WHERE c.tenant_id = ${tenantId} AND c.subject ILIKE ${pattern} LIMIT ${limit}`;
}

const tsquery = (query: string): SQL => sql`plainto_tsquery('simple', ${query})`;

/**
 * Whether an indexed message of the conversation `id` has every word of `query`: one probe
 * of the conversation's documents. A scalar subquery, not EXISTS: PostgreSQL may turn an
 * EXISTS under OR into one pass over every document, which for a common word is the slow
 * path this probe is there to avoid.
 */
export function indexedMatchOf(id: SQL | Column, query: string): SQL {
  return sql`(SELECT true FROM message_search s WHERE s.conversation_id = ${id} AND s.document @@ ${tsquery(query)} LIMIT 1) IS NOT NULL`;
}

/**
 * Conversation ids (a parenthesised query) of `tenantId`'s indexed messages that have every
 * word of `query`: all of them, or up to `limit`.
 */
export function indexedMatching(tenantId: string, query: string, limit?: number): SQL {
  return sql`(SELECT s.conversation_id FROM message_search s
     WHERE s.tenant_id = ${tenantId} AND s.document @@ ${tsquery(query)}${limit === undefined ? sql`` : sql` LIMIT ${limit}`})`;
}

/**
 * Conversation ids (a subquery) of `tenantId` with a message still queued for the indexer
 * that has every word of `query`: its document is built here, so a search never misses
 * what the indexer has not reached yet.
 */
export function pendingMatching(tenantId: string, query: string): SQL {
  return sql`(SELECT m.conversation_id FROM message_search_queue p JOIN message m ON m.id = p.message_id
     WHERE p.tenant_id = ${tenantId} AND ${searchDocumentOf("m")} @@ ${tsquery(query)})`;
}

/**
 * Indexes up to `limit` queued messages, oldest first, in one transaction: takes them off
 * the queue (`SKIP LOCKED`, so several processes share the work without waiting on each
 * other) and writes their documents. Returns how many queue rows it took (messages deleted
 * since they were queued are dropped without a document).
 */
export async function indexQueuedMessages(db: Db, limit = 200): Promise<number> {
  const rows = await db.execute<{ n: number }>(sql`
    WITH taken AS (
      DELETE FROM message_search_queue WHERE ctid = ANY (ARRAY(
        SELECT ctid FROM message_search_queue ORDER BY enqueued_at LIMIT ${limit} FOR UPDATE SKIP LOCKED))
      RETURNING message_id),
    written AS (
      INSERT INTO message_search (message_id, tenant_id, conversation_id, document)
      SELECT m.id, m.tenant_id, m.conversation_id, ${searchDocumentOf("m")}
        FROM message m WHERE m.id IN (SELECT message_id FROM taken)
      ON CONFLICT (message_id) DO UPDATE SET document = EXCLUDED.document)
    SELECT count(*)::int AS n FROM taken`);
  return rows[0]?.n ?? 0;
}

/**
 * Whether anything is queued, how old the oldest is, and how many messages were queued
 * within the last second (counted up to `cap`). Bounded work however long the queue is
 * (after the migration it holds every stored message): the oldest is an index endpoint,
 * the recent ones a range of the index.
 */
async function queueState(
  db: Db,
  cap: number,
): Promise<{ queued: boolean; fresh: number; oldestAgeMs: number }> {
  const [row] = await db.execute<{ oldest_age_ms: number | null; fresh: number }>(sql`
    SELECT (extract(epoch FROM now() - (SELECT min(enqueued_at) FROM message_search_queue)) * 1000)::float8
             AS oldest_age_ms,
           (SELECT count(*)::int FROM (SELECT 1 FROM message_search_queue
              WHERE enqueued_at > now() - interval '1 second' LIMIT ${cap}) f) AS fresh`);
  const age = row?.oldest_age_ms ?? null;
  return { queued: age !== null, fresh: row?.fresh ?? 0, oldestAgeMs: age ?? 0 };
}

export interface SearchIndexerOptions {
  /** Queued messages per indexing transaction. */
  batchSize: number;
  /** How long the indexer waits during a burst before it looks again. */
  idleMs: number;
  /**
   * A burst: at least this many messages queued within the last second. The indexer then
   * stands back so ingest keeps the CPU, until the oldest queued message is `maxLagMs` old.
   */
  burstPerSecond: number;
  maxLagMs: number;
}

export interface SearchIndexer {
  /** Resolves when nothing is queued (for tests and benches); at once once stopped. */
  idle(): Promise<void>;
  stop(): Promise<void>;
}

/**
 * An idle indexer looks at the queue when the enqueue trigger's NOTIFY says messages were
 * queued (migrations/0012), and otherwise only this often: a missed notification (while
 * reconnecting) costs this much delay at most, never a message.
 */
export const SEARCH_SWEEP_MS = 60_000;

/**
 * The background indexer: one loop per process, on its own connection (`sql` listens).
 * - Nothing queued: it waits for a NOTIFY from the enqueue trigger (or `SEARCH_SWEEP_MS`).
 * - A burst arriving (`burstPerSecond`): it waits, up to `maxLagMs` of lag, as the burst's
 *   ingest matters more than the searchability of its messages, which searches cover
 *   meanwhile by building their documents.
 * - Otherwise it indexes a batch; while any mail is arriving it then pauses for as long as
 *   the batch took (at most half of one PostgreSQL backend), else it goes straight on.
 */
export function startSearchIndexer(
  database: { db: Db; sql: postgres.Sql },
  log: Logger,
  opts: SearchIndexerOptions,
): SearchIndexer {
  const { db } = database;
  let stopped = false;
  /** Ends the current wait early; `waitingForWork`: whether a NOTIFY may end it. */
  let wake: (() => void) | null = null;
  let waitingForWork = false;
  /**
   * A NOTIFY that came while the loop was not waiting for work (it was reading the queue,
   * indexing, or standing back). The queue read may have been taken before the notifying
   * commit, so the next wait for work must not begin: without this a message committed
   * during a queue read waited for the sweep, a minute.
   */
  let notified = false;
  let idleWaiters: (() => void)[] = [];
  const sleep = (ms: number, forWork = false) =>
    new Promise<void>((resolve) => {
      // Stopped while a statement ran (stop() had nothing to wake), or notified meanwhile.
      if (stopped || (forWork && notified)) return resolve();
      waitingForWork = forWork;
      const timer = setTimeout(() => {
        wake = null;
        waitingForWork = false;
        resolve();
      }, ms);
      wake = () => {
        clearTimeout(timer);
        wake = null;
        waitingForWork = false;
        resolve();
      };
    });
  // A NOTIFY ends only the wait for work: not a burst's stand-back, nor a pause between batches.
  const listening = database.sql
    .listen("switchboard_search", () => {
      if (waitingForWork) wake?.();
      else notified = true;
    })
    .catch((err) => {
      log.error({ err }, "search indexer could not LISTEN; it sweeps the queue instead");
      return null;
    });

  const loop = async () => {
    await listening;
    while (!stopped) {
      try {
        notified = false; // what it announced is visible to the read below
        const state = await queueState(db, Math.max(1, opts.burstPerSecond));
        if (!state.queued) {
          for (const w of idleWaiters) w();
          idleWaiters = [];
          await sleep(SEARCH_SWEEP_MS, true);
          continue;
        }
        const burst = state.fresh >= opts.burstPerSecond;
        if (burst && state.oldestAgeMs < opts.maxLagMs && idleWaiters.length === 0) {
          await sleep(opts.idleMs);
          continue;
        }
        const started = performance.now();
        await indexQueuedMessages(db, opts.batchSize);
        if (state.fresh > 0 && !stopped) await sleep(Math.max(1, performance.now() - started));
      } catch (err) {
        if (stopped) break;
        log.error({ err }, "search indexing failed; retrying");
        await sleep(Math.max(opts.idleMs, 1000));
      }
    }
  };
  const done = loop();
  return {
    idle: () =>
      new Promise<void>((resolve) => {
        if (stopped) return resolve();
        idleWaiters.push(resolve);
        wake?.();
      }),
    async stop() {
      stopped = true;
      wake?.();
      await done;
      await (await listening)?.unlisten().catch(() => {});
      for (const w of idleWaiters) w();
      idleWaiters = [];
    },
  };
}
