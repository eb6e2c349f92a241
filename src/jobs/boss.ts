import PgBoss from "pg-boss";
import { rawClient } from "../db/client.js";
import type { Logger } from "../engine/context.js";
import type { JobScheduler } from "../engine/jobs.js";

/** Every queue the app uses is declared here so it exists before anyone sends to it. */
export interface QueueSpec {
  name: string;
  retryLimit?: number;
  retryDelay?: number;
  retryBackoff?: boolean;
  deadLetter?: string;
}

export interface JobRunner extends JobScheduler {
  boss: PgBoss;
  /** Creates queues (idempotent) and registers a handler; handlers get one job at a time. */
  register<T extends object>(
    spec: QueueSpec,
    handler: (data: T, job: { id: string; retryCount: number }) => Promise<void>,
    opts?: { pollingIntervalSeconds?: number; batchSize?: number },
  ): Promise<void>;
  stop(): Promise<void>;
}

/**
 * pg-boss in its own schema of the same database. Handlers must re-check state against
 * the database: a timer that fires late or twice must do nothing harmful (ARCHITECTURE
 * "Time"). pg-boss polls (≥ 0.5 s), so it is never on the latency path of an assignment.
 */
export async function startJobRunner(url: string, log: Logger): Promise<JobRunner> {
  const boss = new PgBoss({
    connectionString: url,
    schema: "pgboss",
    max: 4,
    application_name: "switchboard-jobs",
  });
  boss.on("error", (err) => log.error({ err }, "pg-boss error"));
  await boss.start();
  const created = new Set<string>();
  const ensure = async (spec: QueueSpec) => {
    if (created.has(spec.name)) return;
    if (spec.deadLetter && !created.has(spec.deadLetter)) {
      await boss.createQueue(spec.deadLetter).catch(() => {});
      created.add(spec.deadLetter);
    }
    // createQueue fails on an existing queue on some versions; existence is what we need.
    // Only the options given: pg-boss rejects present-but-undefined keys, and a queue that
    // was never created makes send() return null without inserting anything.
    const options = Object.fromEntries(
      Object.entries({
        retryLimit: spec.retryLimit,
        retryDelay: spec.retryDelay,
        retryBackoff: spec.retryBackoff,
        deadLetter: spec.deadLetter,
      }).filter(([, v]) => v !== undefined),
    );
    await boss.createQueue(spec.name, { name: spec.name, ...options }).catch(() => {});
    created.add(spec.name);
  };
  const runner: JobRunner = {
    boss,
    async schedule(name, data, opts = {}) {
      await ensure({ name });
      // pg-boss validates keys that are present, even when undefined ("retryDelay must be
      // an integer"), so only the options actually given are passed.
      const defined = Object.fromEntries(
        Object.entries({
          startAfter: opts.startAfter,
          singletonKey: opts.singletonKey,
          retryLimit: opts.retryLimit,
          retryDelay: opts.retryDelaySeconds,
          retryBackoff: opts.retryBackoff,
        }).filter(([, v]) => v !== undefined),
      );
      return boss.send(name, data, {
        ...defined,
        ...(opts.db
          ? {
              db: {
                executeSql: async (text: string, values: unknown[]) => {
                  // pg-boss writes for node-postgres, which sends undefined as NULL, objects as
                  // JSON and Dates as timestamps; postgres.js (unsafe, untyped) needs them as text.
                  const params = values.map((v) => {
                    if (v === undefined || v === null) return null;
                    if (v instanceof Date) return v.toISOString();
                    if (typeof v === "object" && !Buffer.isBuffer(v)) return JSON.stringify(v);
                    return v;
                  });
                  const rows = await rawClient(opts.db!).unsafe(text, params as never[]);
                  return { rows: [...rows] };
                },
              },
            }
          : {}),
      });
    },
    async register(spec, handler, opts = {}) {
      await ensure(spec);
      await boss.work<never>(
        spec.name,
        { pollingIntervalSeconds: opts.pollingIntervalSeconds ?? 1, batchSize: opts.batchSize ?? 1 },
        async (jobs) => {
          for (const job of jobs) {
            await handler(job.data as never, {
              id: job.id,
              retryCount: (job as { retryCount?: number }).retryCount ?? 0,
            });
          }
        },
      );
    },
    async stop() {
      await boss.stop({ graceful: true, wait: true, timeout: 10_000 });
    },
  };
  return runner;
}
