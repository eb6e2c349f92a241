import { randomBytes } from "node:crypto";
import { existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { resolve } from "node:path";

/**
 * Environment → typed configuration, validated once at start. Every problem is collected
 * and reported together so an operator fixes a bad deployment in one round.
 */
export interface Config {
  env: "development" | "production" | "test";
  host: string;
  port: number;
  /** null: start the embedded PostgreSQL in `dataDir`. */
  databaseUrl: string | null;
  /**
   * How long a statement of this server waits for a row or advisory lock before it fails
   * (PostgreSQL's lock_timeout on the main pool): a lock held by a stuck session then costs
   * one message a 451 (retried), not every connection of the pool.
   */
  dbLockTimeoutMs: number;
  dataDir: string;
  embeddedPgPort: number;
  /** 32-byte key for AES-256-GCM encryption of stored credentials. */
  secretKey: Buffer;
  logLevel: "fatal" | "error" | "warn" | "info" | "debug" | "trace" | "silent";
  smtpListen: {
    enabled: boolean;
    host: string;
    port: number;
    tlsKeyFile: string | null;
    tlsCertFile: string | null;
    /** Connections at once (smtp-in.ts). */
    maxClients: number;
    /** Mail held in memory across connections; null = 8 × maxMessageBytes, ≥ 64 MB. */
    maxBufferedBytes: number | null;
    /** Connections at once from one IP address. */
    maxClientsPerIp: number;
    /** The longest one message's DATA may take; the longest a session may last between mails. */
    dataTimeoutMs: number;
    sessionTimeoutMs: number;
    /** The configured address that takes mail for `postmaster` (RFC 5321 §4.5.1); null: 550. */
    postmaster: string | null;
  };
  maxMessageBytes: number;
  /** Bearer token for `GET /metrics`; null: no metrics route. */
  metricsToken: string | null;
  /** MIME parser worker threads; null = the parser's default (one per core, at most 2). */
  parseWorkers: number | null;
  /** IMAP fetchers (connectors/imap): one worker per account, lock per mailbox. */
  imap: {
    enabled: boolean;
    /** Reconciliation poll and account reload interval. */
    pollSeconds: number;
    /** IDLE is restarted this often (≤ 25 min: RFC 2177 servers may end it after 30). */
    idleRestartSeconds: number;
    lockRetrySeconds: number;
    batchSize: number;
    idle: boolean;
    /** What all mailboxes hold in memory at once (fetched, not yet ingested). */
    bufferedBytes: number;
  };
  graphql: {
    introspection: boolean;
    maxDepth: number;
    maxAliases: number;
    maxTokens: number;
    maxCost: number;
    /**
     * Bytes of message bodies (`text`, `html`, `inlineHtml`) one response (one event of a
     * subscription) may carry; more is RESPONSE_TOO_LARGE. The cost limit counts a body as
     * one field whatever its size.
     */
    maxResponseBodyBytes: number;
  };
  /** Create a tenant and admin on an empty database and print the key once. */
  bootstrap: boolean;
  /** The outbound send job (pg-boss queue `send-message`). */
  send: {
    retryLimit: number;
    retryDelaySeconds: number;
    retryBackoff: boolean;
    /** Parallel pg-boss workers, each fetching up to `batchSize` jobs per poll. */
    workers: number;
    batchSize: number;
    pollingIntervalMs: number;
    /** Pooled SMTP connections per account configuration. */
    maxConnections: number;
  };
  /** The background search indexer (engine/search.ts, docs/search.md). */
  search: {
    enabled: boolean;
    batchSize: number;
    idleMs: number;
    burstPerSecond: number;
    maxLagMs: number;
  };
}

export class ConfigError extends Error {
  constructor(readonly problems: string[]) {
    super(`Invalid configuration:\n  - ${problems.join("\n  - ")}`);
    this.name = "ConfigError";
  }
}

type Env = Record<string, string | undefined>;

const LOG_LEVELS = ["fatal", "error", "warn", "info", "debug", "trace", "silent"] as const;

export function loadConfig(env: Env = process.env, cwd = process.cwd()): Config {
  const problems: string[] = [];

  const int = (name: string, fallback: number, min: number, max: number): number => {
    const raw = env[name];
    if (raw === undefined || raw === "") return fallback;
    const n = Number(raw);
    if (!Number.isInteger(n) || n < min || n > max) {
      problems.push(`${name} must be an integer from ${min} to ${max} (got ${JSON.stringify(raw)})`);
      return fallback;
    }
    return n;
  };
  const bool = (name: string, fallback: boolean): boolean => {
    const raw = env[name]?.toLowerCase();
    if (raw === undefined || raw === "") return fallback;
    if (["1", "true", "yes", "on"].includes(raw)) return true;
    if (["0", "false", "no", "off"].includes(raw)) return false;
    problems.push(`${name} must be true or false (got ${JSON.stringify(env[name])})`);
    return fallback;
  };

  const nodeEnv = env.NODE_ENV ?? "development";
  if (!["development", "production", "test"].includes(nodeEnv)) {
    problems.push(`NODE_ENV must be development, production or test (got ${JSON.stringify(nodeEnv)})`);
  }
  const production = nodeEnv === "production";
  if (env.METRICS_TOKEN && env.METRICS_TOKEN.length < 16) {
    problems.push("METRICS_TOKEN must be at least 16 characters (it guards GET /metrics)");
  }
  if (!!env.SMTP_TLS_KEY_FILE !== !!env.SMTP_TLS_CERT_FILE) {
    problems.push("SMTP_TLS_KEY_FILE and SMTP_TLS_CERT_FILE must be set together (STARTTLS)");
  }

  const databaseUrl = env.DATABASE_URL?.trim() || null;
  if (databaseUrl && !/^postgres(ql)?:\/\//.test(databaseUrl)) {
    problems.push("DATABASE_URL must be a postgres:// or postgresql:// URL");
  }

  const dataDir = resolve(cwd, env.DATA_DIR || ".switchboard");

  const logLevel = (env.LOG_LEVEL ?? "info") as Config["logLevel"];
  if (!LOG_LEVELS.includes(logLevel)) problems.push(`LOG_LEVEL must be one of ${LOG_LEVELS.join(", ")}`);

  let secretKey: Buffer = Buffer.alloc(32);
  const rawKey = env.SECRET_KEY;
  if (rawKey) {
    const decoded = /^[0-9a-f]{64}$/i.test(rawKey)
      ? Buffer.from(rawKey, "hex")
      : Buffer.from(rawKey, "base64");
    if (decoded.length !== 32) problems.push("SECRET_KEY must be 32 bytes, as 64 hex characters or base64");
    else secretKey = decoded;
  } else if (databaseUrl && production) {
    problems.push(
      "SECRET_KEY is required in production with DATABASE_URL (it encrypts stored mail passwords)",
    );
  } else if (problems.length === 0) {
    secretKey = loadOrCreateKeyFile(dataDir);
  }

  const config: Config = {
    env: nodeEnv as Config["env"],
    host: env.HOST || "127.0.0.1",
    port: int("PORT", 4000, 0, 65535),
    databaseUrl,
    dbLockTimeoutMs: int("DB_LOCK_TIMEOUT_MS", 30_000, 0, 3_600_000),
    dataDir,
    embeddedPgPort: int("EMBEDDED_PG_PORT", 5433, 0, 65535),
    secretKey,
    logLevel,
    smtpListen: {
      enabled: bool("SMTP_ENABLED", true),
      host: env.SMTP_HOST || env.HOST || "127.0.0.1",
      port: int("SMTP_PORT", 2525, 0, 65535),
      tlsKeyFile: env.SMTP_TLS_KEY_FILE || null,
      tlsCertFile: env.SMTP_TLS_CERT_FILE || null,
      maxClients: int("SMTP_MAX_CLIENTS", 100, 1, 10_000),
      maxBufferedBytes: env.SMTP_MAX_BUFFERED_MB
        ? int("SMTP_MAX_BUFFERED_MB", 320, 1, 1024 * 1024) * 1024 * 1024
        : null,
      maxClientsPerIp: int("SMTP_MAX_CLIENTS_PER_IP", 20, 1, 10_000),
      dataTimeoutMs: int("SMTP_DATA_TIMEOUT_SECONDS", 600, 10, 86_400) * 1000,
      sessionTimeoutMs: int("SMTP_SESSION_TIMEOUT_SECONDS", 1800, 10, 86_400) * 1000,
      postmaster: env.SMTP_POSTMASTER_ADDRESS?.trim() || null,
    },
    maxMessageBytes: int("MAX_MESSAGE_BYTES", 40 * 1024 * 1024, 1024, 1024 * 1024 * 1024),
    metricsToken: env.METRICS_TOKEN || null,
    parseWorkers: env.PARSE_WORKERS ? int("PARSE_WORKERS", 2, 1, 16) : null,
    imap: {
      enabled: bool("IMAP_ENABLED", true),
      pollSeconds: int("IMAP_POLL_SECONDS", 60, 1, 86400),
      idleRestartSeconds: int("IMAP_IDLE_RESTART_SECONDS", 25 * 60, 5, 25 * 60),
      lockRetrySeconds: int("IMAP_LOCK_RETRY_SECONDS", 5, 1, 3600),
      batchSize: int("IMAP_BATCH_SIZE", 50, 1, 1000),
      idle: bool("IMAP_IDLE", true),
      bufferedBytes: int("IMAP_MAX_BUFFERED_MB", 512, 1, 1024 * 1024) * 1024 * 1024,
    },
    graphql: {
      introspection: bool("GRAPHQL_INTROSPECTION", !production),
      maxDepth: int("GRAPHQL_MAX_DEPTH", 12, 2, 100),
      maxAliases: int("GRAPHQL_MAX_ALIASES", 30, 1, 1000),
      maxTokens: int("GRAPHQL_MAX_TOKENS", 5000, 100, 100000),
      maxCost: int("GRAPHQL_MAX_COST", 100000, 100, 10000000),
      // Room for every body of the largest mail accepted (text, HTML, inline HTML), at least 64 MB.
      maxResponseBodyBytes:
        int("GRAPHQL_MAX_RESPONSE_BODY_MB", 0, 0, 100_000) * 1024 * 1024 ||
        Math.max(64 * 1024 * 1024, 3 * int("MAX_MESSAGE_BYTES", 40 * 1024 * 1024, 1024, 1024 * 1024 * 1024)),
    },
    bootstrap: bool("BOOTSTRAP", true),
    send: {
      retryLimit: int("SEND_RETRY_LIMIT", 5, 0, 100),
      retryDelaySeconds: int("SEND_RETRY_DELAY_SECONDS", 60, 1, 86_400),
      retryBackoff: bool("SEND_RETRY_BACKOFF", true),
      workers: int("SEND_WORKERS", 2, 1, 64),
      batchSize: int("SEND_BATCH_SIZE", 50, 1, 1000),
      pollingIntervalMs: int("SEND_POLL_MS", 1000, 500, 60_000),
      maxConnections: int("SEND_SMTP_CONNECTIONS", 5, 1, 100),
    },
    search: {
      enabled: bool("SEARCH_INDEXER", true),
      batchSize: int("SEARCH_BATCH_SIZE", 200, 1, 10_000),
      idleMs: int("SEARCH_IDLE_MS", 1000, 10, 60_000),
      burstPerSecond: int("SEARCH_BURST_PER_S", 20, 1, 100_000),
      maxLagMs: int("SEARCH_MAX_LAG_MS", 60_000, 0, 86_400_000),
    },
  };
  const buffered = config.smtpListen.maxBufferedBytes;
  if (buffered !== null && buffered < config.maxMessageBytes) {
    // A message the listener may accept would never fit: its sender would get 451 forever.
    problems.push("SMTP_MAX_BUFFERED_MB must hold at least one message of MAX_MESSAGE_BYTES");
  }
  if (problems.length > 0) throw new ConfigError(problems);
  return config;
}

/** The embedded default keeps its own key beside its data, created once with mode 0600. */
function loadOrCreateKeyFile(dataDir: string): Buffer {
  const path = resolve(dataDir, "secret.key");
  if (existsSync(path)) return Buffer.from(readFileSync(path, "utf8").trim(), "hex");
  mkdirSync(dataDir, { recursive: true });
  const key = randomBytes(32);
  writeFileSync(path, key.toString("hex"), { mode: 0o600 });
  return key;
}
