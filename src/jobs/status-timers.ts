import type { EngineContext } from "../engine/context.js";
import { runStatusTimer, STATUS_TIMER_JOB, type StatusTimerJob } from "../engine/lifecycle.js";
import type { JobRunner } from "./boss.js";

/**
 * Status timers (SPEC §4): ACTIVE→PAUSED, PAUSED→CLOSED, RESOLVED→CLOSED. The engine
 * schedules one job per status/activity change; the handler re-checks, so a stale job
 * does nothing. Retried: a failed transition (deadlock, restart) must not lose the timer.
 */
export async function registerStatusTimers(runner: JobRunner, ctx: EngineContext): Promise<void> {
  await runner.register<StatusTimerJob>(
    { name: STATUS_TIMER_JOB, retryLimit: 5, retryDelay: 30, retryBackoff: true },
    async (data) => {
      await runStatusTimer(ctx, data);
    },
  );
}
