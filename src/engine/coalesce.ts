/**
 * A stream of recomputations driven by a stream of triggers, at most one per window.
 *
 * Live figures (queueStats) are a heavy query; recomputing them for every event of a busy
 * tenant means one query per event per subscriber. Here a trigger only marks the figures
 * stale. The first trigger after a quiet window computes at once; triggers that arrive
 * while a computation runs, or within `windowMs` of the last one's start, are folded into
 * one more computation when the window has passed. Because every trigger marks the state
 * stale and a stale state is always computed again, the last value delivered reflects
 * every trigger (no lost final update). A consumer that pulls slowly only ever gets the
 * state at the time it pulls — triggers never queue up.
 *
 * `initial`, when given, is delivered first (the caller computed it before subscribing).
 * `return()` ends the trigger stream at once, even while waiting.
 */
export function coalesce<T>(
  triggers: AsyncIterator<unknown>,
  compute: () => Promise<T>,
  windowMs: number,
  initial?: { value: T },
): AsyncIterableIterator<T> {
  let stale = false;
  let ended = false;
  let closed = false;
  let failure: { err: unknown } | null = null;
  let pending: T | undefined;
  let hasPending = initial !== undefined;
  if (initial) pending = initial.value;
  let lastStart = initial ? Date.now() : Number.NEGATIVE_INFINITY;
  // Resolves a waiting next(): on a trigger, the end of triggers, or return().
  let wake: (() => void) | null = null;
  let timer: NodeJS.Timeout | null = null;
  let sleepDone: (() => void) | null = null;

  const signal = () => {
    const w = wake;
    wake = null;
    w?.();
  };
  const untilSignal = () =>
    new Promise<void>((resolve) => {
      wake = resolve;
    });
  // Unlike untilSignal, triggers do not cut this short: they are folded into the wait.
  const sleep = (ms: number) =>
    new Promise<void>((resolve) => {
      sleepDone = resolve;
      timer = setTimeout(() => {
        timer = null;
        sleepDone = null;
        resolve();
      }, ms);
    });

  void (async () => {
    try {
      for (;;) {
        const r = await triggers.next();
        if (r.done) break;
        stale = true;
        signal();
      }
    } catch (err) {
      failure = { err };
    } finally {
      ended = true;
      signal();
    }
  })();

  const finished = (): IteratorResult<T> => ({ value: undefined, done: true });

  const iterator: AsyncIterableIterator<T> = {
    [Symbol.asyncIterator]() {
      return iterator;
    },
    async next(): Promise<IteratorResult<T>> {
      if (hasPending) {
        hasPending = false;
        const value = pending as T;
        pending = undefined;
        return { value, done: false };
      }
      while (!closed) {
        if (!stale) {
          if (failure) throw failure.err;
          if (ended) break;
          await untilSignal();
          continue;
        }
        const wait = lastStart + windowMs - Date.now();
        if (wait > 0) {
          await sleep(wait);
          continue;
        }
        stale = false;
        lastStart = Date.now();
        const value = await compute();
        if (closed) break;
        return { value, done: false };
      }
      return finished();
    },
    async return(): Promise<IteratorResult<T>> {
      closed = true;
      if (timer) clearTimeout(timer);
      timer = null;
      const s = sleepDone as (() => void) | null;
      sleepDone = null;
      s?.();
      signal();
      await triggers.return?.();
      return finished();
    },
  };
  return iterator;
}
