import { readFileSync } from "node:fs";
import type { AddressInfo } from "node:net";
import {
  SMTPServer,
  type SMTPServerAddress,
  type SMTPServerDataStream,
  type SMTPServerSession,
} from "smtp-server";
import type { EngineContext } from "../engine/context.js";
import {
  type IngestInput,
  ingestOrQuarantine,
  isPostmasterAddress,
  processingRoom,
  resolveRecipient,
} from "../engine/ingest/ingest.js";
import { metrics, registerGauge } from "../engine/metrics.js";
import { stripControls } from "../engine/text.js";
import { ByteBudget } from "./byte-budget.js";
import { HEADLINE_BYTES } from "./mime/headline.js";
import { oversizeOutcome } from "./mime/parse.js";

export interface SmtpListenerOptions {
  host: string;
  port: number;
  maxMessageBytes: number;
  /** PEM files for STARTTLS; without them STARTTLS is not offered. */
  tlsKeyFile?: string | null;
  tlsCertFile?: string | null;
  /** Hostname announced in the greeting. */
  name?: string;
  /** Connections at once; more get 421 and come back later (default 100). */
  maxClients?: number;
  /**
   * Bytes of mail held in memory across all connections (received, not yet committed).
   * A message that would go past it is answered 451 at the end of DATA and sent again
   * later by its server, so a burst of large mail cannot exhaust the process's memory
   * (default: 8 × maxMessageBytes, at least 64 MB).
   */
  maxBufferedBytes?: number | null;
  /**
   * A configured address that takes mail for `postmaster` — without a domain, or at any
   * domain of a configured address — as RFC 5321 §4.5.1 requires of every mail server.
   * Null: such mail gets 550 like any unknown recipient.
   */
  postmaster?: string | null;
  /** Connections at once from one IP address; more get 421 (default 20). */
  maxClientsPerIp?: number;
  /**
   * The longest one message's DATA may take, however steadily its bytes trickle in (the
   * idle timeout alone is reset by every byte): past it the connection gets 421 and is
   * closed, and the sender retries later (default 10 minutes: 40 MB at 1 Mbit/s).
   */
  dataTimeoutMs?: number;
  /**
   * The longest a connection may stay between mails (NOOP, RSET, unanswered MAIL FROMs);
   * past it the connection gets 421 at the next chance (default 30 minutes).
   */
  sessionTimeoutMs?: number;
}

export interface SmtpListener {
  port: number;
  close(): Promise<void>;
}

interface Recipient {
  tenantId: string;
  addressId: string;
  /** The tenant's processing limit as RCPT TO read it; null when it has none. */
  processingLimit: number | null;
}

/** MAIL FROM parameters of the extensions advertised (SIZE, 8BITMIME, SMTPUTF8); RCPT TO takes none. */
const MAIL_PARAMS = new Set(["SIZE", "BODY", "SMTPUTF8"]);
/** Pieces of DATA smaller than a quarter of this are copied into slabs of this size. */
const SLAB_BYTES = 16 * 1024;
const RCPT_PARAMS = new Set<string>();

/** The first parameter of a MAIL FROM or RCPT TO that is not in `allowed`, or null. */
function unsupportedParams(args: unknown, allowed: Set<string>): string | null {
  if (!args || typeof args !== "object") return null;
  for (const key of Object.keys(args)) if (!allowed.has(key.toUpperCase())) return key.toUpperCase();
  return null;
}

/**
 * `Return-Path` (the envelope sender; `<>` for a bounce, which keeps auto-replies from
 * answering it) and `Received` (client name and IP, this server, the session, the time) of
 * this delivery, as RFC 5321 §4.4 has the receiving server add them.
 */
function traceHeaders(name: string, session: SMTPServerSession, now: Date): Buffer {
  const clean = (v: string) => stripControls(v).replace(/[<>]/g, "");
  const from = session.envelope.mailFrom ? clean(session.envelope.mailFrom.address) : "";
  const helo = clean(session.hostNameAppearsAs || "unknown") || "unknown";
  const date = now.toUTCString().replace("GMT", "+0000");
  // RFC 3848: SMTP after HELO, ESMTP after EHLO, S with TLS (smtp-server keeps it).
  const via = /^E?SMTPS?A?$/.test(session.transmissionType ?? "")
    ? session.transmissionType
    : session.secure
      ? "ESMTPS"
      : "ESMTP";
  return Buffer.from(
    `Return-Path: <${from}>\r\n` +
      `Received: from ${helo} ([${clean(session.remoteAddress)}])\r\n` +
      `\tby ${clean(name)} (Switchboard) with ${via} id ${clean(session.id)};\r\n` +
      `\t${date}\r\n`,
  );
}

