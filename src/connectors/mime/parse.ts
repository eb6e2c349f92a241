import { createHash, webcrypto } from "node:crypto";
import { closeSync, openSync, readFileSync, readSync } from "node:fs";
import { createRequire } from "node:module";
import { availableParallelism } from "node:os";
import { dirname, join } from "node:path";
import { pathToFileURL } from "node:url";
import { Worker } from "node:worker_threads";
import type { MimeParser, ParsedMail, ParseOptions, ParseOutcome } from "../../engine/ingest/parsed-mail.js";
import { HEADLINE_BYTES, headlineOf } from "./headline.js";
import type { MimeLimits } from "./mime-to-parsed.js";
import type { ParseJob, WorkerReply, WorkerSetup } from "./parse-worker.js";

/**
 * MIME parsing off the main event loop: a small pool of worker threads running
 * mailparser (see parse-worker.ts), with a per-message time limit and size caps, so one
 * hostile or huge message can neither block the API nor stall ingest.
 *
 * How the worker loads: under tsx or vitest this module is the `.ts` source, and on
 * Node 20 a worker does NOT inherit the parent's loader hooks; `execArgv: ["--import",
 * "tsx"]` does not help either, because the worker's entry module is resolved before
 * hooks registered by `--import` apply, so the entry fails with "Unknown file extension
 * .ts". Instead the worker starts from a tiny ESM bootstrap (a data: URL) that calls
 * tsx's `register()` and then imports parse-worker.ts. When running compiled `.js`, the
 * sibling parse-worker.js is started directly and tsx is not needed.
 *
 * What stays on the main thread per message: copying the raw bytes into a transferable
 * ArrayBuffer, 2 MB per macrotask (the caller keeps its Buffer), and receiving the
 * result, whose attachment buffers are transferred back rather than copied.
 */

export type { MimeParser, ParseOptions, ParseOutcome } from "../../engine/ingest/parsed-mail.js";

export interface MimeParserOptions {
  /** Worker threads; default: one per core, at most 2. */
  poolSize?: number;
  /**
   * Per-message time limit once a worker has the message; default 10 s. On Linux it is
   * counted in the worker thread's CPU time, so a machine too busy to schedule the
   * parser does not turn good mail into "timeout" rejections; wall-clock time is still
   * capped at `maxStallFactor` × the limit. Elsewhere it is wall-clock time.
   */
  timeoutMs?: number;
  /** Wall-clock cap as a multiple of the time limit when CPU time is measured; default 3. */
  maxStallFactor?: number;
  /** Larger raw messages are rejected "oversize" without parsing; default 40 MB (SPEC §3). */
  maxBytes?: number;
  /** Default 500 MIME parts. */
  maxParts?: number;
  /** Largest header block of the message or of any part; default 1 MB. */
  maxHeaderBytes?: number;
  /** Sanitise the HTML body in the worker too; default true. */
  sanitize?: boolean;
  /**
   * HTML above this many characters, not counting the base64 payloads of data: URIs in
   * attribute values, is neither sanitised nor fully converted (each takes seconds beyond
   * that); default 2 M.
   */
  maxHtmlChars?: number;
  /**
   * HTML on which the HTML parser would take more steps on its stack of open elements
   * (`htmlTooCostly`: deep nesting costs it N²) is neither sanitised nor fully converted, as
   * too large HTML; default 100,000,000 (~50–100 ms of each parser).
   */
  maxHtmlParseSteps?: number;
  /**
   * V8 old-space limit per worker (default 1024 MB): a message that exhausts the JS heap
   * ends its worker (ERR_WORKER_OUT_OF_MEMORY → "unparseable") instead of growing without
   * bound. V8 can still abort the whole process when the limit is reached through
   * Buffer (external) memory pressure, so keep it generous: the real guards are
   * maxBytes, maxParts and maxHtmlChars.
   */
  maxWorkerHeapMb?: number;
  /**
   * Nice value of the worker threads on Linux (default 5; null leaves them alone), so a
   * big parse yields to the main event loop when both want a core. Moderate on purpose:
   * at 10+ a loaded machine starves the parser for many seconds.
   */
  workerNiceness?: number | null;
}

