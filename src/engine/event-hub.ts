import type postgres from "postgres";
import type { Logger } from "./context.js";

export interface EventRow {
  id: number;
  /** The inserting transaction (xid8 as a decimal string). */
  txId: string;
  tenantId: string;
  conversationId: string | null;
  queueId: string | null;
  agentId: string | null;
  type: string;
  actorType: string;
  actorId: string | null;
  payload: Record<string, unknown>;
  occurredAt: Date;
  createdAt: Date;
}

/** Position in the event stream: ordered by (txId, id); opaque to clients. */
export interface EventCursor {
  txId: bigint;
  id: number;
}

export function encodeCursor(e: { txId: string | bigint; id: number }): string {
  return `${e.txId}.${e.id}`;
}

const MAX_TX_ID = 2n ** 64n - 1n; // xid8

export function decodeCursor(cursor: string): EventCursor | null {
  const m = /^(\d{1,20})\.(\d{1,16})$/.exec(cursor);
  if (!m) return null;
  const txId = BigInt(m[1]!);
  const id = Number(m[2]);
  // Out of range for PostgreSQL's xid8 or a safe integer: no event is there, and the read
  // would fail in the database (a client's input, not our error).
  return txId <= MAX_TX_ID && Number.isSafeInteger(id) ? { txId, id } : null;
}

/**
 * Events a subscriber may fall behind by: a client that stops reading (a stalled socket)
 * would otherwise make the hub hold every event since. Past it the stream completes; the
 * client resumes from its last cursor without a gap.
 */
export const MAX_QUEUED_EVENTS = 5000;

/** Whether an event comes after a stream position, in (tx_id, id) order. */
export const after = (e: EventRow, c: EventCursor) => {
  const tx = BigInt(e.txId);
  return tx > c.txId || (tx === c.txId && e.id > c.id);
};

export interface SubscribeOptions {
  /** Replay the stored events past this cursor first; none: live only. */
  from?: EventCursor | null;
  signal?: AbortSignal;
  /**
   * The replay reads only this conversation's events (event_conversation_idx) instead of
   * the tenant's whole log through the filter: `conversationEvents` from `0.0` in a tenant
   * with millions of events. The filter must still select this conversation.
   */
  conversationId?: string;
  /** The same for one agent's events (event_agent_idx): `myInbox`. */
  agentId?: string;
}

interface Subscriber {
  tenantId: string;
  filter: (e: EventRow) => boolean;
  push: (e: EventRow) => void;
}

const BATCH = 1000;
/** How soon to look again while rows wait behind a still-running older transaction. */
const PENDING_RETRY_MS = 15;
/**
 * While nobody in this process is subscribed, the log is read at most this often (ms). The
 * reads then only move the cursor along, so that the first subscriber's catch-up is short;
 * every subscriber replays from its own `from` anyway and drops what precedes it. Without
 * this, an ingest burst with nobody watching cost 1.5 page reads per message (a read per
 * local commit, one per NOTIFY, retries behind open transactions).
 */
export const IDLE_READ_MS = 1000;

/**
 * Fans committed events out to this process's subscribers (ARCHITECTURE "Events are the
 * spine"). A NOTIFY from any instance wakes it; it then reads the events past its cursor.
 *
 * Ordering by a sequence alone would lose events: ids are taken at INSERT but
 * transactions commit in another order, so id 10 may become visible after id 11 was
 * delivered. Rows are therefore ordered by (tx_id, id) and read only when their tx_id is
 * below the snapshot's xmin, i.e. when no transaction that could still add a row before
 * them is running. The table is the source of truth: a missed notification costs
 * latency, never events. With no subscribers it reads at most every `IDLE_READ_MS`; a new
 * subscriber wakes it at once.
 */
export class EventHub {
  private cursor: EventCursor = { txId: 0n, id: 0 };
  private readonly subscribers = new Set<Subscriber>();
  private listening: { unlisten(): Promise<void> } | null = null;
  private pumping: Promise<void> | null = null;
  private again = false;
  private stopped = false;
  /** The next planned read: a pending retry, or the end of an idle pause. */
  private wakeTimer: NodeJS.Timeout | null = null;
  private wakeAt = 0;
  /** When the last page read started (ms), for the idle cadence. */
  private lastRead = 0;

  constructor(
    private readonly sql: postgres.Sql,
    private readonly log: Logger,
  ) {}

  async start(): Promise<void> {
    const [row] = await this.sql<{ tx: string | null; id: string | null }[]>`
      SELECT tx_id::text AS tx, id::text AS id FROM event
      WHERE tx_id < pg_snapshot_xmin(pg_current_snapshot())
      ORDER BY tx_id DESC, id DESC LIMIT 1`;
    if (row?.tx) this.cursor = { txId: BigInt(row.tx), id: Number(row.id) };
    this.listening = await this.sql.listen("switchboard_event", () => this.wake());
    // Rows from transactions still open at start-up are not yet readable.
    this.wake();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    if (this.wakeTimer) clearTimeout(this.wakeTimer);
    await this.listening?.unlisten().catch(() => {});
    await this.pumping;
  }

