import type { ServerResponse } from "node:http";
import type { Config } from "./config.js";
import { createImapConnector, type ImapConnector } from "./connectors/imap.js";
import { checkImap } from "./connectors/imap-check.js";
import { createMimeParser } from "./connectors/mime/parse.js";
import { checkSmtp } from "./connectors/smtp-check.js";
import { type SmtpListener, startSmtpListener } from "./connectors/smtp-in.js";
import { buildRawMime, SmtpSender } from "./connectors/smtp-out.js";
import { connect, type Database } from "./db/client.js";
import { startEmbeddedPostgres } from "./db/embedded.js";
import { runMigrations } from "./db/migrate.js";
import { attachmentDisposition, sendDownload } from "./downloads.js";
import { openSignedAttachment } from "./engine/attachment-links.js";
import { bootstrapIfEmpty } from "./engine/auth.js";
import { readByteaParts } from "./engine/bytea-parts.js";
import { type Clock, systemClock } from "./engine/clock.js";
import type { EngineContext, Logger, Signals } from "./engine/context.js";
import { type AttachmentFile, downloadAttachment } from "./engine/conversations.js";
import { createSecretBox } from "./engine/crypto.js";
import { ForbiddenError, NotFoundError } from "./engine/errors.js";
import { EventHub } from "./engine/event-hub.js";
import { mediaTypeOrOctetStream } from "./engine/media-type.js";
import { renderMetrics } from "./engine/metrics.js";
import { openRejectedRaw, type RejectedRaw } from "./engine/rejected.js";
import { createRoutingTrigger, type RoutingTrigger } from "./engine/routing/trigger.js";
import { type SearchIndexer, startSearchIndexer } from "./engine/search.js";
import { type JobRunner, startJobRunner } from "./jobs/boss.js";
import { registerImapPoll, scheduleImapPolls } from "./jobs/imap-poll.js";
import { registerRetention } from "./jobs/retention.js";
import { registerRoutingJobs } from "./jobs/routing.js";
import { registerSendJobs } from "./jobs/send-message.js";
import { registerSlaTimers } from "./jobs/sla-timers.js";
import { registerStatusTimers } from "./jobs/status-timers.js";
import { createLogger } from "./logger.js";
import { schema } from "./schema/index.js";
import { createHttpApp, type HttpApp } from "./server.js";

export interface Switchboard {
  config: Config;
  engine: EngineContext;
  database: Database;
  hub: EventHub;
  jobs: JobRunner;
  /** After-commit routing (engine.signals): coalesced passes per queue; `idle()` for tests. */
  routing: RoutingTrigger;
  http: HttpApp;
  /** Inbound SMTP listener, when enabled. */
  smtp: SmtpListener | null;
  /** IMAP fetchers; always present (its poll can be run by hand), started when IMAP_ENABLED. */
  imap: ImapConnector;
  /** The background search indexer, when SEARCH_INDEXER is on. */
  search: SearchIndexer | null;
  /** Printed once when the database was empty and a tenant and admin were created. */
  bootstrap: { tenantId: string; userId: string; apiKey: string } | null;
  stop(): Promise<void>;
}

/**
 * Composition root: database (embedded when no DATABASE_URL), migrations, engine, event
 * hub, HTTP/WebSocket. Stops in reverse order; each step is undone if a later one fails.
 */
