/**
 * smtp-ceiling: what the SMTP transport alone allows on this machine — the ingest bench's
 * senders (bench/smtp-client-process.ts: nodemailer, 4 pooled connections, the same
 * typical mails) into an smtp-server that does nothing but receive: no parse, no
 * database; it keeps the bytes as the listener does (Buffer.concat) and answers 250. The
 * messages/s here bound what `npm run bench -- ingest` can reach via SMTP however cheap
 * ingest becomes. Also reported: CPU per message of this process (the receiving server)
 * and of the sender process, and the machine's idle and stolen shares.
 *
 *   npm run bench -- smtp-ceiling [messages=5000] [runs=3]
 *
 * The last line is the JSON result.
 */
import { fork } from "node:child_process";
import { once } from "node:events";
import type { AddressInfo } from "node:net";
import { loadavg } from "node:os";
import { fileURLToPath } from "node:url";
import { SMTPServer } from "smtp-server";
import { machineShares, machineTicks, procCpuMs } from "./cpu.js";

const N = Number(process.argv[2] ?? 5000);
const RUNS = Number(process.argv[3] ?? 3);
const CONCURRENCY = 4;

const server = new SMTPServer({
  name: "ceiling",
  size: 40 * 1024 * 1024,
  authOptional: true,
  disabledCommands: ["AUTH", "STARTTLS"],
  logger: false,
  onRcptTo(_address, _session, callback) {
    callback();
  },
  onData(stream, _session, callback) {
    const chunks: Buffer[] = [];
    stream.on("data", (c: Buffer) => chunks.push(c));
    stream.on("end", () => {
      const raw = Buffer.concat(chunks);
      callback(raw.length > 0 ? null : new Error("empty"), "2.0.0 Message accepted");
    });
  },
});
await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", () => resolve()));
const port = (server.server.address() as AddressInfo).port;

const clients = fork(fileURLToPath(new URL("./smtp-client-process.ts", import.meta.url)), {
  execArgv: ["--import", "tsx"],
});
await once(clients, "message");

/** BENCH_SENDER=raw: raw SMTP senders instead of nodemailer, as in bench/ingest.ts. */
const SENDER = process.env.BENCH_SENDER === "raw" ? "raw" : "nodemailer";

async function run(run: number, count: number) {
  const m0 = machineTicks();
  const c0 = process.cpuUsage();
  const k0 = procCpuMs(clients.pid!);
  const answer = once(clients, "message");
  clients.send({ port, to: "support@bench.test", count, concurrency: CONCURRENCY, run, sender: SENDER });
  const [{ secs, latencies, windowCpuMs }] = (await answer) as [
    { secs: number; latencies: number[]; windowCpuMs: number },
  ];
  const c = process.cpuUsage(c0);
  const shares = machineShares(m0);
  const sorted = [...latencies].sort((a, b) => a - b);
  return {
    perS: count / secs,
    p50: sorted[Math.floor(sorted.length / 2)]!,
    serverCpuMs: (c.user + c.system) / 1000 / count,
    // The sender's CPU includes building the mails (before its clock starts).
    senderCpuMs: (procCpuMs(clients.pid!) - k0) / count,
    // … and while sending alone: what competes with the server for the cores.
    senderSendCpuMs: windowCpuMs / count,
    ...shares,
  };
}

await run(0, Math.min(300, N));
const results: Awaited<ReturnType<typeof run>>[] = [];
for (let r = 1; r <= RUNS; r++) {
  const x = await run(r, N);
  results.push(x);
  console.log(
    `run ${r}: ${x.perS.toFixed(1)} msg/s, p50 ${x.p50.toFixed(1)} ms; CPU/msg server ${x.serverCpuMs.toFixed(2)} ms, ` +
      `sender ${x.senderCpuMs.toFixed(2)} ms (incl. building the mails; sending alone ${x.senderSendCpuMs.toFixed(2)} ms), ${SENDER}; idle ${x.idlePct} %, stolen ${x.stealPct} %; ` +
      `load ${loadavg()
        .map((l) => l.toFixed(2))
        .join(" ")}`,
  );
}
clients.send("close");
await new Promise<void>((resolve) => server.close(() => resolve()));
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor((xs.length - 1) / 2)]!;
const round = (x: number, d = 1) => Math.round(x * 10 ** d) / 10 ** d;
console.log(
  JSON.stringify({
    bench: "smtp-ceiling",
    metrics: {
      msgs_per_s: round(median(results.map((x) => x.perS))),
      latency_p50_ms: round(median(results.map((x) => x.p50))),
      server_cpu_ms_per_msg: round(median(results.map((x) => x.serverCpuMs)), 2),
      sender_cpu_ms_per_msg: round(median(results.map((x) => x.senderCpuMs)), 2),
      sender_send_cpu_ms_per_msg: round(median(results.map((x) => x.senderSendCpuMs)), 2),
      steal_pct: round(median(results.map((x) => x.stealPct))),
    },
  }),
);
