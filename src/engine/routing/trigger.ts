import type { EngineContext, Signals } from "../context.js";
import { type PassResult, routeQueueOnce } from "./service.js";

/**
 * Turns after-commit `routeQueue` signals into routing passes (issue #4 item 10):
 * coalesced per queue (a burst of 100 new conversations is one or two passes, not 100),
 * serialised per tenant in this process (passes of one tenant would queue on the tenant
 * lock anyway, each holding a pooled connection while it waits), never inside the
 * caller's transaction. A failed pass is logged and retried with backoff; the pg-boss
 * sweep is the net under everything, including a crash between commit and pass.
 */
export interface RoutingTrigger extends Signals {
  /** Resolves when nothing is pending or running (tests, benches, shutdown). */
  idle(): Promise<void>;
  stop(): Promise<void>;
  /** Observer for benches and metrics. */
  onPass?: (r: PassResult) => void;
}

const RETRY_BASE_MS = 100;
const RETRY_MAX_MS = 5_000;

export function createRoutingTrigger(ctx: () => EngineContext): RoutingTrigger {
  /** Per tenant: the queues waiting for a pass, and whether a worker loop runs. */
  const tenants = new Map<string, { pending: Set<string>; running: Promise<void> | null }>();
  const failures = new Map<string, number>();
  let stopped = false;
  const idleWaiters: (() => void)[] = [];
  const timers = new Set<NodeJS.Timeout>();

  const checkIdle = () => {
    if (timers.size > 0) return;
    for (const t of tenants.values()) if (t.running || t.pending.size > 0) return;
    for (const w of idleWaiters.splice(0)) w();
  };

  const loop = async (tenantId: string) => {
    const t = tenants.get(tenantId)!;
    while (!stopped && t.pending.size > 0) {
      const queueId = t.pending.values().next().value as string;
      t.pending.delete(queueId);
      const key = `${tenantId}:${queueId}`;
      try {
        const r = await routeQueueOnce(ctx(), tenantId, queueId);
        failures.delete(key);
        trigger.onPass?.(r);
        if (r.more) t.pending.add(queueId);
      } catch (err) {
        const n = (failures.get(key) ?? 0) + 1;
        failures.set(key, n);
        const delay = Math.min(RETRY_MAX_MS, RETRY_BASE_MS * 2 ** (n - 1));
        ctx().log.warn(
          { err, tenantId, queueId, attempt: n, retryInMs: delay },
          "routing pass failed; retrying",
        );
        if (n <= 8 && !stopped) {
          const timer = setTimeout(() => {
            timers.delete(timer);
            trigger.routeQueue(tenantId, queueId);
          }, delay);
          timer.unref();
          timers.add(timer);
        } else {
          failures.delete(key);
        }
      }
    }
    t.running = null;
    checkIdle();
  };

  const trigger: RoutingTrigger = {
    routeQueue(tenantId, queueId) {
      if (stopped) return;
      let t = tenants.get(tenantId);
      if (!t) {
        t = { pending: new Set(), running: null };
        tenants.set(tenantId, t);
      }
      t.pending.add(queueId);
      if (!t.running) {
        // A microtask later, so signals raised together by one commit coalesce.
        t.running = Promise.resolve().then(() => loop(tenantId));
      }
    },
    idle() {
      return new Promise<void>((resolve) => {
        idleWaiters.push(resolve);
        checkIdle();
      });
    },
    async stop() {
      stopped = true;
      for (const timer of timers) clearTimeout(timer);
      timers.clear();
      await Promise.all([...tenants.values()].map((t) => t.running));
      checkIdle();
    },
  };
  return trigger;
}