  /** Local commits call this too, so same-process subscribers skip the NOTIFY round trip. */
  wake(): void {
    if (this.stopped) return;
    if (this.subscribers.size === 0) {
      const wait = this.lastRead + IDLE_READ_MS - Date.now();
      if (wait > 0) {
        this.wakeIn(wait);
        return;
      }
    }
    // This read does what a planned one would have.
    if (this.wakeTimer) {
      clearTimeout(this.wakeTimer);
      this.wakeTimer = null;
    }
    if (this.pumping) {
      this.again = true;
      return;
    }
    this.pumping = this.pump().finally(() => {
      this.pumping = null;
      if (this.again) {
        this.again = false;
        this.wake();
      }
    });
  }

  /** Plans a wake-up `ms` from now, unless one is planned sooner. */
  private wakeIn(ms: number): void {
    const at = Date.now() + ms;
    if (this.wakeTimer) {
      if (this.wakeAt <= at) return;
      clearTimeout(this.wakeTimer);
    }
    this.wakeAt = at;
    this.wakeTimer = setTimeout(() => {
      this.wakeTimer = null;
      this.wake();
    }, ms);
    this.wakeTimer.unref();
  }

  private async pump(): Promise<void> {
    this.lastRead = Date.now();
    try {
      for (;;) {
        const { rows, pending } = await this.readPage(this.cursor, null, BATCH);
        for (const e of rows) {
          this.cursor = { txId: BigInt(e.txId), id: e.id };
          for (const s of this.subscribers) if (s.tenantId === e.tenantId && s.filter(e)) s.push(e);
        }
        if (rows.length < BATCH) {
          if (pending && !this.stopped) this.wakeIn(PENDING_RETRY_MS);
          return;
        }
      }
    } catch (err) {
      if (!this.stopped) this.log.error({ err }, "event hub read failed");
    }
  }

  /**
   * Committed, final events past `from`, and whether later rows wait behind open
   * transactions. One statement, so `pending` is judged against the very snapshot the page
   * was read with: with two statements, a row skipped by the read (an older transaction
   * still open) could be readable by the time of the check yet not counted as pending
   * (that transaction ended without events, so no NOTIFY), and wait for the next wake-up.
   */
  async readPage(
    from: EventCursor,
    tenantId: string | null,
    limit: number,
    /** Only one conversation's or one agent's events (`SubscribeOptions`). */
    scope: Pick<SubscribeOptions, "conversationId" | "agentId"> = {},
  ): Promise<{ rows: EventRow[]; pending: boolean }> {
    const { conversationId, agentId } = scope;
    const rows = await this.sql<((EventRow & { pending: boolean }) | { id: null; pending: boolean })[]>`
      WITH page AS (
        SELECT id, tx_id, tenant_id, conversation_id, queue_id, agent_id, type, actor_type, actor_id,
               payload, occurred_at, created_at
        FROM event
        WHERE (tx_id, id) > (${from.txId.toString()}::xid8, ${from.id})
          AND tx_id < pg_snapshot_xmin(pg_current_snapshot())
          ${tenantId ? this.sql`AND tenant_id = ${tenantId}` : this.sql``}
          ${conversationId ? this.sql`AND conversation_id = ${conversationId}::uuid` : this.sql``}
          ${agentId ? this.sql`AND agent_id = ${agentId}::uuid` : this.sql``}
        ORDER BY tx_id, id
        LIMIT ${limit}
      ),
      -- Pending = the newest visible row is not yet readable. Written as "newest tx_id" (one
      -- backward step on event_tx_idx) because the planner cannot estimate the xmin and
      -- answered EXISTS (… tx_id >= xmin) with a sequential scan of the whole event table,
      -- a cost that grew with the log on every wake-up. The xmin is inline (not from a
      -- CTE) so the page's range is an index condition too; pg_current_snapshot() is the
      -- statement's one snapshot either way.
      p AS (SELECT coalesce((SELECT tx_id FROM event ORDER BY tx_id DESC LIMIT 1)
                            >= pg_snapshot_xmin(pg_current_snapshot()), false) AS pending)
      SELECT page.id, page.tx_id::text AS "txId", page.tenant_id AS "tenantId",
             page.conversation_id AS "conversationId", page.queue_id AS "queueId", page.agent_id AS "agentId",
             page.type, page.actor_type AS "actorType", page.actor_id AS "actorId", page.payload,
             page.occurred_at AS "occurredAt", page.created_at AS "createdAt", p.pending
      FROM p LEFT JOIN page ON true
      ORDER BY page.tx_id, page.id`;
    const pending = rows[0]?.pending ?? false;
    const out: EventRow[] = [];
    for (const r of rows) {
      if (r.id === null) continue;
      const { pending: _p, ...e } = r as EventRow & { pending: boolean };
      out.push({ ...e, id: Number(e.id) });
    }
    return { rows: out, pending };
  }

