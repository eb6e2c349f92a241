import type { EngineContext } from "../engine/context.js";
import { expireCountdown, expireOffers } from "../engine/routing/actions.js";
import { ROUTING_JOBS } from "../engine/routing/service.js";
import { sweepRouting } from "../engine/routing/sweep.js";
import { type JobRunner, registerSweep } from "./boss.js";

/** How often the safety-net sweep runs (ARCHITECTURE: the sweep is never the latency path). */
export const SWEEP_INTERVAL_S = 30;

export interface OfferTimeoutJob {
  tenantId: string;
  queueId: string;
  expiresAt: string;
}
export interface WakeJob {
  tenantId: string;
  queueId: string;
}
export interface CountdownJob {
  tenantId: string;
  conversationId: string;
  startedAt: string;
}

/** Exported so tests drive timers directly after moving a ManualClock (no sleeping). */
export const routingJobHandlers = {
  offerTimeout: (ctx: EngineContext, data: OfferTimeoutJob) => expireOffers(ctx, data),
  wake: async (ctx: EngineContext, data: WakeJob) => ctx.signals.routeQueue(data.tenantId, data.queueId),
  countdown: (ctx: EngineContext, data: CountdownJob) => expireCountdown(ctx, data),
  sweep: (ctx: EngineContext) => sweepRouting(ctx),
};

/**
 * Registers the routing timers. Each handler re-checks the database (a stale timer does
 * nothing). The sweep runs every SWEEP_INTERVAL_S (`registerSweep`).
 */
export async function registerRoutingJobs(jobs: JobRunner, ctx: EngineContext): Promise<void> {
  await jobs.register<OfferTimeoutJob>({ name: ROUTING_JOBS.offerTimeout, retryLimit: 5 }, async (d) => {
    await routingJobHandlers.offerTimeout(ctx, d);
  });
  await jobs.register<WakeJob>({ name: ROUTING_JOBS.wake }, (d) => routingJobHandlers.wake(ctx, d));
  await jobs.register<CountdownJob>({ name: ROUTING_JOBS.countdown, retryLimit: 5 }, async (d) => {
    await routingJobHandlers.countdown(ctx, d);
  });
  await registerSweep(jobs, ROUTING_JOBS.sweep, SWEEP_INTERVAL_S, () => routingJobHandlers.sweep(ctx));
}
