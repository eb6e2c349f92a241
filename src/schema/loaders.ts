import type { GraphQLContext } from "./context.js";

/**
 * A request-scoped batch loader (STYLE 9: no N+1). Keys requested in the same tick — e.g.
 * one field on every node of a connection page — are fetched with one call to `fetch`.
 * Kept in `ctx.loaders` under `name`, so different fields can share one loader and its
 * cache (User.team and User.effectiveInboxLimit both read teams).
 */
export function batchLoad<K, V>(
  ctx: GraphQLContext,
  name: string,
  fetch: (keys: K[]) => Promise<Map<K, V>>,
): (key: K) => Promise<V | undefined> {
  let loader = ctx.loaders.get(name) as BatchLoader<K, V> | undefined;
  if (!loader) {
    loader = new BatchLoader(fetch);
    ctx.loaders.set(name, loader);
  }
  const l = loader;
  return (key) => l.load(key);
}

class BatchLoader<K, V> {
  private readonly cache = new Map<K, Promise<V | undefined>>();
  private pending: { key: K; resolve: (v: V | undefined) => void; reject: (e: unknown) => void }[] = [];

  constructor(private readonly fetch: (keys: K[]) => Promise<Map<K, V>>) {}

  load(key: K): Promise<V | undefined> {
    const cached = this.cache.get(key);
    if (cached) return cached;
    const promise = new Promise<V | undefined>((resolve, reject) => {
      if (this.pending.length === 0) {
        // Same trick as DataLoader: wait until the current resolver wave has queued its keys.
        void Promise.resolve().then(() => process.nextTick(() => this.dispatch()));
      }
      this.pending.push({ key, resolve, reject });
    });
    this.cache.set(key, promise);
    return promise;
  }

  private dispatch(): void {
    const batch = this.pending;
    this.pending = [];
    this.fetch(batch.map((b) => b.key)).then(
      (found) => {
        for (const b of batch) b.resolve(found.get(b.key));
      },
      (err) => {
        for (const b of batch) {
          this.cache.delete(b.key);
          b.reject(err);
        }
      },
    );
  }
}
