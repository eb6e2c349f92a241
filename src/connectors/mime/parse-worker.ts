import { readlinkSync } from "node:fs";
import { setPriority } from "node:os";
import { parentPort, workerData } from "node:worker_threads";
import type { ParseOutcome } from "../../engine/ingest/parsed-mail.js";
import type { MimeLimits } from "./mime-to-parsed.js";
import { parseRawMessage } from "./mime-to-parsed.js";

/**
 * Worker-thread entry of the MIME parser pool (parse.ts). Receives raw bytes as a
 * transferred ArrayBuffer, answers with the outcome; attachment buffers are transferred
 * back, so a 40 MB message crosses the thread boundary without being copied on the
 * main thread.
 */

export interface ParseJob {
  id: number;
  raw: ArrayBuffer;
  /** `ParseOptions.traceBytes`. */
  traceBytes: number;
}

export interface WorkerSetup {
  limits: MimeLimits;
  /** Nice value for this thread (Linux), or null to leave it. */
  niceness: number | null;
}

export type WorkerReply =
  | {
      type: "ready";
      /** Linux thread id, so the pool can read this thread's CPU time in /proc. */
      tid: number | null;
    }
  | { type: "result"; id: number; outcome: ParseOutcome };

const port = parentPort;
if (!port) throw new Error("parse-worker.ts must run as a worker thread");
const setup = workerData as WorkerSetup;
const limits = setup.limits;

// On Linux a nice value belongs to a thread, and setpriority(PRIO_PROCESS, 0) affects
// only the calling one: parsing yields the CPU to the event loop (API, IMAP I/O) when
// both want it. Elsewhere (macOS) it would renice the whole process, so it is skipped.
if (setup.niceness !== null && process.platform === "linux") {
  try {
    setPriority(0, setup.niceness);
  } catch {
    // not permitted in this container: parse at normal priority
  }
}

/**
 * A Buffer's memory may be a slice of Node's shared 8 KiB allocation pool, which must not
 * (and cannot) be transferred. Copy those into an ArrayBuffer of their own.
 */
function ownArrayBuffer(buf: Buffer): { view: Buffer; transfer: ArrayBuffer | null } {
  const ab = buf.buffer;
  if (
    ab instanceof ArrayBuffer &&
    buf.byteOffset === 0 &&
    buf.byteLength === ab.byteLength &&
    ab.byteLength > 0
  ) {
    return { view: buf, transfer: ab };
  }
  if (buf.byteLength === 0) return { view: buf, transfer: null };
  const copy = new ArrayBuffer(buf.byteLength);
  const view = Buffer.from(copy);
  buf.copy(view);
  return { view, transfer: copy };
}

port.on("message", (job: ParseJob) => {
  void (async () => {
    let outcome: ParseOutcome;
    try {
      outcome = await parseRawMessage(Buffer.from(job.raw), limits, job.traceBytes);
    } catch (err) {
      // parseRawMessage turns known failures into rejections; this is the last net.
      outcome = {
        ok: false,
        reason: "unparseable",
        detail: `parser failure: ${err instanceof Error ? err.message : String(err)}`,
        sizeBytes: job.raw.byteLength,
      };
    }
    const transfer: ArrayBuffer[] = [];
    if (outcome.ok) {
      for (const a of outcome.mail.attachments) {
        const own = ownArrayBuffer(a.content);
        a.content = own.view;
        if (own.transfer && !transfer.includes(own.transfer)) transfer.push(own.transfer);
      }
    }
    const reply: WorkerReply = { type: "result", id: job.id, outcome };
    port.postMessage(reply, transfer);
  })();
});

function threadId(): number | null {
  try {
    // "/proc/thread-self" links to "<pid>/task/<tid>" (Linux ≥ 3.17).
    const tid = Number(readlinkSync("/proc/thread-self").split("/").pop());
    return Number.isSafeInteger(tid) ? tid : null;
  } catch {
    return null;
  }
}

port.postMessage({ type: "ready", tid: threadId() } satisfies WorkerReply);
