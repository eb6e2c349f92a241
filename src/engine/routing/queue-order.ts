import type { QueueOrder } from "../domain.js";

/**
 * Queue order (SPEC §8). PRIORITY_SCORE: score = priority + minutes waiting (Genesys),
 * highest first. SLA_REMAINING: least SLA time left first, conversations without an SLA
 * after all those with one. Ties: higher score, then earlier enqueuedAt, then id, so two
 * instances planning the same queue walk it in the same order.
 *
 * Minutes are fractional, so the difference between two scores does not depend on `now`
 * (Δpriority + Δenqueued/60 000): the order is stable over time and a SQL index on
 * `priority * 60000 - epoch_ms(enqueued_at)` can serve it. `now` only clamps waits that
 * would be negative (an enqueuedAt ahead of this instance's clock) to zero.
 */

export interface Orderable {
  id: string;
  priority: number;
  enqueuedAt: Date;
  slaDueAt: Date | null;
}

const MS_PER_MINUTE = 60_000;

/** The displayed queue score at `now`: priority + minutes waiting (never negative). */
export function queueScore(item: Orderable, now: Date): number {
  const waitedMs = Math.max(0, now.getTime() - item.enqueuedAt.getTime());
  return item.priority + waitedMs / MS_PER_MINUTE;
}

// Score scaled to milliseconds minus `now`: exact for integer priorities (no float ties
// broken differently by rounding) and ordered like the score.
function scoreKey(priority: number, enqueuedMs: number, nowMs: number): number {
  return priority * MS_PER_MINUTE - Math.min(enqueuedMs, nowMs);
}

function compareKeys(
  aKey: number,
  aEnqueued: number,
  aId: string,
  bKey: number,
  bEnqueued: number,
  bId: string,
): number {
  if (aKey !== bKey) return aKey > bKey ? -1 : 1;
  if (aEnqueued !== bEnqueued) return aEnqueued < bEnqueued ? -1 : 1;
  if (aId === bId) return 0;
  return aId < bId ? -1 : 1;
}

function compareSla(a: Date | null, b: Date | null): number {
  if (a === null) return b === null ? 0 : 1;
  if (b === null) return -1;
  const diff = a.getTime() - b.getTime();
  return diff === 0 ? 0 : diff < 0 ? -1 : 1;
}

/** Comparator for waiting conversations: negative when `a` should be served before `b`. */
export function compareWaiting(a: Orderable, b: Orderable, now: Date, order: QueueOrder): number {
  if (order === "SLA_REMAINING") {
    const bySla = compareSla(a.slaDueAt, b.slaDueAt);
    if (bySla !== 0) return bySla;
  }
  const nowMs = now.getTime();
  const aEnq = a.enqueuedAt.getTime();
  const bEnq = b.enqueuedAt.getTime();
  return compareKeys(
    scoreKey(a.priority, aEnq, nowMs),
    aEnq,
    a.id,
    scoreKey(b.priority, bEnq, nowMs),
    bEnq,
    b.id,
  );
}

/** Yields waiting conversations in queue order, one at a time. */
export interface WaitingCursor<T> {
  /** The next conversation to serve, or undefined when none is left. */
  next(): T | undefined;
  readonly remaining: number;
}

/**
 * Queue order without sorting everything: a binary heap built in O(n), each `next()`
 * O(log n). The planner usually stops after a few deliveries per pass (agents fill up or
 * are spaced out), so sorting 400 conversations to serve 10 would dominate its cost.
 */
export function waitingCursor<T extends Orderable>(
  items: readonly T[],
  now: Date,
  order: QueueOrder,
): WaitingCursor<T> {
  const n = items.length;
  const nowMs = now.getTime();
  const bySla = order === "SLA_REMAINING";
  // Keys computed once (Date#getTime in the comparator would run O(n log n) times).
  const sla = new Float64Array(n);
  const key = new Float64Array(n);
  const enqueued = new Float64Array(n);
  const heap = new Int32Array(n);
  for (let i = 0; i < n; i++) {
    const item = items[i]!;
    const enq = item.enqueuedAt.getTime();
    sla[i] = item.slaDueAt === null ? Number.POSITIVE_INFINITY : item.slaDueAt.getTime();
    key[i] = scoreKey(item.priority, enq, nowMs);
    enqueued[i] = enq;
    heap[i] = i;
  }
  const before = (a: number, b: number): boolean => {
    if (bySla && sla[a] !== sla[b]) return sla[a]! < sla[b]!;
    return compareKeys(key[a]!, enqueued[a]!, items[a]!.id, key[b]!, enqueued[b]!, items[b]!.id) < 0;
  };
  let size = n;
  const siftDown = (start: number): void => {
    let i = start;
    const moving = heap[i]!;
    for (;;) {
      const left = 2 * i + 1;
      if (left >= size) break;
      const right = left + 1;
      const child = right < size && before(heap[right]!, heap[left]!) ? right : left;
      if (!before(heap[child]!, moving)) break;
      heap[i] = heap[child]!;
      i = child;
    }
    heap[i] = moving;
  };
  for (let i = (n >> 1) - 1; i >= 0; i--) siftDown(i);
  return {
    next(): T | undefined {
      if (size === 0) return undefined;
      const top = heap[0]!;
      size--;
      if (size > 0) {
        heap[0] = heap[size]!;
        siftDown(0);
      }
      return items[top];
    },
    get remaining(): number {
      return size;
    },
  };
}

/** A sorted copy of `items`, first to serve first. Same order as `compareWaiting`. */
export function orderWaiting<T extends Orderable>(items: readonly T[], now: Date, order: QueueOrder): T[] {
  const cursor = waitingCursor(items, now, order);
  const out: T[] = [];
  for (let item = cursor.next(); item !== undefined; item = cursor.next()) out.push(item);
  return out;
}
