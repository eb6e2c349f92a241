import type PgBoss from "pg-boss";
import { rawClient } from "../db/client.js";
import type { EngineContext } from "../engine/context.js";
import { errorText } from "../engine/errors.js";
import { type AutoReplyJobData, runAutoReply } from "../engine/outbound/auto-reply-service.js";
import {
  type AcceptedSend,
  type DeliveryResult,
  deliverBatch,
  giveUpOrphanedSends,
  markGivenUp,
  needsAnotherAttempt,
  STALE_SENDING_MINUTES,
} from "../engine/outbound/delivery.js";
import {
  AUTO_REPLY_QUEUE,
  SEND_MESSAGE_DEAD_LETTER,
  SEND_MESSAGE_QUEUE,
  type SendJobData,
  scheduleSendJob,
  sendRetryPolicy,
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

/**
 * The acceptance a job carries: in its output (left by a failed attempt of this job) or in
 * its data (an immediate attempt's, `immediateSendHandler`). pg-boss copies both to the
 * dead letter, so its handler reads them the same way.
 */
function carriedAcceptance(job: { data: unknown; output?: unknown }): AcceptedSend | null {
  for (const holder of [job.output, job.data]) {
    const accepted = (holder as Partial<SendJobOutput> | null | undefined)?.accepted;
    if (accepted && typeof accepted.at === "string") return accepted;
  }
  return null;
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
      acceptedEarlier: carriedAcceptance(job),
    }));
    try {
      const results = await deliverBatch(ctx, input);
      results.forEach((r, i) => {
        const job = jobs[i]!;
        if (needsAnotherAttempt(r.outcome)) {
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
      const error = errorText(err);
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
 * commit (`JobRunner.runNow`): no job insert, fetch, completion or poll on the hot path —
 * the QUEUED row is the durable record. A `send-message` job is scheduled only for what
 * needs another attempt: `retry` and `busy` (due after the retry delay), `unrecorded` (the
 * acceptance in the job's data, so the job records it without sending), or a batch that
 * crashed before sending. If even that cannot be written, or the process stops first,
 * `rescueUnscheduledSends` finds the message.
 *
 * Up to `workers` batches of at most `batchSize` are in flight; sends handed over while
 * all are busy wait for the next free one, so batches grow with the load (as pg-boss's did).
 */
export function immediateSendHandler(
  ctx: EngineContext,
  schedule: (data: SendJobData & { accepted?: AcceptedSend }, delaySeconds: number) => Promise<unknown>,
  opts: { workers: number; batchSize: number },
  log: EngineContext["log"],
): ImmediateHandler {
  const waiting: SendJobData[] = [];
  let running = 0;
  let idle: Promise<void> = Promise.resolve();
  let settleIdle: (() => void) | null = null;
  const { delaySeconds: delay, limit } = sendRetryPolicy(ctx);
  const runBatch = async (batch: SendJobData[]) => {
    let results: DeliveryResult[];
    try {
      results = await deliverBatch(
        ctx,
        // With no retries configured the first attempt is the last.
        batch.map((data) => ({ data, finalAttempt: limit === 0, acceptedEarlier: null })),
      );
    } catch (err) {
      // Nothing was sent (a database error while claiming or reading).
      log.error({ err, messages: batch.length }, "send batch crashed; retrying as jobs");
      results = batch.map(() => ({ outcome: "retry" as const }));
    }
    for (const [i, r] of results.entries()) {
      const data = batch[i]!;
      if (r.outcome === "failed") log.warn({ messageId: data.messageId, error: r.error }, "send failed");
      if (!needsAnotherAttempt(r.outcome)) continue;
      try {
        await schedule(
          r.outcome === "unrecorded" && r.accepted ? { ...data, accepted: r.accepted } : data,
          delay,
        );
      } catch (err) {
        log.error(
          { err, messageId: data.messageId },
          "scheduling a send retry failed; the rescue sweep will",
        );
      }
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
    run(work) {
      if (running === 0 && waiting.length === 0)
        idle = new Promise((resolve) => {
          settleIdle = resolve;
        });
      waiting.push(...(work as unknown as SendJobData[]));
      // Handed over by the commits of one turn of the event loop: one batch.
      if (running < opts.workers) queueMicrotask(pump);
    },
    drain: () => idle,
    async stop() {
      // Not started yet: a job each, due at once, so another instance (or this one after
      // a restart) sends them without waiting for the rescue sweep.
      const left = waiting.splice(0);
      for (const data of left) {
        await schedule(data, 0).catch((err: unknown) =>
          log.error(
            { err, messageId: data.messageId },
            "handing a send to a job failed; the rescue sweep will",
          ),
        );
      }
      pump();
      await idle;
    },
  };
}

/** A QUEUED send nobody attempted for this long gets a job (`rescueUnscheduledSends`). */
export const UNATTEMPTED_SEND_MINUTES = 2;

/**
 * The safety net of the immediate first attempt: a job for every outbound message still
 * QUEUED `UNATTEMPTED_SEND_MINUTES` after its last change, or SENDING past the claim's
 * staleness, that has no send job pending — its process stopped before the attempt, or
 * could not schedule the retry. The job claims it as any retry would (a stale SENDING row
 * is sent again: the at-least-once case of docs/outbound.md). Returns how many.
 */
export async function rescueUnscheduledSends(
  ctx: EngineContext,
  schedule: (data: SendJobData, attempted: boolean) => Promise<unknown>,
  limit = 200,
): Promise<number> {
  const rows = await rawClient(ctx.db)<{ tenant_id: string; id: string; send_attempts: number }[]>`
    SELECT m.tenant_id, m.id, m.send_attempts FROM message m
    WHERE m.direction = 'OUTBOUND' AND m.outbound_status IN ('QUEUED', 'SENDING')
      -- Not one whose attempts ran out (the dead letter and the orphaned-send sweep's).
      AND m.send_attempts <= ${sendRetryPolicy(ctx).limit}
      AND m.updated_at < now() - CASE m.outbound_status
            WHEN 'QUEUED' THEN make_interval(mins => ${UNATTEMPTED_SEND_MINUTES}::int)
            ELSE make_interval(mins => ${STALE_SENDING_MINUTES}::int) END
      AND NOT EXISTS (
        SELECT 1 FROM pgboss.job j
        WHERE j.name = ${SEND_MESSAGE_QUEUE} AND j.state < 'completed'
          AND j.data->>'messageId' = m.id::text)
    ORDER BY m.updated_at
    LIMIT ${limit}`;
  for (const r of rows) await schedule({ tenantId: r.tenant_id, messageId: r.id }, r.send_attempts > 0);
  return rows.length;
}

/** `send-message-dead`: the job ran out of retries (see `markGivenUp`). */
export function sendDeadLetterHandler(ctx: EngineContext, log: EngineContext["log"]) {
  return async (jobs: PgBoss.JobWithMetadata<SendJobData>[]): Promise<void> => {
    for (const job of jobs) {
      const done = await markGivenUp(ctx, job.data, carriedAcceptance(job));
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
  const scheduleRetry = (data: SendJobData & { accepted?: AcceptedSend }, delaySeconds = 0) =>
    scheduleSendJob(ctx, data, { afterFirstAttempt: true, delaySeconds });
  runner.setImmediateHandler(SEND_MESSAGE_QUEUE, immediateSendHandler(ctx, scheduleRetry, opts, log));
  await registerSweep(runner, "send-rescue", SEND_RESCUE_INTERVAL_S, async () => {
    const n = await rescueUnscheduledSends(ctx, (data, attempted) =>
      scheduleSendJob(ctx, data, { afterFirstAttempt: attempted }),
    );
    if (n > 0) log.warn({ messages: n }, "sends no process attempted scheduled as jobs");
  });
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

/** How often `rescueUnscheduledSends` runs. */
export const SEND_RESCUE_INTERVAL_S = 60;

/** How often the orphaned-send sweep runs (`giveUpOrphanedSends`, `registerSweep`). */
export const SEND_SWEEP_INTERVAL_S = 300;
