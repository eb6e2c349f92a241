import type PgBoss from "pg-boss";
import type { EngineContext } from "../engine/context.js";
import type { ScheduledJob } from "../engine/jobs.js";
import { type AutoReplyJobData, runAutoReply } from "../engine/outbound/auto-reply-service.js";
import {
  type AcceptedSend,
  deliverBatch,
  giveUpOrphanedSends,
  markGivenUp,
} from "../engine/outbound/delivery.js";
import {
  AUTO_REPLY_QUEUE,
  SEND_MESSAGE_DEAD_LETTER,
  SEND_MESSAGE_QUEUE,
  type SendJobData,
} from "../engine/outbound/store.js";
import { type ImmediateHandler, type JobRunner, registerSweep } from "./boss.js";

/**
 * Queues `send-message` (one outbound message per job, retried with backoff, dead-lettered
 * to `send-message-dead`) and `auto-reply` (decide and queue one auto-reply).
 *
 * Throughput: pg-boss polls, so each worker fetches a batch and sends it concurrently
 * over the pooled SMTP transport; several workers overlap their polling gaps. Each job's
 * outcome is reported on its own — a transient failure fails (→ retry) only that job,
 * the rest of the batch completes (`sendBatchHandler`).
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

/** What a failed attempt left in the job's output for its retry: an unrecorded SMTP acceptance. */
interface SendJobOutput {
  error: string;
  accepted?: AcceptedSend;
}

function acceptedOf(output: unknown): AcceptedSend | null {
  const accepted = (output as Partial<SendJobOutput> | null | undefined)?.accepted;
  return accepted && typeof accepted.at === "string" ? accepted : null;
}

/**
 * The `send-message` batch handler. Each job's outcome is reported on its own: `retry`,
 * `busy` and `unrecorded` fail the job (→ pg-boss retries it with backoff, then the dead
 * letter), everything else completes with the batch. An `unrecorded` acceptance is kept in
 * the failed job's output, which pg-boss hands to the retry (and copies to the dead letter).
 */
export function sendBatchHandler(
  ctx: EngineContext,
  boss: Pick<PgBoss, "fail">,
  queue: string,
  log: EngineContext["log"],
) {
  return async (jobs: PgBoss.JobWithMetadata<SendJobData>[]): Promise<void> => {
    const failed: { id: string; output: SendJobOutput }[] = [];
    const input = jobs.map((job) => ({
      data: job.data,
      finalAttempt: job.retryCount >= job.retryLimit,
      acceptedEarlier: acceptedOf(job.output),
    }));
    try {
      const results = await deliverBatch(ctx, input);
      results.forEach((r, i) => {
        const job = jobs[i]!;
        if (r.outcome === "retry" || r.outcome === "busy" || r.outcome === "unrecorded") {
          const error = r.error ?? (r.outcome === "busy" ? "claimed and not yet stale" : "transient");
          failed.push({ id: job.id, output: r.accepted ? { error, accepted: r.accepted } : { error } });
        } else if (r.outcome === "failed")
          log.warn({ messageId: job.data.messageId, error: r.error }, "send failed");
      });
    } catch (err) {
      // A database error while claiming or reading: nothing of this attempt was sent. Every
      // job goes back for a retry (an acceptance an earlier attempt could not record stays
      // with its job). A message left SENDING by the claim is `busy` for the retries until
      // STALE_SENDING has passed, then claimed again.
      log.error({ err, jobs: jobs.length }, "send batch crashed");
      const error = err instanceof Error ? err.message : String(err);
      jobs.forEach((job, i) => {
        const accepted = input[i]!.acceptedEarlier;
        failed.push({ id: job.id, output: accepted ? { error, accepted } : { error } });
      });
    }
    // Failing a job moves it out of `active`; pg-boss then completes only the others.
    for (const f of failed) await boss.fail(queue, f.id, f.output);
  };
}

/**
 * The first attempt of every send, in the process that committed it, right after the
 * commit (`JobRunner.runNow`): no pg-boss fetch, poll or completion on the hot path. The
 * message's `send-message` job was scheduled in the same transaction to start only after
 * the retry delay; it is the retry and the safety net. A final outcome (`sent`, `failed`)
 * or nothing to do (`skipped`) deletes the job; `retry` and `busy` leave it to run when
 * due; an `unrecorded` acceptance is written into the job's output for it to record.
 *
 * Up to `workers` batches of at most `batchSize` are in flight; jobs handed over while all
 * are busy wait for the next free one, so batches grow with the load (as pg-boss's did).
 */
