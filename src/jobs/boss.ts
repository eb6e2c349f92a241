import { createHash } from "node:crypto";
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
  /** Workers started with `boss.work` that `wake(name)` should nudge. */
  addWorkers(name: string, workerIds: string[]): void;
  /**
   * The handler `runNow(name, work)` hands freshly committed work of `name` to; `stop()`
   * stops handing it over and waits for the handler's `stop()` before stopping pg-boss.
   */
  setImmediateHandler(name: string, handler: ImmediateHandler): void;
  stop(): Promise<void>;
}

/** Runs work of one queue in this process right after its commit (`JobRunner.runNow`). */
export interface ImmediateHandler {
  run(work: readonly Record<string, unknown>[]): void;
  /** Resolves when everything handed over so far has been handled. */
  drain(): Promise<void>;
  /** Shutdown: what has not started becomes jobs (for any instance); waits for the rest. */
  stop(): Promise<void>;
}

/**
 * pg-boss validates an option that is present even when it is undefined ("retryDelay must
 * be an integer"), and a failed createQueue is swallowed below — then every send to that
 * queue inserts nothing. So unset options are left out, not passed as undefined.
 */
function defined<T extends object>(o: T): T {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as T;
}

/**
 * A safety-net sweep: `run` every `intervalSeconds`, on a pg-boss job that schedules its
 * own successor (also after a failed run). The singleton key keeps one pending per queue;
 * several instances may each keep one going, which only means more frequent no-op sweeps.
 */
export async function registerSweep(
  jobs: JobRunner,
  name: string,
  intervalSeconds: number,
  run: () => Promise<unknown>,
): Promise<void> {
  const next = () =>
    jobs.schedule(
      name,
      {},
      { startAfter: new Date(Date.now() + intervalSeconds * 1000), singletonKey: name },
    );
  await jobs.register<Record<string, never>>({ name }, async () => {
    try {
      await run();
    } finally {
      await next();
    }
  });
  await next();
}

/**
 * pg-boss sends its statements unnamed, so PostgreSQL plans each anew: its job fetch cost
 * more server CPU to plan than to run, on every poll (pg_stat_statements, docs/benchmarks.md
 * "send"). Named, node-postgres prepares each once per pooled connection and then only
 * binds. Only statements with parameters: those are single statements (the extended
 * protocol allows no other), scripts without parameters go through unchanged.
 */
function namePgBossStatements(boss: PgBoss): void {
  type Query = string | { name: string; text: string };
  const db = boss.getDb() as unknown as { executeSql(q: Query, values?: unknown[]): Promise<unknown> };
  const executeSql = db.executeSql.bind(db);
  const names = new Map<string, string>();
  db.executeSql = (q, values) => {
    if (typeof q !== "string" || !values?.length) return executeSql(q, values);
    let name = names.get(q);
    if (!name) {
      name = `pgboss_${createHash("sha256").update(q).digest("hex").slice(0, 24)}`;
      names.set(q, name);
    }
    return executeSql({ name, text: q }, values);
  };
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
  namePgBossStatements(boss);
  await boss.start();
  const created = new Set<string>();
  const workers = new Map<string, string[]>();
  const nextTurn = new Map<string, number>();
  const immediate = new Map<string, ImmediateHandler>();
  const ensure = async (spec: QueueSpec) => {
    if (created.has(spec.name)) return;
    if (spec.deadLetter && !created.has(spec.deadLetter)) {
      await boss.createQueue(spec.deadLetter).catch(() => {});
      created.add(spec.deadLetter);
    }
    // createQueue fails on an existing queue on some versions; existence is what we need.
    await boss
      .createQueue(
        spec.name,
        defined({
          name: spec.name,
          retryLimit: spec.retryLimit,
          retryDelay: spec.retryDelay,
          retryBackoff: spec.retryBackoff,
          deadLetter: spec.deadLetter,
        }),
      )
      .catch(() => {});
    created.add(spec.name);
  };
  const runner: JobRunner = {
    boss,
    async schedule(name, data, opts = {}) {
      await ensure({ name });
      return boss.send(name, data, {
        ...defined({
          startAfter: opts.startAfter,
          singletonKey: opts.singletonKey,
          retryLimit: opts.retryLimit,
          retryDelay: opts.retryDelaySeconds,
          retryBackoff: opts.retryBackoff,
        }),
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
                  // Prepared (postgres.js caches it per connection by its text, which is
                  // the same for every job): unprepared, PostgreSQL planned pg-boss's
                  // insert anew for every job — 0.35 ms of server CPU each, more than
                  // running it (pg_stat_statements, docs/benchmarks.md "send").
                  const rows = await rawClient(opts.db!).unsafe(text, params as never[], { prepare: true });
                  return { rows: [...rows] };
                },
              },
            }
          : {}),
      });
    },
    addWorkers(name, ids) {
      workers.set(name, [...(workers.get(name) ?? []), ...ids]);
    },
    setImmediateHandler(name, handler) {
      immediate.set(name, handler);
    },
    runsNow(name) {
      return immediate.has(name);
    },
    runNow(name, work) {
      if (work.length === 0) return;
      const handler = immediate.get(name);
      if (handler) handler.run(work);
      else runner.wake?.(name);
    },
    wake(name) {
      // One worker per wake, in turn: a woken worker that is busy skips its next sleep
      // instead, so under load each worker fetches once per batch it finishes (batches
      // grow with the load) rather than once per commit.
      const ids = workers.get(name);
      if (!ids?.length) return;
      const turn = (nextTurn.get(name) ?? 0) % ids.length;
      nextTurn.set(name, turn + 1);
      boss.notifyWorker(ids[turn]!);
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
      const handlers = [...immediate.values()];
      immediate.clear();
      await Promise.all(handlers.map((h) => h.stop()));
      await boss.stop({ graceful: true, wait: true, timeout: 10_000 });
    },
  };
  return runner;
}