/** SMTP reply with an enhanced status code (RFC 3463), as smtp-server expects errors. */
function reply(code: number, message: string): Error {
  return Object.assign(new Error(message), { responseCode: code });
}

/**
 * MX-style inbound delivery (SPEC §2, as Genesys does with an MX record). Accepts mail only
 * for configured addresses (550 otherwise), advertises SIZE and refuses larger mail with 552
 * (recording it), answers 451 while a recipient's tenant is over its processing limit or has
 * its email channel switched off, and replies 250 only
 * after the message is committed — any failure before that is a 451, so the sending server
 * keeps the mail and retries: nothing is lost.
 */
export async function startSmtpListener(
  ctx: EngineContext,
  opts: SmtpListenerOptions,
): Promise<SmtpListener> {
  const tls =
    opts.tlsKeyFile && opts.tlsCertFile
      ? { key: readFileSync(opts.tlsKeyFile), cert: readFileSync(opts.tlsCertFile) }
      : null;
  const log = ctx.log.child({ component: "smtp-in" });
  const resolved = new WeakMap<SMTPServerAddress, Recipient>();
  // Per tenant with a processing limit: messages past the check at the end of DATA and not
  // yet committed (or given up). Taken before counting, so two messages that end DATA at
  // once cannot both take the last room: 20 parallel deliveries all passed the check at
  // RCPT TO and took a tenant with a limit of 5 to 20 open conversations (probe, session 16).
  const inFlight = new Map<string, number>();
  /** Bytes held by messages being received or ingested, across all connections. */
  // Never below one whole message: a mail the listener may accept must fit, or its
  // sender would be answered 451 on every attempt until it gives up.
  const budget = new ByteBudget(
    Math.max(
      opts.maxBufferedBytes ?? Math.max(8 * opts.maxMessageBytes, 64 * 1024 * 1024),
      opts.maxMessageBytes,
    ),
  );
  registerGauge(
    "switchboard_smtp_buffered_bytes",
    "Mail the inbound SMTP listener holds in memory now (SMTP_MAX_BUFFERED_MB bounds it).",
    () => budget.held,
  );
  const answered = (code: number) => metrics.smtpReplies.inc({ code: String(code) });
  const name = opts.name ?? "switchboard";
  const maxPerIp = opts.maxClientsPerIp ?? 20;
  const dataTimeoutMs = opts.dataTimeoutMs ?? 10 * 60_000;
  const sessionTimeoutMs = opts.sessionTimeoutMs ?? 30 * 60_000;
  /** Connections by client IP address, and what each counted connection holds. */
  const perIp = new Map<string, number>();
  const sessions = new Map<
    string,
    { ip: string; lifetime: NodeJS.Timeout; inData: boolean; expired: boolean }
  >();
  const SESSION_TOO_LONG = "4.4.2 Session too long, closing; reconnect to send more";
  /** Ends a connection with 421 (the sender retries later). */
  const drop = (sessionId: string, text: string) => {
    for (const c of server.connections) {
      if (c.session.id !== sessionId) continue;
      c.send(421, text);
      c.close();
    }
  };

  const server = new SMTPServer({
    name,
    // The peer's name is not used for anything here (the Received line carries its IP);
    // a lookup per connection would only delay the greeting.
    disableReverseLookup: true,
    banner: "Switchboard ESMTP",
    size: opts.maxMessageBytes,
    authOptional: true,
    disabledCommands: tls ? ["AUTH"] : ["AUTH", "STARTTLS"],
    ...(tls ? { key: tls.key, cert: tls.cert } : {}),
    logger: false,
    // A slow or silent peer must not hold a connection forever.
    socketTimeout: 60_000,
    closeTimeout: 5_000,
    maxClients: opts.maxClients ?? 100,
    onConnect(session, callback) {
      // One source cannot take every connection (SMTP_MAX_CLIENTS) for itself.
      const ip = session.remoteAddress;
      const n = (perIp.get(ip) ?? 0) + 1;
      if (n > maxPerIp) {
        return callback(reply(421, "4.7.0 Too many connections from your address, try again later"));
      }
      perIp.set(ip, n);
      const state = {
        ip,
        inData: false,
        expired: false,
        lifetime: setTimeout(() => {
          // Not in the middle of a message (its DATA has its own deadline, and once it is
          // in, its answer must not be cut off: the sender would send it again): then the
          // session ends right after that message is answered.
          if (state.inData) state.expired = true;
          else drop(session.id, SESSION_TOO_LONG);
        }, sessionTimeoutMs),
      };
      state.lifetime.unref();
      sessions.set(session.id, state);
      callback();
    },
    onClose(session) {
      const state = sessions.get(session.id);
      if (!state) return;
      sessions.delete(session.id);
      clearTimeout(state.lifetime);
      const n = (perIp.get(state.ip) ?? 1) - 1;
      if (n <= 0) perIp.delete(state.ip);
      else perIp.set(state.ip, n);
    },
    onMailFrom(address, _session, callback) {
      // RFC 5321 §4.1.1.11: a parameter of an extension not advertised is refused (DSN's
      // RET/ENVID would otherwise be accepted and the notifications they ask for never sent).
      const unknown = unsupportedParams(address.args, MAIL_PARAMS);
      if (unknown) return callback(reply(555, `5.5.4 Unsupported MAIL FROM parameter ${unknown}`));
      callback();
    },
    onRcptTo(address, _session, callback) {
      const unknown = unsupportedParams(address.args, RCPT_PARAMS);
      if (unknown) return callback(reply(555, `5.5.4 Unsupported RCPT TO parameter ${unknown}`));
      void (async () => {
        const target =
          (await resolveRecipient(ctx, address.address)) ??
          (opts.postmaster && (await isPostmasterAddress(ctx, address.address))
            ? await resolveRecipient(ctx, opts.postmaster)
            : null);
        if (!target) return callback(reply(550, "5.1.1 No such recipient here"));
        // Switched off, not gone: the sending server keeps the mail and retries (for days),
        // as IMAP leaves it on the server, so nothing sent meanwhile is lost.
        if (!target.emailEnabled) {
          return callback(reply(451, "4.3.2 Mail for this address is paused, try again later"));
        }
        if (
          target.processingLimit !== null &&
          (await processingRoom(ctx, target.tenantId, target.processingLimit)) <= 0
        ) {
          return callback(reply(451, "4.3.2 Backlog over the processing limit, try again later"));
        }
        // Kept on the address object smtp-server adds to this transaction's envelope: a
        // recipient of an earlier transaction (before RSET, a 552, a new MAIL FROM) is
        // never a target of this one.
        resolved.set(address, target);
        callback();
      })().catch((err) => {
        log.error({ err }, "recipient check failed");
        callback(reply(451, "4.3.0 Temporary failure, try again later"));
      });
    },
    onData(stream: SMTPServerDataStream, session, callback) {
      // RFC 5321 §4.4: the trace lines of this delivery go in front of the message.
      const trace = traceHeaders(name, session, ctx.clock.now());
      let chunks: Buffer[] = [trace];
      let bytes = 0;
      const state = sessions.get(session.id);
      if (state) state.inData = true;
      // However steadily the bytes trickle in, one message's DATA has a deadline.
      const deadline = setTimeout(() => {
        if (!stream.readableEnded) drop(session.id, "4.4.2 DATA took too long, closing");
      }, dataTimeoutMs);
      deadline.unref();
      // The deadline ends with the transfer; the message counts as in progress until it
      // is answered (or its client is gone).
      const answeredOrGone = () => {
        clearTimeout(deadline);
        if (!state) return;
        state.inData = false;
        if (state.expired) drop(session.id, SESSION_TOO_LONG);
      };
      stream.on("end", () => clearTimeout(deadline));
      // What this message holds of the shared budget; released once it is answered, or
      // when the client goes away mid-message (smtp-server then destroys the stream).
      let held = budget.holding();
      let overBudget = false;
      const release = () => held.release();
      // Small pieces (a client writing a byte per TCP segment) are copied into slabs: kept
      // as they came, each byte cost ~240 bytes of Buffer objects the budget never saw.
      let slab: Buffer | null = null;
      let slabUsed = 0;
      const flushSlab = () => {
        if (slab && slabUsed > 0) chunks.push(slab.subarray(0, slabUsed));
        slab = null;
        slabUsed = 0;
      };
      const keep = (c: Buffer) => {
        if (c.length >= SLAB_BYTES / 4) {
          flushSlab();
          chunks.push(c);
          return;
        }
        for (let off = 0; off < c.length; ) {
          slab ??= Buffer.allocUnsafe(SLAB_BYTES);
          const n = c.copy(slab, slabUsed, off);
          slabUsed += n;
          off += n;
          if (slabUsed === SLAB_BYTES) flushSlab();
        }
      };
      stream.on("close", () => {
        if (!stream.readableEnded) {
          answeredOrGone();
          release();
        }
      });
      stream.on("data", (c: Buffer) => {
        if (overBudget) return;
        const before = bytes;
        bytes += c.length;
        if (bytes <= opts.maxMessageBytes) {
          if (!held.tryAdd(c.length)) {
            // Too much mail in memory at once: this one is not kept, and is asked for again.
            overBudget = true;
            chunks = [];
            slab = null;
            release();
            return;
          }
          keep(c);
        } else if (before <= opts.maxMessageBytes) {
          // Past the limit only the beginning is kept, for the rejected record's headline
          // and key: our trace lines and the sender's first HEADLINE_BYTES. A sender that
          // did not declare SIZE cannot make the process hold its mail.
          flushSlab();
          chunks = [Buffer.concat([...chunks, c], trace.length + Math.min(HEADLINE_BYTES, bytes))];
          release();
          // The headline is kept whatever the budget says: 64 KB, and the record needs it.
          held = budget.holding();
          held.tryAdd(chunks[0]!.length);
        }
      });
      stream.on("end", () => {
        if (overBudget) {
          log.warn({ budget: budget.limit }, "mail in memory over the budget; asking the sender to retry");
          answered(451);
          answeredOrGone();
          return callback(reply(451, "4.3.1 Too much mail in progress, try again later"));
        }
        let holding: string[] = [];
        void (async () => {
          const receivedAt = ctx.clock.now();
          const byAddress = new Map<string, Recipient>();
          for (const a of session.envelope.rcptTo) {
            const target = resolved.get(a);
            if (target) byAddress.set(target.addressId, target);
          }
          const targets = [...byAddress.values()];
          const oversize = stream.sizeExceeded || bytes > opts.maxMessageBytes;
          // The processing limit once more, now that the mail is here (oversize mail opens
          // nothing): each tenant's room, less the other messages in flight for it.
          if (!oversize) {
            const limited = new Map<string, number>();
            for (const t of targets)
              if (t.processingLimit !== null) limited.set(t.tenantId, t.processingLimit);
            for (const tenantId of limited.keys()) inFlight.set(tenantId, (inFlight.get(tenantId) ?? 0) + 1);
            holding = [...limited.keys()];
            const rooms = await Promise.all(
              [...limited].map(async ([tenantId, limit]) => {
                const room = await processingRoom(ctx, tenantId, limit);
                return room - ((inFlight.get(tenantId) ?? 1) - 1);
              }),
            );
            if (rooms.some((room) => room <= 0)) {
              answered(451);
              return callback(reply(451, "4.3.2 Backlog over the processing limit, try again later"));
            }
          }
          flushSlab();
          const raw = Buffer.concat(chunks);
          const parsed = oversize
            ? oversizeOutcome(raw, bytes, opts.maxMessageBytes, trace.length)
            : // Mail without a Message-ID is recognised by its bytes alone, and our trace
              // lines differ on every attempt: its key is the bytes as the sender sent them,
              // so a resend after a lost 250 stays one message.
              await ctx.mime.parse(raw, { traceBytes: trace.length });
          // One copy per point of contact; within a tenant the Message-ID + hash dedupe
          // makes a mail sent to two of our addresses one message.
          for (const target of targets) {
            const input: IngestInput = {
              tenantId: target.tenantId,
              addressId: target.addressId,
              raw,
              parsed,
              receivedAt,
              source: {
                kind: "smtp",
                mailFrom: session.envelope.mailFrom ? session.envelope.mailFrom.address : "",
                rcptTo: session.envelope.rcptTo.map((r) => r.address),
              },
            };
            // Refusing a mail the database can never store would only make the sender
            // retry until it gives up: it is quarantined instead (and accepted).
            await ingestOrQuarantine(ctx, input);
          }
          // Refused, and recorded for the admins (with its headline, without its bytes)
          // first: the sender bounces it, and the customer's mail is on record here too.
          if (oversize) {
            answered(552);
            return callback(reply(552, `5.3.4 Message exceeds the ${opts.maxMessageBytes}-byte limit`));
          }
          answered(250);
          callback(null, "2.0.0 Message accepted");
        })()
          .catch((err) => {
            log.error({ err }, "ingest failed; asking the sender to retry");
            answered(451);
            callback(reply(451, "4.3.0 Temporary failure, try again later"));
          })
          .finally(() => {
            for (const tenantId of holding) {
              const n = (inFlight.get(tenantId) ?? 1) - 1;
              if (n <= 0) inFlight.delete(tenantId);
              else inFlight.set(tenantId, n);
            }
            answeredOrGone();
            release();
          });
      });
    },
  });
  server.on("error", (err) => log.warn({ err }, "smtp connection error"));

  await new Promise<void>((resolve, reject) => {
    server.server.once("error", reject);
    server.listen(opts.port, opts.host, () => resolve());
  });
  if (opts.postmaster && !(await resolveRecipient(ctx, opts.postmaster))) {
    log.warn(
      { postmaster: opts.postmaster },
      "SMTP_POSTMASTER_ADDRESS is no configured address: postmaster mail gets 550",
    );
  }
  const { port } = server.server.address() as AddressInfo;
  log.info({ host: opts.host, port }, "SMTP listener started");
  return {
    port,
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}
