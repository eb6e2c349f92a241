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
   * Whether this process runs work for queue `name` itself right after the commit that
   * produced it (`runNow`) — then that commit schedules no job for it: the handler
   * schedules one only for what needs a retry, and a sweep finds what no process ran.
   */
  runsNow?(name: string): boolean;
  /**
   * After the commit: hand this work (job data) to this process's immediate handler for
   * `name`, no job and no poll in between. Without one, wakes the queue's workers.
   */
  runNow?(name: string, work: readonly Record<string, unknown>[]): void;
}

/** For contexts without a job runner (CLI scripts, pure tests): scheduling is refused loudly. */
export const noJobs: JobScheduler = {
  schedule: async (name) => {
    throw new Error(`no job scheduler configured (tried to schedule ${name})`);
  },
};
