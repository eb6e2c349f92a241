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

interface Keyed<T> {
  item: T;
  sla: number;
  key: number;
  enqueued: number;
}

/** A sorted copy of `items`, first to serve first. Same order as `compareWaiting`. */
export function orderWaiting<T extends Orderable>(items: readonly T[], now: Date, order: QueueOrder): T[] {
  const nowMs = now.getTime();
  // Keys computed once: the planner sorts tens of thousands of rows per pass, and
  // Date#getTime inside the comparator would run O(n log n) times.
  const keyed: Keyed<T>[] = items.map((item) => {
    const enqueued = item.enqueuedAt.getTime();
    return {
      item,
      sla: item.slaDueAt === null ? Number.POSITIVE_INFINITY : item.slaDueAt.getTime(),
      key: scoreKey(item.priority, enqueued, nowMs),
      enqueued,
    };
  });
  const bySla = order === "SLA_REMAINING";
  keyed.sort((a, b) => {
    if (bySla && a.sla !== b.sla) return a.sla < b.sla ? -1 : 1;
    return compareKeys(a.key, a.enqueued, a.item.id, b.key, b.enqueued, b.item.id);
  });
  return keyed.map((k) => k.item);
}