export const MIME_PARSER_DEFAULTS = {
  timeoutMs: 10_000,
  maxStallFactor: 3,
  maxBytes: 40 * 1024 * 1024,
  maxParts: 500,
  maxHeaderBytes: 1024 * 1024,
  maxHtmlChars: 2_000_000,
  maxHtmlParseSteps: 100_000_000,
  maxWorkerHeapMb: 1024,
  workerNiceness: 5,
} as const;

interface Job {
  id: number;
  raw: Buffer;
  timeoutMs: number;
  traceBytes: number;
  resolve: (outcome: ParseOutcome) => void;
  reject: (err: Error) => void;
}

interface Slot {
  worker: Worker;
  ready: boolean;
  job: Job | null;
  timer: NodeJS.Timeout | null;
  /**
   * The worker thread's /proc/self/task/<tid>/stat, kept open for its CPU time (a read at
   * offset 0 of an open file: ~6 µs, against ~32 µs to open, read and close it per job);
   * null where unavailable.
   */
  statFd: number | null;
  /** Set once we terminate it ourselves, so its exit is not treated as a crash. */
  retired: boolean;
}

/**
 * CPU time (user + system) of one thread of this process, in ms, from its open
 * /proc/self/task/<tid>/stat (fields 14 and 15, in USER_HZ = 100 ticks per second on
 * every Linux ABI). Null when it cannot be read (the thread has exited: ESRCH).
 */
const statBuffer = Buffer.alloc(1024);
function threadCpuMs(fd: number | null): number | null {
  if (fd === null) return null;
  try {
    const stat = statBuffer.toString("latin1", 0, readSync(fd, statBuffer, 0, statBuffer.length, 0));
    // The command name (field 2) may contain spaces; fields are counted after its ")".
    const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    const ticks = Number(fields[11]) + Number(fields[12]);
    return Number.isFinite(ticks) ? ticks * 10 : null;
  } catch {
    return null;
  }
}

function openThreadStat(tid: number | null): number | null {
  if (tid === null) return null;
  try {
    return openSync(`/proc/self/task/${tid}/stat`, "r");
  } catch {
    return null;
  }
}

/**
 * One thread per core, at most 2. The threads run at a lower priority (workerNiceness), so
 * they take what the event loop leaves; with 4 SMTP senders on a 2-core machine a second
 * thread cut the per-message latency p50 from 55–73 to 45–54 ms (docs/benchmarks.md).
 */
function defaultPoolSize(): number {
  return Math.max(1, Math.min(2, availableParallelism()));
}

/** file: URL of tsx's ESM `register` API, read from its package exports map. */
function tsxEsmApiUrl(): string {
  const require = createRequire(import.meta.url);
  const pkgPath = require.resolve("tsx/package.json");
  let rel = "./dist/esm/api/index.mjs";
  try {
    const pkg = JSON.parse(readFileSync(pkgPath, "utf8")) as {
      exports?: Record<string, { import?: { default?: string } | string } | string>;
    };
    const entry = pkg.exports?.["./esm/api"];
    const imp = typeof entry === "object" ? entry.import : undefined;
    const target = typeof imp === "object" ? imp.default : imp;
    if (target) rel = target;
  } catch {
    // fall back to the path tsx 4.x uses
  }
  return pathToFileURL(join(dirname(pkgPath), rel)).href;
}

function workerEntry(): URL {
  if (import.meta.url.endsWith(".ts")) {
    const target = new URL("./parse-worker.ts", import.meta.url).href;
    const code = `import { register } from ${JSON.stringify(tsxEsmApiUrl())};\nregister();\nawait import(${JSON.stringify(target)});\n`;
    return new URL(`data:text/javascript,${encodeURIComponent(code)}`);
  }
  return new URL("./parse-worker.js", import.meta.url);
}

