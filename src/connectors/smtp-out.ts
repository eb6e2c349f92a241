import { createHash, randomUUID } from "node:crypto";
import type { MailComposerOptions, NodemailerError, SMTPPoolOptions, Transporter } from "nodemailer";
import nodemailer from "nodemailer";
import { Encoder as Base64Encoder } from "nodemailer/lib/base64";
import MailComposer from "nodemailer/lib/mail-composer";
import { Encoder as QpEncoder } from "nodemailer/lib/qp";
import type { ComposedMail } from "../engine/outbound/compose.js";
import type {
  MailSender,
  RecipientRejection,
  SendFailure,
  SendOptions,
  SendResult,
  SmtpSettings,
} from "../engine/outbound/sender.js";

/**
 * Outbound SMTP over nodemailer (SPEC §10). One pooled transport per distinct account
 * configuration keeps connections open between sends — opening a TLS session per mail
 * is what limits throughput, not the SMTP exchange. Library errors are mapped to our
 * own kinds so the send job can decide: retry (transient), give up (permanent), mark the
 * account invalid (auth), or mark the recipient invalid (tls_required).
 */

export interface SmtpSenderOptions {
  /** Connections per account configuration (nodemailer default 5). */
  maxConnections?: number;
  /** Messages per connection before it is recycled. */
  maxMessages?: number;
  connectionTimeoutMs?: number;
  greetingTimeoutMs?: number;
  socketTimeoutMs?: number;
  /** EHLO name; the OS hostname when absent. */
  clientName?: string;
}

interface PoolEntry {
  transporter: Transporter;
}

/**
 * Builds the exact RFC 5322 bytes of a composed mail (Bcc is not written, RFC 5322 §3.6.3):
 * nodemailer's MIME tree, written out synchronously (`writeMimeTree`) — the same bytes
 * as its own `build()`, without the streams.
 */
export async function buildRawMime(mail: ComposedMail): Promise<Buffer> {
  const root = new MailComposer(toComposerOptions(mail)).compile();
  return writeMimeTree(root as unknown as MimeTreeNode) ?? root.build();
}

/** What `writeMimeTree` uses of nodemailer's MimeNode (lib/mime-node). */
interface MimeTreeNode {
  content?: unknown;
  contentType?: string;
  multipart?: string | false;
  boundary?: string;
  childNodes: MimeTreeNode[];
  newline?: unknown;
  _raw?: unknown;
  _transforms: unknown[];
  _processFuncs: unknown[];
  getTransferEncoding(): string | false;
  buildHeaders(): string;
}

/** nodemailer's encoders as their stream implementation calls them (lib/qp, lib/base64). */
interface EncoderInternals {
  push(chunk: Buffer | string | null, encoding?: BufferEncoding): boolean;
  _transform(chunk: Buffer, encoding: string, done: (err?: Error | null) => void): void;
  _flush(done: (err?: Error | null) => void): void;
}

/**
 * Runs one of nodemailer's transfer encoders over the whole content at once: the calls
 * its stream machinery makes for a single chunk (both encoders are written so that their
 * output does not depend on how the input is chunked), without the stream around them.
 */
function encodeWhole(encoder: QpEncoder | Base64Encoder, input: Buffer, out: Buffer[]): void {
  const e = encoder as unknown as EncoderInternals;
  e.push = (chunk, encoding) => {
    if (chunk !== null) out.push(typeof chunk === "string" ? Buffer.from(chunk, encoding ?? "utf8") : chunk);
    return true;
  };
  const fail = (err?: Error | null) => {
    if (err) throw err;
  };
  e._transform(input, "buffer", fail);
  e._flush(fail);
}

/**
 * nodemailer's `MimeNode.build()` streams the tree: a PassThrough per content part, a
 * pipeline with an AbortController, a setImmediate per step — most of the CPU of building
 * a reply's MIME (docs/benchmarks.md "send"). Every part of a composed mail is in memory
 * (strings and Buffers; file and URL access are disabled), so this writes the same bytes
 * in the order `MimeNode.stream()` does: headers, encoded content, then the children
 * between boundaries, and a final line break as its LastNewline transform adds. Returns
 * null for a tree it does not cover (raw or stream content, transforms, DKIM, newline
 * conversion); the caller then uses `build()`. A unit test compares both byte for byte.
 */