export function immediateSendHandler(
  ctx: EngineContext,
  boss: Pick<PgBoss, "deleteJob" | "getDb">,
  queue: string,
  opts: { workers: number; batchSize: number },
  log: EngineContext["log"],
): ImmediateHandler {
  const waiting: ScheduledJob<SendJobData>[] = [];
  let running = 0;
  let idle: Promise<void> = Promise.resolve();
  let settleIdle: (() => void) | null = null;
  const runBatch = async (batch: ScheduledJob<SendJobData>[]) => {
    let results: Awaited<ReturnType<typeof deliverBatch>>;
    try {
      results = await deliverBatch(
        ctx,
        batch.map((j) => ({ data: j.data, finalAttempt: false, acceptedEarlier: null })),
      );
    } catch (err) {
      // Nothing was sent (a database error while claiming or reading): the jobs stay
      // scheduled and run as retries.
      log.error({ err, jobs: batch.length }, "send batch crashed; its jobs will retry");
      return;
    }
    const settled: string[] = [];
    const unrecorded: { id: string; output: SendJobOutput }[] = [];
    results.forEach((r, i) => {
      const job = batch[i]!;
      if (r.outcome === "sent" || r.outcome === "skipped") settled.push(job.id);
      else if (r.outcome === "failed") {
        settled.push(job.id);
        log.warn({ messageId: job.data.messageId, error: r.error }, "send failed");
      } else if (r.outcome === "unrecorded" && r.accepted)
        unrecorded.push({ id: job.id, output: { error: r.error ?? "unrecorded", accepted: r.accepted } });
    });
    try {
      if (settled.length > 0) await boss.deleteJob(queue, settled);
      // The retry finds the acceptance where a failed attempt leaves it: the job's output.
      for (const u of unrecorded) await setJobOutput(boss, queue, u.id, u.output);
    } catch (err) {
      // A job left behind runs when due and finds its message settled (or records the
      // acceptance then, if this was the output that failed to write).
      log.warn({ err }, "settling immediate send jobs failed; they will run as retries");
    }
  };
  const pump = () => {
    while (running < opts.workers && waiting.length > 0) {
      const batch = waiting.splice(0, opts.batchSize);
      running++;
      void runBatch(batch).finally(() => {
        running--;
        pump();
      });
    }
    if (running === 0 && waiting.length === 0 && settleIdle) {
      settleIdle();
      settleIdle = null;
    }
  };
  return {
    run(jobs) {
      if (running === 0 && waiting.length === 0)
        idle = new Promise((resolve) => {
          settleIdle = resolve;
        });
      waiting.push(...(jobs as unknown as ScheduledJob<SendJobData>[]));
      // Handed over together by the commits of one turn of the event loop: one batch.
      if (running < opts.workers) queueMicrotask(pump);
    },
    drain: () => idle,
  };
}

/** Writes `output` on a job that has not run yet (pg-boss hands it to the handler with the job). */
async function setJobOutput(
  boss: Pick<PgBoss, "getDb">,
  queue: string,
  id: string,
  output: SendJobOutput,
): Promise<void> {
  const db = boss.getDb() as unknown as { executeSql(text: string, values: unknown[]): Promise<unknown> };
  await db.executeSql("UPDATE pgboss.job SET output = $3::jsonb WHERE name = $1 AND id = $2::uuid", [
    queue,
    id,
    JSON.stringify(output),
  ]);
}

/** `send-message-dead`: the job ran out of retries (see `markGivenUp`). */
export function sendDeadLetterHandler(ctx: EngineContext, log: EngineContext["log"]) {
  return async (jobs: PgBoss.JobWithMetadata<SendJobData>[]): Promise<void> => {
    for (const job of jobs) {
      const done = await markGivenUp(ctx, job.data, acceptedOf(job.output));
      if (done === "failed") log.warn({ messageId: job.data.messageId }, "send given up");
      else if (done === "sent")
        log.warn({ messageId: job.data.messageId }, "unrecorded send recorded by the dead letter");
    }
  };
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

  const handleBatch = sendBatchHandler(ctx, boss, SEND_MESSAGE_QUEUE, log);
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
  runner.addWorkers(SEND_MESSAGE_QUEUE, ids);
  // Commits that queue mail hand their jobs over here (`ctx.jobs.runNow`): first attempts
  // never wait for a poll; the workers above run the retries.
  runner.setImmediateHandler(
    SEND_MESSAGE_QUEUE,
    immediateSendHandler(ctx, boss, SEND_MESSAGE_QUEUE, opts, log),
  );
  await boss.work<SendJobData>(
    SEND_MESSAGE_DEAD_LETTER,
    { pollingIntervalSeconds: 5, includeMetadata: true },
    sendDeadLetterHandler(ctx, log),
  );
  // The safety net: a message left SENDING with no job to finish it is marked FAILED.
  await registerSweep(runner, "send-sweep", SEND_SWEEP_INTERVAL_S, async () => {
    const n = await giveUpOrphanedSends(ctx);
    if (n > 0) log.warn({ messages: n }, "sends with no recorded outcome past every retry marked FAILED");
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

/** How often the orphaned-send sweep runs (`giveUpOrphanedSends`, `registerSweep`). */
export const SEND_SWEEP_INTERVAL_S = 300;
