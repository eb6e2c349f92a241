import { execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { SMTPServerOptions } from "smtp-server";
import { SMTPServer } from "smtp-server";

/**
 * In-process SMTP peers for tests and benches, bound to 127.0.0.1 on ephemeral ports:
 * - `startCapturingSink`: accepts everything, keeps raw bytes + envelope, offers STARTTLS
 *   with a certificate generated for 127.0.0.1 at runtime (or implicit TLS);
 * - `startNoTlsSink`: never offers or accepts STARTTLS;
 * - `startTempFailSink`: answers 451 N times, then accepts;
 * - `startRejectingSink`: answers 550 to every recipient (or to DATA), or only to the
 *   recipients given (accepting the others and capturing the mail).
 */

export interface CapturedMessage {
  mailFrom: string | null;
  rcptTo: string[];
  raw: Buffer;
  /** Whether the session was encrypted when the mail arrived. */
  secure: boolean;
  user: string | null;
}

export interface SmtpSink {
  port: number;
  messages: CapturedMessage[];
  /** Number of DATA transactions attempted (accepted or not). */
  attempts: number;
  /** Number of client connections opened so far. */
  connections: number;
  close(): Promise<void>;
}

export interface TestCert {
  key: string;
  cert: string;
}

let cachedCert: TestCert | null = null;

/** True when the `openssl` CLI is available to mint a test certificate. */
export function hasOpenssl(): boolean {
  try {
    execFileSync("openssl", ["version"], { stdio: "ignore" });
    return true;
  } catch {
    return false;
  }
}

/**
 * A self-signed certificate for 127.0.0.1/localhost, made once per process with the
 * openssl CLI (Node has no API to sign an X.509 certificate). Tests that need TLS skip
 * themselves when openssl is missing; see `hasOpenssl`.
 */
export function testCertificate(): TestCert {
  if (cachedCert) return cachedCert;
  const dir = mkdtempSync(join(tmpdir(), "sb-cert-"));
  try {
    const key = join(dir, "key.pem");
    const cert = join(dir, "cert.pem");
    execFileSync(
      "openssl",
      [
        "req",
        "-x509",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
        "-keyout",
        key,
        "-out",
        cert,
        "-days",
        "2",
        "-subj",
        "/CN=localhost",
        "-addext",
        "subjectAltName=IP:127.0.0.1,DNS:localhost",
      ],
      { stdio: "ignore" },
    );
    cachedCert = { key: readFileSync(key, "utf8"), cert: readFileSync(cert, "utf8") };
    return cachedCert;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

interface SinkBehaviour {
  /** Reply for RCPT TO, or null to accept. */
  onRcpt?: (sink: SmtpSink, recipient: string) => { code: number; message: string } | null;
  /** Reply after DATA, or null to accept. */
  onData?: (sink: SmtpSink) => { code: number; message: string } | null;
}

function smtpError(code: number, message: string): Error & { responseCode: number } {
  return Object.assign(new Error(message), { responseCode: code });
}

async function startSink(options: SMTPServerOptions, behaviour: SinkBehaviour = {}): Promise<SmtpSink> {
  const messages: CapturedMessage[] = [];
  const sink: SmtpSink = {
    port: 0,
    messages,
    attempts: 0,
    connections: 0,
    close: async () => {
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
  const server = new SMTPServer({
    logger: false,
    disableReverseLookup: true,
    authOptional: true,
    // Lets the tests log in over a plain connection to the local sink.
    allowInsecureAuth: true,
    size: 50 * 1024 * 1024,
    // close() otherwise waits 30 s for clients' idle pooled connections to go away.
    closeTimeout: 50,
    ...options,
    onConnect(_session, callback) {
      sink.connections++;
      callback();
    },
    onAuth(auth, _session, callback) {
      callback(null, { user: auth.username ?? "user" });
    },
    onRcptTo(address, _session, callback) {
      const reply = behaviour.onRcpt?.(sink, address.address);
      callback(reply ? smtpError(reply.code, reply.message) : undefined);
    },
    onData(stream, session, callback) {
      const chunks: Buffer[] = [];
      stream.on("data", (c: Buffer) => chunks.push(c));
      stream.on("end", () => {
        sink.attempts++;
        const reply = behaviour.onData?.(sink);
        if (reply) {
          callback(smtpError(reply.code, reply.message));
          return;
        }
        messages.push({
          mailFrom: session.envelope.mailFrom ? session.envelope.mailFrom.address : null,
          rcptTo: session.envelope.rcptTo.map((r) => r.address),
          raw: Buffer.concat(chunks),
          secure: session.secure,
          user: typeof session.user === "string" ? session.user : null,
        });
        callback();
      });
    },
  });
  server.on("error", () => {
    // Client disconnects mid-session are expected in failure tests.
  });
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => resolve());
  });
  sink.port = (server.server.address() as AddressInfo).port;
  return sink;
}

export interface CapturingSinkOptions {
  /** Offer STARTTLS (default true when openssl is available). */
  starttls?: boolean;
  /** Implicit TLS from the first byte (SMTPS, RFC 8314). */
  implicitTls?: boolean;
}

export async function startCapturingSink(options: CapturingSinkOptions = {}): Promise<SmtpSink> {
  const tls = options.implicitTls === true || (options.starttls ?? hasOpenssl());
  if (!tls) return startSink({ disabledCommands: ["STARTTLS"] });
  const { key, cert } = testCertificate();
  return startSink({ key, cert, secure: options.implicitTls === true });
}

/** A server that neither advertises nor accepts STARTTLS. */
export async function startNoTlsSink(): Promise<SmtpSink> {
  return startSink({ disabledCommands: ["STARTTLS"] });
}

/** Answers `451 4.3.0` after DATA `failures` times, then accepts. */
export async function startTempFailSink(failures: number): Promise<SmtpSink> {
  let left = failures;
  return startSink(
    { disabledCommands: ["STARTTLS"] },
    {
      onData: () => {
        if (left <= 0) return null;
        left--;
        return { code: 451, message: "4.3.0 Temporary local problem, try again later" };
      },
    },
  );
}

/**
 * Answers `550 5.1.1` to every RCPT TO (or after DATA with `at: "DATA"`); with `only`,
 * to those recipients alone (case-insensitive) and accepts the rest.
 */
export async function startRejectingSink(
  at: "RCPT" | "DATA" = "RCPT",
  only?: readonly string[],
): Promise<SmtpSink> {
  const reply = { code: 550, message: "5.1.1 Mailbox does not exist" };
  const rejected = only ? new Set(only.map((a) => a.toLowerCase())) : null;
  return startSink(
    { disabledCommands: ["STARTTLS"] },
    at === "RCPT"
      ? { onRcpt: (_s, rcpt) => (!rejected || rejected.has(rcpt.toLowerCase()) ? reply : null) }
      : { onData: () => reply },
  );
}
