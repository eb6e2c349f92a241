/**
 * The SMTP senders of `bench/ingest` in their own process, as real sending servers would
 * be: the server under test then does not share its event loop with the clients' MIME
 * streaming. Protocol over the IPC channel: receives `{ port, to, count, concurrency, run }`,
 * generates the mails (untimed), sends them over `concurrency` pooled connections and
 * answers `{ secs, latencies, windowCpuMs }` (its own CPU while sending, without building
 * the mails; latencies in ms from sendMail to the 250 reply, which the listener gives
 * only after commit); `{ port, to, largeBytes }` sends one mail of that size (built
 * untimed) and answers `{ response }` — the event-loop lag figure is the server's alone;
 * "close" exits.
 */
import { once } from "node:events";
import { connect, type Socket } from "node:net";
import nodemailer from "nodemailer";
import { buildLargeMail } from "../test/helpers/raw-mail.js";
import { typicalMail } from "./ingest-mail.js";

interface Job {
  port: number;
  to: string;
  count: number;
  concurrency: number;
  run: number;
  /** "nodemailer" (default) or "raw": see `sendRaw`. */
  sender?: string;
}

interface LargeJob {
  port: number;
  to: string;
  largeBytes: number;
}

process.on("message", async (msg: Job | LargeJob | "close") => {
  if (msg === "close") process.exit(0);
  if ("largeBytes" in msg) {
    const big = buildLargeMail(msg.largeBytes);
    const transport = nodemailer.createTransport({
      host: "127.0.0.1",
      port: msg.port,
      secure: false,
      ignoreTLS: true,
    });
    process.send?.("built");
    const info = await transport.sendMail({
      envelope: { from: "c@customer.example", to: [msg.to] },
      raw: big,
    });
    transport.close();
    process.send?.({ response: info.response });
    return;
  }
  const { port, to, count, concurrency, run } = msg;
  const mails = Array.from({ length: count }, (_, i) => typicalMail(to, i, run));
  if (msg.sender === "raw") {
    process.send?.(await sendRaw(port, to, mails, concurrency));
    return;
  }
  const transport = nodemailer.createTransport({
    host: "127.0.0.1",
    port,
    secure: false,
    ignoreTLS: true,
    pool: true,
    maxConnections: concurrency,
    maxMessages: Number.POSITIVE_INFINITY,
  });
  const result = await closedLoop(
    count,
    concurrency,
    async () => transport,
    async (_, i) => {
      await transport.sendMail({ envelope: { from: "c@customer.example", to: [to] }, raw: mails[i]! });
    },
  );
  transport.close();
  process.send?.(result);
});

/**
 * `count` mails sent by `concurrency` senders in a closed loop, each on the connection its
 * sender opened: the wall time, each mail's latency, and this process's CPU meanwhile.
 */
async function closedLoop<C>(
  count: number,
  concurrency: number,
  open: () => Promise<C>,
  sendOne: (conn: C, i: number) => Promise<void>,
  close: (conn: C) => void = () => {},
): Promise<{ secs: number; latencies: number[]; windowCpuMs: number }> {
  const latencies: number[] = [];
  let next = 0;
  const t0 = performance.now();
  const c0 = process.cpuUsage();
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      const conn = await open();
      for (let i = next++; i < count; i = next++) {
        const s = performance.now();
        await sendOne(conn, i);
        latencies.push(performance.now() - s);
      }
      close(conn);
    }),
  );
  return { secs: (performance.now() - t0) / 1000, latencies, windowCpuMs: cpuMsSince(c0) };
}
/**
 * BENCH_SENDER=raw: the senders as a sending MTA (Postfix) works, without nodemailer's
 * cost on this machine's two cores: each mail dot-stuffed once, untimed; over
 * `concurrency` connections, MAIL, RCPT and DATA pipelined (RFC 2920, which the listener
 * advertises), then the body in one write. What the server does per mail is the same;
 * only the senders' CPU differs (nodemailer streams every mail through its MIME
 * transforms). Latency: from the MAIL command to the final 250.
 */
async function sendRaw(
  port: number,
  to: string,
  mails: Buffer[],
  concurrency: number,
): Promise<{ secs: number; latencies: number[]; windowCpuMs: number }> {
  const bodies = mails.map((m) => {
    let text = m.toString("latin1").replace(/\r?\n/g, "\r\n").replace(/^\./gm, "..");
    if (!text.endsWith("\r\n")) text += "\r\n";
    return Buffer.from(`${text}.\r\n`, "latin1");
  });
  const envelope = Buffer.from(`MAIL FROM:<c@customer.example>\r\nRCPT TO:<${to}>\r\nDATA\r\n`);
  return closedLoop(
    bodies.length,
    concurrency,
    async () => {
      const conn = replies(connect(port, "127.0.0.1"));
      expect(await conn.next(), "220");
      conn.socket.write("EHLO sender.example\r\n");
      expect(await conn.next(), "250");
      return conn;
    },
    async (conn, i) => {
      conn.socket.write(envelope);
      expect(await conn.next(), "250");
      expect(await conn.next(), "250");
      expect(await conn.next(), "354");
      conn.socket.write(bodies[i]!);
      expect(await conn.next(), "250");
    },
    (conn) => conn.socket.end("QUIT\r\n"),
  );
}

/** The final reply lines of an SMTP connection, in order. */
function replies(socket: Socket): { socket: Socket; next(): Promise<string> } {
  const lines: string[] = [];
  let buffered = "";
  socket.setEncoding("latin1");
  socket.on("data", (d: string) => {
    buffered += d;
    for (let nl = buffered.indexOf("\r\n"); nl >= 0; nl = buffered.indexOf("\r\n")) {
      const line = buffered.slice(0, nl);
      buffered = buffered.slice(nl + 2);
      if (/^\d{3} /.test(line)) lines.push(line);
    }
  });
  return {
    socket,
    async next() {
      while (lines.length === 0) await once(socket, "data");
      return lines.shift()!;
    },
  };
}

/** This process's CPU (user + system, all threads) since `c0`, in ms. */
function cpuMsSince(c0: NodeJS.CpuUsage): number {
  const c = process.cpuUsage(c0);
  return (c.user + c.system) / 1000;
}

function expect(line: string, code: string): void {
  if (!line.startsWith(code)) throw new Error(`SMTP: expected ${code}, got "${line}"`);
}

process.send?.("ready");