export function writeMimeTree(root: MimeTreeNode): Buffer | null {
  const out: Buffer[] = [];
  const write = (node: MimeTreeNode): boolean => {
    const content = node.content;
    if (node._raw || (content != null && typeof content !== "string" && !Buffer.isBuffer(content)))
      return false;
    const transferEncoding = node.getTransferEncoding();
    out.push(Buffer.from(`${node.buildHeaders()}\r\n\r\n`));
    if (content) {
      const bytes = Buffer.isBuffer(content) ? content : Buffer.from(content);
      if (transferEncoding === "base64") encodeWhole(new Base64Encoder(), bytes, out);
      else if (transferEncoding === "quoted-printable") {
        // Outside text a lone CR or LF is data (as MimeNode.stream() encodes it).
        encodeWhole(new QpEncoder({ binary: !/^text\//i.test(node.contentType || "") }), bytes, out);
      } else out.push(bytes);
    }
    if (node.multipart) {
      for (const [i, child] of node.childNodes.entries()) {
        out.push(Buffer.from(`${i > 0 ? "\r\n" : ""}--${node.boundary}\r\n`));
        if (!write(child)) return false;
      }
      out.push(Buffer.from(`\r\n--${node.boundary}--\r\n`));
    }
    return true;
  };
  if (root._transforms.length > 0 || root._processFuncs.length > 0 || root.newline) return null;
  if (!write(root)) return null;
  const raw = Buffer.concat(out);
  const last = raw.at(-1);
  if (last === 0x0a) return raw;
  return Buffer.concat([raw, Buffer.from(last === 0x0d ? "\n" : "\r\n")]);
}

export function toComposerOptions(mail: ComposedMail): MailComposerOptions {
  return {
    from: { name: mail.from.name, address: mail.from.address },
    replyTo: mail.replyTo.length > 0 ? mail.replyTo : undefined,
    to: mail.to,
    cc: mail.cc.length > 0 ? mail.cc : undefined,
    bcc: mail.bcc.length > 0 ? mail.bcc : undefined,
    subject: mail.subject,
    messageId: mail.messageId,
    date: mail.date,
    inReplyTo: mail.inReplyTo ?? undefined,
    references: mail.references.length > 0 ? mail.references : undefined,
    text: mail.text,
    html: mail.html ?? undefined,
    attachments: mail.attachments.map((a) => ({
      filename: a.filename,
      contentType: a.contentType,
      content: a.content,
      cid: a.contentId,
      contentDisposition: a.inline ? "inline" : "attachment",
    })),
    headers: { ...mail.headers },
    // Content is always in memory; a path or URL here would be an injection, not a feature.
    disableFileAccess: true,
    disableUrlAccess: true,
    // One random base per message instead of 8 fresh random bytes per MIME node; the
    // boundary stays unguessable, so content still cannot contain it by design.
    baseBoundary: randomUUID().replace(/-/g, ""),
  };
}

function envelopeOf(mail: ComposedMail, envelopeFrom: string | undefined) {
  return {
    from: envelopeFrom ?? mail.from.address,
    to: [...mail.to, ...mail.cc, ...mail.bcc].map((a) => a.address),
  };
}

function transportOptions(
  settings: SmtpSettings,
  forceTls: boolean,
  opts: SmtpSenderOptions,
): SMTPPoolOptions {
  const implicitTls = settings.tlsMode === "TLS";
  // STARTTLS mode, or force-TLS on a plain account: fail instead of falling back to
  // clear text when the server does not offer STARTTLS (RFC 3207 §4 leaves it to policy).
  const requireTLS = !implicitTls && (settings.tlsMode === "STARTTLS" || forceTls);
  return {
    host: settings.host,
    port: settings.port,
    secure: implicitTls,
    requireTLS,
    ignoreTLS: settings.tlsMode === "NONE" && !forceTls,
    auth: settings.user ? { user: settings.user, pass: settings.password ?? "" } : undefined,
    tls: {
      rejectUnauthorized: settings.rejectUnauthorized ?? true,
      ...(settings.ca ? { ca: settings.ca } : {}),
      minVersion: "TLSv1.2",
    },
    name: opts.clientName,
    connectionTimeout: opts.connectionTimeoutMs ?? 30_000,
    greetingTimeout: opts.greetingTimeoutMs ?? 30_000,
    socketTimeout: opts.socketTimeoutMs ?? 60_000,
    disableFileAccess: true,
    disableUrlAccess: true,
    logger: false,
  };
}

function poolKey(settings: SmtpSettings, forceTls: boolean): string {
  // Secrets are hashed so the key can be logged or inspected without leaking them.
  const secret = createHash("sha256")
    .update(`${settings.user ?? ""}\u0000${settings.password ?? ""}\u0000${settings.ca ?? ""}`)
    .digest("hex");
  return [
    settings.host.toLowerCase(),
    settings.port,
    settings.tlsMode,
    forceTls ? "force" : "",
    settings.rejectUnauthorized === false ? "insecure" : "",
    secret,
  ].join("|");
}

/** nodemailer keeps each refused RCPT TO's error (EENVELOPE) with `recipient` set. */
function recipientRejections(list: unknown): RecipientRejection[] {
  if (!Array.isArray(list)) return [];
  return list.map(
    (e: { recipient?: unknown; responseCode?: unknown; response?: unknown; message?: unknown }) => ({
      address: String(e.recipient ?? ""),
      responseCode: typeof e.responseCode === "number" ? e.responseCode : null,
      response: String(e.response ?? e.message ?? "")
        .replace(/[\r\n]+/g, " ")
        .slice(0, 500),
    }),
  );
}

function isNodemailerError(err: unknown): err is NodemailerError {
  return err instanceof Error;
}

const NETWORK_CODES = new Set([
  "ECONNECTION",
  "ETIMEDOUT",
  "ESOCKET",
  "EDNS",
  "ECONNREFUSED",
  "ECONNRESET",
  "EPIPE",
  "EHOSTUNREACH",
  "ENETUNREACH",
  "ENOTFOUND",
  "EAI_AGAIN",
]);

// Node's X.509 verification error codes (OpenSSL X509_V_ERR_* names and ERR_TLS_CERT_*).
const CERT_ERROR_RE = /CERT|SELF_SIGNED|UNABLE_TO_(?:GET|VERIFY)|ERR_TLS_CERT_ALTNAME_INVALID/;

/**
 * Maps a nodemailer error to our kinds (RFC 5321 §4.2.1 reply classes):
 * - ETLS / a refused or missing STARTTLS / a certificate that does not verify →
 *   `tls_required` (permanent with these settings);
 * - EAUTH/ENOAUTH → `auth` (permanent unless the server said 4xx, e.g. 454);
 * - a 4yz reply → `transient`; a 5yz reply → `permanent`, except 503 (bad sequence of
 *   commands), which is about the session state and can succeed on a new connection;
 * - network errors and anything unknown → `transient` (the send job's retry limit ends it).
 */
export function classifySmtpError(err: unknown): SendFailure {
  const e: NodemailerError = isNodemailerError(err) ? err : new Error(String(err));
  const code = typeof e.code === "string" ? e.code : null;
  const responseCode = typeof e.responseCode === "number" ? e.responseCode : null;
  const response = typeof e.response === "string" ? e.response : null;
  const rejected = recipientRejections((e as { rejectedErrors?: unknown }).rejectedErrors);
  const base = {
    ok: false as const,
    code,
    responseCode,
    response,
    message: e.message,
    ...(rejected.length > 0 ? { rejectedRecipients: rejected } : {}),
  };

  if (code === "ETLS" || code === "EREQUIRETLS" || (e.command === "STARTTLS" && responseCode !== null)) {
    return { ...base, kind: "tls_required", permanent: true };
  }
  if (/STARTTLS/.test(e.message) && code === "ECONNECTION") {
    return { ...base, kind: "tls_required", permanent: true };
  }
  // An untrusted, expired or mismatched certificate: TLS is possible but not securely
  // with these settings, and retrying will not change the certificate.
  if (e.originalCode && CERT_ERROR_RE.test(e.originalCode)) {
    return { ...base, code: e.originalCode, kind: "tls_required", permanent: true };
  }
  if (code === "EAUTH" || code === "ENOAUTH") {
    return { ...base, kind: "auth", permanent: responseCode === null || responseCode >= 500 };
  }
  if (responseCode !== null && responseCode >= 500 && responseCode !== 503) {
    return { ...base, kind: "permanent", permanent: true };
  }
  if (responseCode !== null && responseCode >= 400) {
    return { ...base, kind: "transient", permanent: false };
  }
  if (code !== null && (NETWORK_CODES.has(code) || (e.originalCode && NETWORK_CODES.has(e.originalCode)))) {
    return { ...base, kind: "transient", permanent: false };
  }
  return { ...base, kind: "transient", permanent: false };
}

/** Pooled SMTP sender; one instance per process, `close()` on shutdown. */
export class SmtpSender implements MailSender {
  private readonly pools = new Map<string, PoolEntry>();
  private closed = false;

  constructor(private readonly options: SmtpSenderOptions = {}) {}

  private transporterFor(settings: SmtpSettings, forceTls: boolean): Transporter {
    const key = poolKey(settings, forceTls);
    let entry = this.pools.get(key);
    if (!entry) {
      const transporter = nodemailer.createTransport({
        ...transportOptions(settings, forceTls, this.options),
        pool: true,
        maxConnections: this.options.maxConnections ?? 5,
        maxMessages: this.options.maxMessages ?? 500,
      });
      entry = { transporter };
      this.pools.set(key, entry);
    }
    return entry.transporter;
  }

  async send(settings: SmtpSettings, mail: ComposedMail, options: SendOptions = {}): Promise<SendResult> {
    if (this.closed) throw new Error("SmtpSender is closed");
    const transporter = this.transporterFor(settings, options.forceTls === true);
    const raw = options.raw ?? (await buildRawMime(mail));
    try {
      const info = await transporter.sendMail({
        raw,
        envelope: envelopeOf(mail, options.envelopeFrom),
        // Already in the raw bytes; given here so nodemailer does not mint one of its own.
        messageId: mail.messageId,
        // The pooled transport re-applies these per message; set them here too.
        disableFileAccess: true,
        disableUrlAccess: true,
      });
      return {
        ok: true,
        messageId: mail.messageId,
        response: String(info.response ?? ""),
        accepted: (info.accepted ?? []).map(String),
        rejected: (info.rejected ?? []).map(String),
        rejectedRecipients: recipientRejections((info as { rejectedErrors?: unknown }).rejectedErrors),
      };
    } catch (err) {
      return classifySmtpError(err);
    }
  }

  /** Closes every pooled connection; idle ones at once, busy ones after their mail. */
  async close(): Promise<void> {
    this.closed = true;
    for (const { transporter } of this.pools.values()) transporter.close();
    this.pools.clear();
  }
}

export type VerifyResult = { ok: true } | SendFailure;

/**
 * The "test connection" check (SPEC §2): connect, negotiate TLS as configured, log in.
 * Uses its own short-lived connection so a bad setting never poisons a pool.
 */
export async function verifySmtp(
  settings: SmtpSettings,
  options: { forceTls?: boolean } & SmtpSenderOptions = {},
): Promise<VerifyResult> {
  const transporter = nodemailer.createTransport(
    transportOptions(settings, options.forceTls === true, {
      connectionTimeoutMs: 15_000,
      greetingTimeoutMs: 15_000,
      socketTimeoutMs: 30_000,
      ...options,
    }),
  );
  try {
    await transporter.verify();
    return { ok: true };
  } catch (err) {
    return classifySmtpError(err);
  } finally {
    transporter.close();
  }
}
