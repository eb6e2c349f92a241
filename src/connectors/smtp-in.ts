import { readFileSync } from "node:fs";
import type { AddressInfo } from "node:net";
import { SMTPServer, type SMTPServerAddress, type SMTPServerDataStream } from "smtp-server";
import type { EngineContext } from "../engine/context.js";
import {
  type IngestInput,
  ingestOrQuarantine,
  overProcessingLimit,
  resolveRecipient,
} from "../engine/ingest/ingest.js";
import { metrics, registerGauge } from "../engine/metrics.js";
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
}

export interface SmtpListener {
  port: number;
  close(): Promise<void>;
}

interface Recipient {
  tenantId: string;
  addressId: string;
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
  /** Bytes held by messages being received or ingested, across all connections. */
  const budget = new ByteBudget(
    opts.maxBufferedBytes ?? Math.max(8 * opts.maxMessageBytes, 64 * 1024 * 1024),
  );
  registerGauge(
    "switchboard_smtp_buffered_bytes",
    "Mail the inbound SMTP listener holds in memory now (SMTP_MAX_BUFFERED_MB bounds it).",
    () => budget.held,
  );
  const answered = (code: number) => metrics.smtpReplies.inc({ code: String(code) });

  const server = new SMTPServer({
    name: opts.name ?? "switchboard",
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
    onRcptTo(address, _session, callback) {
      void (async () => {
        const target = await resolveRecipient(ctx, address.address);
        if (!target) return callback(reply(550, "5.1.1 No such recipient here"));
        // Switched off, not gone: the sending server keeps the mail and retries (for days),
        // as IMAP leaves it on the server, so nothing sent meanwhile is lost.
        if (!target.emailEnabled) {
          return callback(reply(451, "4.3.2 Mail for this address is paused, try again later"));
        }
        if (
          target.processingLimit !== null &&
          (await overProcessingLimit(ctx, target.tenantId, target.processingLimit))
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
      let chunks: Buffer[] = [];
      let bytes = 0;
      // What this message holds of the shared budget; released once it is answered, or
      // when the client goes away mid-message (smtp-server then destroys the stream).
      let held: (() => void)[] = [];
      let overBudget = false;
      const release = () => {
        for (const giveBack of held) giveBack();
        held = [];
      };
      stream.on("close", () => {
        if (!stream.readableEnded) release();
      });
      stream.on("data", (c: Buffer) => {
        if (overBudget) return;
        const before = bytes;
        bytes += c.length;
        if (bytes <= opts.maxMessageBytes) {
          const taken = budget.tryAcquire(c.length);
          if (!taken) {
            // Too much mail in memory at once: this one is not kept, and is asked for again.
            overBudget = true;
            chunks = [];
            release();
            return;
          }
          chunks.push(c);
          held.push(taken);
        } else if (before <= opts.maxMessageBytes) {
          // Past the limit only the beginning is kept, for the rejected record's headline:
          // a sender that did not declare SIZE cannot make the process hold its mail.
          chunks = [Buffer.concat([...chunks, c], Math.min(HEADLINE_BYTES, bytes))];
          release();
          // The headline is kept whatever the budget says: 64 KB, and the record needs it.
          const taken = budget.tryAcquire(chunks[0]!.length);
          if (taken) held.push(taken);
        }
      });
      stream.on("end", () => {
        if (overBudget) {
          log.warn({ budget: budget.limit }, "mail in memory over the budget; asking the sender to retry");
          answered(451);
          return callback(reply(451, "4.3.1 Too much mail in progress, try again later"));
        }
        void (async () => {
          const receivedAt = ctx.clock.now();
          const byAddress = new Map<string, Recipient>();
          for (const a of session.envelope.rcptTo) {
            const target = resolved.get(a);
            if (target) byAddress.set(target.addressId, target);
          }
          const targets = [...byAddress.values()];
          const oversize = stream.sizeExceeded || bytes > opts.maxMessageBytes;
          const raw = Buffer.concat(chunks);
          const parsed = oversize
            ? oversizeOutcome(raw, bytes, opts.maxMessageBytes)
            : await ctx.mime.parse(raw);
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
          .finally(release);
      });
    },
  });
  server.on("error", (err) => log.warn({ err }, "smtp connection error"));

  await new Promise<void>((resolve, reject) => {
    server.server.once("error", reject);
    server.listen(opts.port, opts.host, () => resolve());
  });
  const { port } = server.server.address() as AddressInfo;
  log.info({ host: opts.host, port }, "SMTP listener started");
  return {
    port,
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}
