/**
 * send-core: compose + send 5,000 replies through the pooled SMTP transport to the
 * capturing sink (test/helpers/smtp-sinks.ts) on 127.0.0.1, run in a child process. Latency is per message, from the start of
 * composition to the server's 250 reply, with a bounded number of messages in flight
 * (as the send job's worker concurrency would be). Median of 3 runs after one
 * unmeasured warm-up run of 500.
 *
 *   npx tsx bench/send-core.ts [messages] [concurrency] [connections]
 *
 * The last line of output is the JSON result.
 */
import type { ChildProcess } from "node:child_process";
import { fork } from "node:child_process";
import { once } from "node:events";
import { fileURLToPath } from "node:url";
import { SmtpSender } from "../src/connectors/smtp-out.js";
import { compose } from "../src/engine/outbound/compose.js";
import { replyInput } from "./reply-input.js";

const MESSAGES = Number(process.argv[2] ?? 5000);
const CONCURRENCY = Number(process.argv[3] ?? 32);
const CONNECTIONS = Number(process.argv[4] ?? 5);
const RUNS = 3;

interface RunResult {
  msgsPerS: number;
  p50: number;
  p99: number;
  /** CPU time per message in the sending process and in the sink process. */
  senderCpuMs: number;
  sinkCpuMs: number;
}

function percentile(sorted: number[], p: number): number {
  const idx = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1));
  return sorted[idx] as number;
}

async function startSinkProcess(): Promise<{ child: ChildProcess; port: number }> {
  const child = fork(fileURLToPath(new URL("./sink-process.ts", import.meta.url)), {
    execArgv: ["--import", "tsx"],
  });
  const [msg] = (await once(child, "message")) as [{ port: number }];
  return { child, port: msg.port };
}

async function ask<T>(child: ChildProcess, question: string): Promise<T> {
  const answer = once(child, "message");
  child.send(question);
  return (await answer)[0] as T;
}

async function run(messages = MESSAGES): Promise<RunResult> {
  const sink = await startSinkProcess();
  const sender = new SmtpSender({ maxConnections: CONNECTIONS, maxMessages: 1000 });
  const settings = { host: "127.0.0.1", port: sink.port, tlsMode: "NONE" as const };
  const latencies: number[] = [];
  let next = 0;
  let failures = 0;
  const started = performance.now();
  const cpuStart = process.cpuUsage();
  async function worker() {
    while (next < messages) {
      const i = next++;
      const t0 = performance.now();
      const result = await sender.send(settings, compose(replyInput(i)));
      latencies.push(performance.now() - t0);
      if (!result.ok) failures++;
    }
  }
  await Promise.all(Array.from({ length: CONCURRENCY }, worker));
  const elapsed = (performance.now() - started) / 1000;
  const cpu = process.cpuUsage(cpuStart);
  await sender.close();
  const { count: received, cpuMs: sinkCpuMs } = await ask<{ count: number; cpuMs: number }>(
    sink.child,
    "count",
  );
  const exited = once(sink.child, "exit");
  sink.child.send("close");
  await exited;
  if (failures > 0 || received !== messages) {
    throw new Error(`run lost mail: ${failures} failures, ${received}/${messages} received`);
  }
  latencies.sort((a, b) => a - b);
  return {
    msgsPerS: messages / elapsed,
    p50: percentile(latencies, 50),
    p99: percentile(latencies, 99),
    senderCpuMs: (cpu.user + cpu.system) / 1000 / messages,
    sinkCpuMs: sinkCpuMs / messages,
  };
}

// One short unmeasured run first so JIT warm-up and module loading do not land in run 1.
await run(500);
const runs: RunResult[] = [];
for (let r = 0; r < RUNS; r++) {
  const result = await run();
  runs.push(result);
  console.log(
    `run ${r + 1}: ${result.msgsPerS.toFixed(0)} msgs/s, p50 ${result.p50.toFixed(2)} ms, ` +
      `p99 ${result.p99.toFixed(2)} ms; CPU per message: sender ${result.senderCpuMs.toFixed(2)} ms, ` +
      `sink ${result.sinkCpuMs.toFixed(2)} ms (sink figure includes its start-up)`,
  );
}
const median = [...runs].sort((a, b) => a.msgsPerS - b.msgsPerS)[Math.floor(RUNS / 2)] as RunResult;
const round = (n: number) => Math.round(n * 100) / 100;
console.log(
  JSON.stringify({
    bench: "send-core",
    metrics: { msgs_per_s: round(median.msgsPerS), p50_ms: round(median.p50), p99_ms: round(median.p99) },
  }),
);