// Copying 40 MB in one go blocks the event loop for 10–50 ms (more on a busy machine);
// copying it a slice per macrotask keeps every single block short.
const COPY_SLICE = 2 * 1024 * 1024;

/**
 * A private copy of the raw bytes in an ArrayBuffer of its own, for transfer: the
 * caller keeps its Buffer (ingest stores it after parsing), and the worker receives the
 * copy without a second structured-clone copy.
 */
async function transferableCopy(raw: Buffer): Promise<ArrayBuffer> {
  const ab = new ArrayBuffer(raw.byteLength);
  const view = Buffer.from(ab);
  for (let offset = 0; offset < raw.byteLength; offset += COPY_SLICE) {
    if (offset > 0) await new Promise<void>((resolve) => setImmediate(resolve));
    raw.copy(view, offset, offset, Math.min(offset + COPY_SLICE, raw.byteLength));
  }
  return ab;
}

/** Attachment contents arrive as Uint8Array views; make them Buffers again (no copy). */
function reviveBuffers(outcome: ParseOutcome): ParseOutcome {
  if (!outcome.ok) return outcome;
  const mail: ParsedMail = outcome.mail;
  for (const a of mail.attachments) {
    const c = a.content as Uint8Array;
    if (!Buffer.isBuffer(c)) a.content = Buffer.from(c.buffer, c.byteOffset, c.byteLength);
  }
  return outcome;
}

/**
 * The rejection of a message over the size limit, from as much of its beginning as was
 * kept (`head`: the whole message, or only its first bytes when the rest was never
 * received or fetched; after `traceBytes` of our own trace lines over SMTP) and its real
 * size (the sender's bytes). Its content key, for mail without a Message-ID (an SMTP
 * retry, a copy to a second address), is the size and the sender's first
 * HEADLINE_BYTES: all of it that is ever kept.
 */
export function oversizeOutcome(
  head: Buffer,
  sizeBytes: number,
  maxBytes: number,
  traceBytes = 0,
): ParseOutcome {
  const start = traceBytes > 0 && traceBytes <= head.length ? traceBytes : 0;
  const contentHash = createHash("sha256")
    .update(`oversize ${sizeBytes}\n`)
    .update(head.subarray(start, start + HEADLINE_BYTES))
    .digest("hex");
  return {
    ok: false,
    reason: "oversize",
    detail: `message of ${sizeBytes} bytes exceeds the limit of ${maxBytes}`,
    sizeBytes,
    headline: headlineOf(head),
    contentHash,
  };
}

/**
 * A rejection with what the rejected record needs from the header block (`headline`), its
 * content key (`contentHash`, as a parsed mail without a Message-ID has it: the key of mail
 * without a Message-ID, and of any whose record had to be written without its header
 * fields, ingest.ts `quarantineMessage`) and the hash of its raw bytes (`rawSha256`, for
 * `raw_message.sha256`). The hashes run on libuv's thread pool (WebCrypto), not on the event
 * loop, since unparseable mail can be up to the size cap.
 */
async function rejectionOutcome(
  outcome: Extract<ParseOutcome, { ok: false }>,
  raw: Buffer,
  traceBytes: number,
): Promise<ParseOutcome> {
  const headline = headlineOf(raw);
  const hex = async (bytes: Buffer) =>
    Buffer.from(await webcrypto.subtle.digest("SHA-256", bytes)).toString("hex");
  const traced = traceBytes > 0 && traceBytes <= raw.length;
  const rawSha256 = await hex(raw);
  const contentHash = traced ? await hex(raw.subarray(traceBytes)) : rawSha256;
  return { ...outcome, headline, contentHash, rawSha256 };
}

