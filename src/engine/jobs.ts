import type { DbOrTx } from "../db/client.js";

/**
 * Durable, timed work (ARCHITECTURE "Time"): timers, retried sends, sweeps. The engine
 * schedules through this interface; `src/jobs` implements it with pg-boss. Jobs scheduled
 * with `db` set are written on that transaction and exist only if it commits.
 */
export interface JobScheduler {
  schedule(
    name: string,
    data: Record<string, unknown>,
    opts?: {
      db?: DbOrTx;
      startAfter?: Date;
      /** At most one queued job with this key per queue (pg-boss singletonKey). */
      singletonKey?: string;
      retryLimit?: number;
      retryDelaySeconds?: number;
      retryBackoff?: boolean;
    },
  ): Promise<string | null>;
  /**
   * After the commit that scheduled jobs on `name`: this process's workers for that
   * queue fetch now instead of at their next poll (optional; polling still finds them).
   */
  wake?(name: string): void;
  /**
   * Whether this process runs jobs of `name` right after the commit that scheduled them
   * (`runNow`). Such jobs are scheduled to start only after their retry delay: the durable
   * job is the retry and the safety net should the process die before the first attempt.
   */
  runsNow?(name: string): boolean;
  /**
   * After the commit that scheduled these jobs: run them in this process now, no poll in
   * between. The handler settles (deletes) each job it finished; the others stay scheduled
   * and run as retries. Without an immediate handler for `name`, wakes its workers.
   */
  runNow?(name: string, jobs: readonly ScheduledJob[]): void;
}

/** A job as scheduled: its id and data (what `runNow` hands to the immediate handler). */
export interface ScheduledJob<T = Record<string, unknown>> {
  id: string;
  data: T;
}

/** For contexts without a job runner (CLI scripts, pure tests): scheduling is refused loudly. */
export const noJobs: JobScheduler = {
  schedule: async (name) => {
    throw new Error(`no job scheduler configured (tried to schedule ${name})`);
  },
};
