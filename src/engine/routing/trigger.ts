import type { EngineContext, Signals } from "../context.js";
import { type PassResult, routeQueueOnce } from "./service.js";

/**
 * Turns after-commit `routeQueue` signals into routing passes (issue #4 item 10):
 * coalesced per queue (a burst of 100 new conversations is one or two passes, not 100),
 * serialised per tenant in this process (passes of one tenant would queue on the tenant
 * lock anyway, each holding a pooled connection while it waits), never inside the
 * caller's transaction. A failed pass is logged and retried with backoff; the pg-boss
 * sweep is the net under everything, including a crash between commit and pass.
 *
 * Demand alone does not run a queue whose last pass (less than `DEMAND_HOLD_MS` ago) found
 * nobody who could take anything (`PassResult.noSupply`): a new conversation adds
 * no supply, so that pass would find nobody again — during an ingest burst with every
 * agent busy it was one empty transaction per message, as many round trips as the ingest.
 * Held demand gets its pass when the hold ends; any other signal for the queue (supply or
 * configuration changed, a sweep, a retry) ends the hold and runs at once. Supply that
 * appears in another process is routed by that process's own pass, so what a hold can
 * delay is at most `DEMAND_HOLD_MS`.
 */
export interface RoutingTrigger extends Signals {
  /** Resolves when nothing is pending or running (tests, benches, shutdown). */
  idle(): Promise<void>;
  stop(): Promise<void>;
  /** Queues (`tenantId:queueId`) whose demand is being held (tests, metrics). */
  held(): string[];
  /** Observer for benches and metrics. */
  onPass?: (r: PassResult) => void;
}

const RETRY_BASE_MS = 100;
const RETRY_MAX_MS = 5_000;
/** How long demand waits after a pass that found no supply (see above). */
export const DEMAND_HOLD_MS = 200;

export function createRoutingTrigger(ctx: () => EngineContext): RoutingTrigger {
  /** Per tenant: the queues waiting for a pass, and whether a worker loop runs. */
  const tenants = new Map<string, { pending: Set<string>; running: Promise<void> | null }>();
  const failures = new Map<string, number>();
  let stopped = false;
  const idleWaiters: (() => void)[] = [];
  const timers = new Set<NodeJS.Timeout>();
  /** tenant:queue → when its last pass found no supply (ms). */
  const starved = new Map<string, number>();
  /** tenant:queue → the timer that runs held demand. */
  const held = new Map<string, NodeJS.Timeout>();

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
        if (r.noSupply) starved.set(key, Date.now());
        else starved.delete(key);
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
    routeQueue(tenantId, queueId, cause) {
      if (stopped) return;
      const key = `${tenantId}:${queueId}`;
      if (cause === "demand") {
        const since = starved.get(key);
        const wait = since === undefined ? 0 : since + DEMAND_HOLD_MS - Date.now();
        if (wait > 0) {
          if (!held.has(key)) {
            const timer = setTimeout(() => {
              timers.delete(timer);
              held.delete(key);
              starved.delete(key);
              trigger.routeQueue(tenantId, queueId);
            }, wait);
            timer.unref();
            timers.add(timer);
            held.set(key, timer);
          }
          return;
        }
      } else {
        starved.delete(key);
        const timer = held.get(key);
        if (timer) {
          clearTimeout(timer);
          timers.delete(timer);
          held.delete(key);
        }
      }
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
    held() {
      return [...held.keys()];
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
      held.clear();
      await Promise.all([...tenants.values()].map((t) => t.running));
      checkIdle();
    },
  };
  return trigger;
}