export function createMimeParser(opts: MimeParserOptions = {}): MimeParser {
  const poolSize = Math.max(1, Math.floor(opts.poolSize ?? defaultPoolSize()));
  const timeoutMs = opts.timeoutMs ?? MIME_PARSER_DEFAULTS.timeoutMs;
  const maxStallFactor = Math.max(1, opts.maxStallFactor ?? MIME_PARSER_DEFAULTS.maxStallFactor);
  const maxBytes = opts.maxBytes ?? MIME_PARSER_DEFAULTS.maxBytes;
  const limits: MimeLimits = {
    maxParts: opts.maxParts ?? MIME_PARSER_DEFAULTS.maxParts,
    maxHeaderBytes: opts.maxHeaderBytes ?? MIME_PARSER_DEFAULTS.maxHeaderBytes,
    sanitize: opts.sanitize ?? true,
    maxHtmlChars: opts.maxHtmlChars ?? MIME_PARSER_DEFAULTS.maxHtmlChars,
    maxHtmlParseSteps: opts.maxHtmlParseSteps ?? MIME_PARSER_DEFAULTS.maxHtmlParseSteps,
  };
  const maxHeap = opts.maxWorkerHeapMb ?? MIME_PARSER_DEFAULTS.maxWorkerHeapMb;
  const setup: WorkerSetup = {
    limits,
    niceness: opts.workerNiceness === undefined ? MIME_PARSER_DEFAULTS.workerNiceness : opts.workerNiceness,
  };

  const slots: Slot[] = [];
  const queue: Job[] = [];
  let nextId = 1;
  let closed = false;
  // Consecutive workers that died before becoming ready: the pool itself is broken
  // (e.g. tsx missing), which must surface as an error, not as "unparseable" mail.
  let startupFailures = 0;

  const spawn = (): void => {
    const worker = new Worker(workerEntry(), {
      workerData: setup,
      resourceLimits: { maxOldGenerationSizeMb: maxHeap },
    });
    const slot: Slot = { worker, ready: false, job: null, timer: null, statFd: null, retired: false };
    slots.push(slot);
    worker.on("message", (msg: WorkerReply) => {
      if (msg.type === "ready") {
        slot.ready = true;
        slot.statFd = openThreadStat(msg.tid);
        startupFailures = 0;
        dispatch();
        // An idle worker must not keep the process alive (a forgotten close()).
        if (!slot.job) worker.unref();
        return;
      }
      const job = slot.job;
      if (!job || job.id !== msg.id) return;
      finish(slot);
      job.resolve(reviveBuffers(msg.outcome));
      dispatch();
    });
    worker.on("error", (err) => handleDeath(slot, err));
    worker.on("exit", (code) => handleDeath(slot, new Error(`parser worker exited with code ${code}`)));
  };

  const finish = (slot: Slot): void => {
    if (slot.timer) clearTimeout(slot.timer);
    slot.timer = null;
    slot.job = null;
    slot.worker.unref();
  };

  const remove = (slot: Slot): void => {
    const i = slots.indexOf(slot);
    if (i >= 0) slots.splice(i, 1);
    if (slot.statFd !== null) closeSync(slot.statFd);
    slot.statFd = null;
  };

  const handleDeath = (slot: Slot, err: Error): void => {
    if (!slots.includes(slot)) return;
    remove(slot);
    const job = slot.job;
    finish(slot);
    if (slot.retired) return;
    if (!slot.ready) {
      startupFailures++;
      if (startupFailures >= 3) {
        const broken = new Error(`MIME parser workers fail to start: ${err.message}`);
        for (const j of queue.splice(0)) j.reject(broken);
        return;
      }
    }
    if (job) {
      // A crash while parsing (out of memory, native fault) is the message's fault.
      const detail = /ERR_WORKER_OUT_OF_MEMORY|out of memory/i.test(
        `${(err as { code?: string }).code} ${err.message}`,
      )
        ? "parser ran out of memory"
        : `parser worker crashed: ${err.message}`;
      job.resolve({ ok: false, reason: "unparseable", detail, sizeBytes: job.raw.byteLength });
    }
    if (!closed) dispatch();
  };

  const dispatch = (): void => {
    if (closed) return;
    for (const slot of slots) {
      if (queue.length === 0) return;
      if (!slot.ready || slot.job) continue;
      const job = queue.shift()!;
      slot.job = job;
      slot.worker.ref();
      void send(slot, job);
    }
    // Grow the pool lazily, up to its size, while work is waiting.
    while (queue.length > slots.filter((s) => !s.ready).length && slots.length < poolSize) {
      spawn();
    }
  };

  const send = async (slot: Slot, job: Job): Promise<void> => {
    const raw = await transferableCopy(job.raw);
    // Closed, or the worker died, while copying: the job was settled elsewhere.
    if (slot.job !== job || !slots.includes(slot)) return;
    const startedAt = Date.now();
    const cpuAtStart = threadCpuMs(slot.statFd);
    const expire = (): void => {
      const elapsed = Date.now() - startedAt;
      const cpuNow = threadCpuMs(slot.statFd);
      const cpu = cpuAtStart !== null && cpuNow !== null ? cpuNow - cpuAtStart : null;
      // Starved rather than runaway: the thread has not used its budget yet. Wait for
      // the rest of it, unless the wall-clock cap is reached too.
      if (cpu !== null && cpu < job.timeoutMs && elapsed < job.timeoutMs * maxStallFactor) {
        const wait = Math.max(50, Math.min(job.timeoutMs - cpu, job.timeoutMs * maxStallFactor - elapsed));
        slot.timer = setTimeout(expire, wait);
        return;
      }
      // A parse that runs away (catastrophic input) cannot be interrupted from
      // inside; terminating the thread is the only reliable stop.
      slot.retired = true;
      remove(slot);
      finish(slot);
      void slot.worker.terminate();
      const spent = cpu === null ? `${elapsed} ms` : `${cpu} ms CPU in ${elapsed} ms`;
      job.resolve({
        ok: false,
        reason: "timeout",
        detail: `parse timeout: limit ${job.timeoutMs} ms, spent ${spent}`,
        sizeBytes: job.raw.byteLength,
      });
      dispatch();
    };
    slot.timer = setTimeout(expire, job.timeoutMs);
    const message: ParseJob = { id: job.id, raw, traceBytes: job.traceBytes };
    slot.worker.postMessage(message, [raw]);
  };

  return {
    parse(raw: Buffer, options: ParseOptions = {}): Promise<ParseOutcome> {
      if (closed) return Promise.reject(new Error("MIME parser is closed"));
      // The limit is on the sender's bytes, not on our trace lines in front of them: the
      // SMTP listener advertised it as SIZE and accepts mail up to it.
      const trace = options.traceBytes ?? 0;
      const senderBytes = raw.byteLength - (trace > 0 && trace <= raw.byteLength ? trace : 0);
      if (senderBytes > maxBytes) return Promise.resolve(oversizeOutcome(raw, senderBytes, maxBytes, trace));
      return new Promise<ParseOutcome>((resolve, reject) => {
        queue.push({
          id: nextId++,
          raw,
          timeoutMs: options.timeoutMs ?? timeoutMs,
          traceBytes: options.traceBytes ?? 0,
          resolve,
          reject,
        });
        dispatch();
      }).then((outcome) => (outcome.ok ? outcome : rejectionOutcome(outcome, raw, options.traceBytes ?? 0)));
    },

    /**
     * Stops every worker at once. Queued and in-flight parses are rejected with an
     * Error: nothing was committed for them, so ingest retries them on the next run.
     */
    async close(): Promise<void> {
      if (closed) return;
      closed = true;
      const err = new Error("MIME parser is closed");
      for (const j of queue.splice(0)) j.reject(err);
      const all = [...slots];
      for (const slot of all) remove(slot);
      await Promise.all(
        all.map(async (slot) => {
          slot.retired = true;
          const job = slot.job;
          finish(slot);
          job?.reject(err);
          await slot.worker.terminate();
        }),
      );
    },
  };
}
