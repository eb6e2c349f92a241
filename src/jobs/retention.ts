import type { EngineContext } from "../engine/context.js";
import { purgeExpired, RETENTION_SWEEP_SECONDS } from "../engine/retention.js";
import { type JobRunner, registerSweep } from "./boss.js";

/**
 * Retention (engine/retention.ts): every hour, each tenant's conversations closed longer
 * than its `retentionDays` ago are purged, and rejected mail received before then. A
 * failed run logs and tries again at the next hour; the work is idempotent.
 */
export async function registerRetention(jobs: JobRunner, ctx: EngineContext): Promise<void> {
  await registerSweep(jobs, "retention-purge", RETENTION_SWEEP_SECONDS, async () => {
    await purgeExpired(ctx).catch((err) => ctx.log.error({ err }, "retention purge failed"));
  });
}