export async function startSwitchboard(
  config: Config,
  opts: { clock?: Clock; log?: Logger; onQuery?: (query: string, params: readonly unknown[]) => void } = {},
): Promise<Switchboard> {
  const log = opts.log ?? createLogger(config.logLevel);
  const stops: (() => Promise<void>)[] = [];
  const stopAll = async () => {
    for (const stop of stops.reverse()) {
      await stop().catch((err) => log.error({ err }, "shutdown step failed"));
    }
    stops.length = 0;
  };
  try {
    let url = config.databaseUrl;
    if (!url) {
      const embedded = await startEmbeddedPostgres({ dataDir: config.dataDir, port: config.embeddedPgPort });
      stops.push(() => embedded.stop());
      url = embedded.url;
      log.info({ dataDir: config.dataDir, port: config.embeddedPgPort }, "embedded PostgreSQL started");
    }
    await runMigrations(url);
    const database = connect(url, { onQuery: opts.onQuery, lockTimeoutMs: config.dbLockTimeoutMs });
    stops.push(() => database.close());
    // Its own connection: indexing never holds one the API or ingest is waiting for.
    const searchDb = config.search.enabled ? connect(url, { max: 1 }) : null;
    if (searchDb) stops.push(() => searchDb.close());
    const search = searchDb ? startSearchIndexer(searchDb, log, config.search) : null;
    if (search) stops.push(() => search.stop());

    // Closed after the job runner stopped (stops run in reverse), so no send is cut off.
    const sender = new SmtpSender({ maxConnections: config.send.maxConnections });
    stops.push(() => sender.close());
    const jobs = await startJobRunner(url, log);
    stops.push(() => jobs.stop());

    const mime = createMimeParser({
      maxBytes: config.maxMessageBytes,
      ...(config.parseWorkers ? { poolSize: config.parseWorkers } : {}),
    });
    stops.push(() => mime.close());

    const hub = new EventHub(database.sql, log);
    const routing = createRoutingTrigger(() => engine);
    stops.push(() => routing.stop());
    const signals: Signals = routing;
    const engine: EngineContext = {
      db: database.db,
      clock: opts.clock ?? systemClock,
      secrets: createSecretBox(config.secretKey),
      log,
      signals,
      hub,
      jobs,
      mime,
      // The engine declares the interface; the real IMAP/SMTP connectors are plugged in here.
      accountChecker: { checkImap, checkSmtp },
      mail: {
        sender,
        buildMime: buildRawMime,
        retry: {
          limit: config.send.retryLimit,
          delaySeconds: config.send.retryDelaySeconds,
          backoff: config.send.retryBackoff,
        },
      },
    };
    await registerSendJobs(jobs, engine, config.send);
    await registerStatusTimers(jobs, engine);
    await registerSlaTimers(jobs, engine);
    await registerRetention(jobs, engine);
    const bootstrap = config.bootstrap ? await bootstrapIfEmpty(database.db) : null;
    await hub.start();
    stops.push(() => hub.stop());
    await registerRoutingJobs(jobs, engine);

    const http = createHttpApp({
      config,
      schema,
      engine,
      ...(config.metricsToken ? { metrics: { token: config.metricsToken, render: renderMetrics } } : {}),
      ready: async () => {
        await database.sql`SELECT 1`;
        return true;
      },
    });
    // The file routes answer 401 without a key, and one 404 for everything the caller may
    // not read (unknown, foreign, not theirs to see, malformed): no more is learnt from it.
    const unauthorized = (res: ServerResponse) => {
      res.writeHead(401, { "content-type": "application/json" });
      res.end(JSON.stringify({ error: "authentication required" }));
    };
    const notFound = (res: ServerResponse) => {
      res.writeHead(404, { "content-type": "application/json" });
      res.end(JSON.stringify({ error: "not found" }));
    };
    const NO_ID = "00000000-0000-0000-0000-000000000000";
    http.route("/attachments/", async (req, res, viewer) => {
      const [path, search] = (req.url ?? "").split("?", 2) as [string, string | undefined];
      const id = /^\/attachments\/([0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})$/i.exec(
        path,
      )?.[1];
      const query = new URLSearchParams(search ?? "");
      // With a key: the caller's own access. Without one: a signed link (attachment-links.ts).
      if (!viewer && !query.has("signature")) return unauthorized(res);
      let file: AttachmentFile;
      let cache = "private, no-store";
      if (viewer) {
        try {
          file = await downloadAttachment(engine, viewer, id ?? NO_ID);
        } catch (err) {
          if (!(err instanceof NotFoundError || err instanceof ForbiddenError)) throw err;
          return notFound(res);
        }
      } else {
        const link = await openSignedAttachment(engine, id ?? NO_ID, query);
        if (!link.ok) {
          if (link.reason === "invalid") return notFound(res);
          res.writeHead(410, { "content-type": "application/json" });
          res.end(JSON.stringify({ error: "link expired" }));
          return;
        }
        file = link.file;
        // The bytes behind an attachment ID never change: cacheable until the link expires.
        const left = Math.max(0, link.expires - Math.floor(engine.clock.now().getTime() / 1000));
        cache = `private, max-age=${left}`;
      }
      await sendDownload(req, res, {
        sizeBytes: file.sizeBytes,
        etag: file.sha256,
        headers: {
          // Rows stored before ingest checked the type may hold one a header cannot carry.
          "content-type": mediaTypeOrOctetStream(file.contentType),
          // Never rendered as a page by a browser: an attachment may be HTML or SVG with
          // scripts. (<img> still shows an image: the disposition only governs navigation.)
          "content-disposition": attachmentDisposition(file.filename),
          "content-security-policy": "default-src 'none'; sandbox",
          "x-content-type-options": "nosniff",
          "referrer-policy": "no-referrer",
          // Embeddable by an agent desktop on another origin, including cross-origin-isolated ones.
          "cross-origin-resource-policy": "cross-origin",
          "cache-control": cache,
        },
        read: (from, length) => readByteaParts(engine, file.value, from, length),
      });
    });
    http.route("/rejected-messages/", async (req, res, viewer) => {
      if (!viewer) return unauthorized(res);
      const id =
        /^\/rejected-messages\/([0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})\/raw$/i.exec(
          (req.url ?? "").split("?")[0]!,
        )?.[1];
      let raw: RejectedRaw;
      try {
        raw = await openRejectedRaw(engine, viewer, id ?? NO_ID);
      } catch (err) {
        // A non-admin learns no more than an unknown or foreign ID would tell.
        if (!(err instanceof NotFoundError || err instanceof ForbiddenError)) throw err;
        return notFound(res);
      }
      // As attachments are sent (downloads.ts): in parts, ETag, one byte range, HEAD.
      await sendDownload(req, res, {
        sizeBytes: raw.sizeBytes,
        etag: raw.sha256,
        headers: {
          "content-type": "message/rfc822",
          // Kept for audit, never rendered: the mail was rejected and may be hostile.
          "content-disposition": `attachment; filename="${raw.filename}"`,
          "x-content-type-options": "nosniff",
          "cache-control": "private, no-store",
        },
        read: (from, length) => readByteaParts(engine, raw.value, from, length),
      });
    });
    await http.start();
    stops.push(() => http.stop());

    const smtp = config.smtpListen.enabled
      ? await startSmtpListener(engine, { ...config.smtpListen, maxMessageBytes: config.maxMessageBytes })
      : null;
    if (smtp) stops.push(() => smtp.close());

    const imapSettings = {
      ...config.imap,
      databaseUrl: url,
      pauseRecheckSeconds: Math.min(15, config.imap.pollSeconds),
      maxMessageBytes: config.maxMessageBytes,
    };
    const imap = createImapConnector(engine, imapSettings, (ids) =>
      scheduleImapPolls(jobs, ids, config.imap.pollSeconds),
    );
    // Stopped before the job runner and the database (stops run in reverse): logout, unlock.
    stops.push(() => imap.stop());
    if (config.imap.enabled) {
      await registerImapPoll(jobs, imap);
      imap.start();
    }
    log.info({ url: http.url }, "Switchboard is listening");

    return {
      config,
      engine,
      database,
      hub,
      jobs,
      routing,
      http,
      smtp,
      imap,
      search,
      bootstrap,
      stop: stopAll,
    };
  } catch (err) {
    await stopAll();
    throw err;
  }
}
