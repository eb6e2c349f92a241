import type { EngineContext } from "../engine/context.js";
import { runSlaCheck, SLA_CHECK_JOB, type SlaCheckJob } from "../engine/sla.js";
import type { JobRunner } from "./boss.js";

/**
 * SLA warnings and breaches as timed events: the engine schedules a check for the next
 * warning or due instant whenever a conversation's SLA clock changes; the handler
 * announces only what is due by then, once each.
 */
export async function registerSlaTimers(runner: JobRunner, ctx: EngineContext): Promise<void> {
  await runner.register<SlaCheckJob>(
    { name: SLA_CHECK_JOB, retryLimit: 5, retryDelay: 30, retryBackoff: true },
    async (data) => {
      await runSlaCheck(ctx, data);
    },
  );
}