  /** The stream position after every currently readable event of a tenant (for "live from now"). */
  async head(tenantId: string): Promise<EventCursor> {
    const [row] = await this.sql<{ tx: string | null; id: string | null }[]>`
      SELECT tx_id::text AS tx, id::text AS id FROM event
      WHERE tenant_id = ${tenantId} AND tx_id < pg_snapshot_xmin(pg_current_snapshot())
      ORDER BY tx_id DESC, id DESC LIMIT 1`;
    return row?.tx ? { txId: BigInt(row.tx), id: Number(row.id) } : { txId: 0n, id: 0 };
  }

  /**
   * Live events for one tenant matching `filter`. With `from` it first replays stored
   * events past that cursor, then continues live with no gap and no duplicate: live events
   * are buffered while the replay runs and skipped if not past the last one delivered.
   */
  subscribe(
    tenantId: string,
    filter: (e: EventRow) => boolean,
    opts: SubscribeOptions = {},
  ): AsyncIterableIterator<EventRow> {
    const batches = this.subscribeBatches(tenantId, filter, opts);
    let buffered: EventRow[] = [];
    const iterator: AsyncIterableIterator<EventRow> = {
      [Symbol.asyncIterator]() {
        return iterator;
      },
      async next(): Promise<IteratorResult<EventRow>> {
        while (buffered.length === 0) {
          const r = await batches.next();
          if (r.done) return { value: undefined, done: true };
          buffered = r.value;
        }
        return { value: buffered.shift()!, done: false };
      },
      async return(): Promise<IteratorResult<EventRow>> {
        buffered = [];
        await batches.return?.();
        return { value: undefined, done: true };
      },
    };
    return iterator;
  }

  /**
   * Like `subscribe`, but each step yields every matching event that arrived since the
   * last step (in stream order, never empty), so a consumer can resolve what the events
   * name with one query per wake-up instead of one per event.
   */
  subscribeBatches(
    tenantId: string,
    filter: (e: EventRow) => boolean,
    opts: SubscribeOptions = {},
  ): AsyncIterableIterator<EventRow[]> {
    let queue: EventRow[] = [];
    let notify: (() => void) | null = null;
    let done = false;
    let last: EventCursor | null = opts.from ?? null;
    const sub: Subscriber = {
      tenantId,
      filter,
      push: (e) => {
        if (done) return;
        if (queue.length >= MAX_QUEUED_EVENTS) {
          // Too far behind: what is queued goes, and the stream ends (resume by cursor).
          this.log.warn(
            { tenantId, queued: queue.length },
            "event subscriber too far behind; completing its stream",
          );
          queue = [];
          close();
          return;
        }
        queue.push(e);
        notify?.();
      },
    };
    this.subscribers.add(sub);
    // Catch up now if the idle cadence was holding the reads back.
    if (this.subscribers.size === 1) this.wake();
    const close = () => {
      done = true;
      this.subscribers.delete(sub);
      notify?.();
    };
    opts.signal?.addEventListener("abort", close, { once: true });

    // The replay is read page by page as the consumer asks (never all of it in memory),
    // and only when it asks: a read's failure reaches the consumer's `next()`, never an
    // unawaited promise (a subscription completed before its first `next()` read nothing).
    // Live events queue meanwhile; `last` drops those the replay already gave.
    let replayFrom: EventCursor | null = opts.from ?? null;
    const readPage = (c: EventCursor) => this.readPage(c, tenantId, BATCH, opts);

    const iterator: AsyncIterableIterator<EventRow[]> = {
      [Symbol.asyncIterator]() {
        return iterator;
      },
      async next(): Promise<IteratorResult<EventRow[]>> {
        while (replayFrom && !done) {
          const { rows } = await readPage(replayFrom);
          const tail = rows[rows.length - 1];
          replayFrom = rows.length < BATCH || !tail ? null : { txId: BigInt(tail.txId), id: tail.id };
          const out: EventRow[] = [];
          for (const r of rows) {
            if (!filter(r) || (last && !after(r, last))) continue;
            last = { txId: BigInt(r.txId), id: r.id };
            out.push(r);
          }
          if (out.length > 0) return { value: out, done: false };
        }
        for (;;) {
          if (queue.length > 0) {
            const taken = queue;
            queue = [];
            const out: EventRow[] = [];
            for (const e of taken) {
              if (last && !after(e, last)) continue;
              last = { txId: BigInt(e.txId), id: e.id };
              out.push(e);
            }
            if (out.length > 0) return { value: out, done: false };
            continue;
          }
          if (done) return { value: undefined, done: true };
          await new Promise<void>((r) => {
            notify = r;
          });
          notify = null;
        }
      },
      async return(): Promise<IteratorResult<EventRow[]>> {
        close();
        return { value: undefined, done: true };
      },
    };
    return iterator;
  }

  get subscriberCount(): number {
    return this.subscribers.size;
  }
}
