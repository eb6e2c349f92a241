import type PgBoss from "pg-boss";
import type { EngineContext } from "../engine/context.js";
import { type AutoReplyJobData, runAutoReply } from "../engine/outbound/auto-reply-service.js";
import { deliverBatch, markGivenUp } from "../engine/outbound/delivery.js";
import {
  AUTO_REPLY_QUEUE,
  SEND_MESSAGE_DEAD_LETTER,
  SEND_MESSAGE_QUEUE,
  type SendJobData,
} from "../engine/outbound/store.js";
import type { JobRunner } from "./boss.js";

/**
 * Queues `send-message` (one outbound message per job, retried with backoff, dead-lettered
 * to `send-message-dead`) and `auto-reply` (decide and queue one auto-reply).
 *
 * Throughput: pg-boss polls, so each worker fetches a batch and sends it concurrently
 * over the pooled SMTP transport; several workers overlap their polling gaps. Each job's
 * outcome is reported on its own — a transient failure fails (→ retry) only that job,
 * the rest of the batch completes.
 */

export interface SendJobOptions {
  workers: number;
  batchSize: number;
  pollingIntervalMs: number;
  retryLimit: number;
  retryDelaySeconds: number;
  retryBackoff: boolean;
}

async function ensureQueue(boss: PgBoss, name: string, options: Omit<PgBoss.Queue, "name"> = {}) {
  // createQueue throws on an existing queue in some pg-boss versions; existing is what we need.
  await boss.createQueue(name, { name, ...options } as PgBoss.Queue).catch(() => {});
}

export async function registerSendJobs(
  runner: JobRunner,
  ctx: EngineContext,
  opts: SendJobOptions,
): Promise<void> {
  const { boss } = runner;
  await ensureQueue(boss, SEND_MESSAGE_DEAD_LETTER);
  await ensureQueue(boss, SEND_MESSAGE_QUEUE, {
    retryLimit: opts.retryLimit,
    retryDelay: opts.retryDelaySeconds,
    retryBackoff: opts.retryBackoff,
    deadLetter: SEND_MESSAGE_DEAD_LETTER,
  });
  await ensureQueue(boss, AUTO_REPLY_QUEUE, { retryLimit: 3, retryDelay: 30, retryBackoff: true });
  const log = ctx.log.child({ queue: SEND_MESSAGE_QUEUE });

  const handleBatch = async (jobs: PgBoss.JobWithMetadata<SendJobData>[]) => {
    const failed: { id: string; error: string }[] = [];
    try {
      const results = await deliverBatch(
        ctx,
        jobs.map((job) => ({ data: job.data, finalAttempt: job.retryCount >= job.retryLimit })),
      );
      results.forEach((r, i) => {
        const job = jobs[i]!;
        if (r.outcome === "retry") failed.push({ id: job.id, error: r.error ?? "transient" });
        else if (r.outcome === "failed")
          log.warn({ messageId: job.data.messageId, error: r.error }, "send failed");
      });
    } catch (err) {
      // A database error while claiming, reading or recording the successes: every job of
      // the batch goes back for a retry. A message whose outcome was recorded is never
      // claimed again; one left SENDING is claimed again only once STALE_SENDING passed.
      log.error({ err, jobs: jobs.length }, "send batch crashed");
      for (const job of jobs)
        failed.push({ id: job.id, error: err instanceof Error ? err.message : String(err) });
    }
    // Failing a job moves it out of `active`; pg-boss then completes only the others.
    for (const f of failed) await boss.fail(SEND_MESSAGE_QUEUE, f.id, { error: f.error });
  };
  const ids: string[] = [];
  for (let i = 0; i < opts.workers; i++) {
    ids.push(
      await boss.work<SendJobData>(
        SEND_MESSAGE_QUEUE,
        {
          batchSize: opts.batchSize,
          pollingIntervalSeconds: opts.pollingIntervalMs / 1000,
          includeMetadata: true,
        },
        handleBatch,
      ),
    );
  }
  // Commits that queue mail call `ctx.jobs.wake(SEND_MESSAGE_QUEUE)`: no poll wait.
  runner.addWorkers(SEND_MESSAGE_QUEUE, ids);
  await boss.work<SendJobData>(SEND_MESSAGE_DEAD_LETTER, { pollingIntervalSeconds: 5 }, async (jobs) => {
    for (const job of jobs) {
      if (await markGivenUp(ctx, job.data)) log.warn({ messageId: job.data.messageId }, "send given up");
    }
  });
  await boss.work<AutoReplyJobData>(
    AUTO_REPLY_QUEUE,
    { batchSize: 20, pollingIntervalSeconds: opts.pollingIntervalMs / 1000 },
    async (jobs) => {
      // One at a time: decisions for the same sender serialise on an advisory lock anyway.
      for (const job of jobs) await runAutoReply(ctx, job.data);
    },
  );
}
