/**
 * imapflow / socket / TLS errors mapped to the three kinds the pollers act on:
 *
 * - `transient`: retry with backoff, the account stays VALID (network down, timeouts,
 *   server busy or throttling, connection dropped mid-command);
 * - `auth`: the credentials or the login policy are wrong — mark the account INVALID and
 *   stop polling until an admin changes it (retrying only gets the account locked);
 * - `permanent`: retrying the same thing cannot succeed (wrong host name, TLS certificate
 *   or protocol mismatch, missing mailbox, a server limit, a bug in our command).
 *
 * Unknown errors count as transient: a persistent one still surfaces through the
 * poller's retry limit, while a wrong "permanent" would silently stop ingest.
 */

export const IMAP_ERROR_KINDS = ["transient", "auth", "permanent"] as const;
export type ImapErrorKind = (typeof IMAP_ERROR_KINDS)[number];

// Node's socket/DNS codes and imapflow's own `err.code` values (ImapFlowErrorCode).
const CODE_KINDS: Record<string, ImapErrorKind> = {
  // sockets (errno)
  ECONNREFUSED: "transient",
  ECONNRESET: "transient",
  ECONNABORTED: "transient",
  ETIMEDOUT: "transient",
  EHOSTUNREACH: "transient",
  EHOSTDOWN: "transient",
  ENETUNREACH: "transient",
  ENETDOWN: "transient",
  ENETRESET: "transient",
  EPIPE: "transient",
  ENOTCONN: "transient",
  EADDRNOTAVAIL: "transient",
  // DNS: EAI_AGAIN is a resolver hiccup; ENOTFOUND is a host name that does not exist.
  EAI_AGAIN: "transient",
  ENOTFOUND: "permanent",
  // TLS: a bad certificate or talking TLS to a plain port does not fix itself.
  CERT_HAS_EXPIRED: "permanent",
  CERT_NOT_YET_VALID: "permanent",
  DEPTH_ZERO_SELF_SIGNED_CERT: "permanent",
  SELF_SIGNED_CERT_IN_CHAIN: "permanent",
  UNABLE_TO_VERIFY_LEAF_SIGNATURE: "permanent",
  UNABLE_TO_GET_ISSUER_CERT_LOCALLY: "permanent",
  ERR_TLS_CERT_ALTNAME_INVALID: "permanent",
  ERR_SSL_WRONG_VERSION_NUMBER: "permanent",
  ERR_SSL_UNSUPPORTED_PROTOCOL: "permanent",
  // imapflow: connection state
  NoConnection: "transient",
  EConnectionClosed: "transient",
  StateLogout: "transient",
  ClosedAfterConnectText: "transient",
  ClosedAfterConnectTLS: "transient",
  // imapflow: timeouts and throttling
  CONNECT_TIMEOUT: "transient",
  GREETING_TIMEOUT: "transient",
  UPGRADE_TIMEOUT: "transient",
  ETIMEOUT: "transient",
  LockTimeout: "transient",
  ETHROTTLE: "transient",
  PollFailed: "transient",
  DownloadIncomplete: "transient",
  // imapflow: a confused stream — reconnecting resets it
  UnexpectedTag: "transient",
  InvalidResponse: "transient",
  ResponseProcessingFailed: "transient",
  COMPRESS_TRAILING_DATA: "transient",
  ParserError: "transient",
  ParserErrorExchange: "transient",
  // imapflow: limits, protocol and our own mistakes
  MAX_IMAP_NESTING_REACHED: "permanent",
  LineTooLarge: "permanent",
  LiteralTooLarge: "permanent",
  ResponseTooLarge: "permanent",
  DownloadOverflow: "permanent",
  STARTTLS_INJECTION: "permanent",
  MissingServerExtension: "permanent",
  NotFound: "permanent",
  InvalidStringValue: "permanent",
  InvalidTokenValue: "permanent",
  InvalidTextValue: "permanent",
  InvalidSequenceSet: "permanent",
  InvalidSearchQuery: "permanent",
  InstanceReused: "permanent",
  // proxies
  ProxyError: "transient",
  EPROXY: "transient",
  UnsupportedProxyAddress: "permanent",
  ERR_INVALID_URL: "permanent",
};

// RFC 5530 response codes, as imapflow exposes them in `serverResponseCode`.
const RESPONSE_CODE_KINDS: Record<string, ImapErrorKind> = {
  UNAVAILABLE: "transient",
  INUSE: "transient",
  LIMIT: "transient",
  EXPUNGEISSUED: "transient",
  SERVERBUG: "transient",
  CORRUPTION: "transient",
  AUTHENTICATIONFAILED: "auth",
  AUTHORIZATIONFAILED: "auth",
  EXPIRED: "auth",
  PRIVACYREQUIRED: "auth",
  CONTACTADMIN: "auth",
  NOPERM: "permanent",
  OVERQUOTA: "permanent",
  ALREADYEXISTS: "permanent",
  NONEXISTENT: "permanent",
  TRYCREATE: "permanent",
  CANNOT: "permanent",
  CLIENTBUG: "permanent",
};

const TRANSIENT_TEXT = /try again|temporar|unavailable|throttl|too many|busy|timed? ?out|backoff/i;

export interface ImapErrorInfo {
  kind: ImapErrorKind;
  /** The code that decided, e.g. "ECONNREFUSED" or "AUTHENTICATIONFAILED"; null if none. */
  code: string | null;
  message: string;
}

interface ImapflowLikeError {
  code?: unknown;
  message?: unknown;
  authenticationFailed?: unknown;
  serverResponseCode?: unknown;
  responseStatus?: unknown;
  responseText?: unknown;
  cause?: unknown;
}

function asRecord(err: unknown): ImapflowLikeError {
  return typeof err === "object" && err !== null ? (err as ImapflowLikeError) : {};
}

function str(v: unknown): string | null {
  return typeof v === "string" && v !== "" ? v : null;
}

export function describeImapError(err: unknown): ImapErrorInfo {
  // Ours already says what it is (e.g. a failed FETCH of a batch is transient).
  if (err instanceof ImapConnectorError) return { kind: err.kind, code: err.code, message: err.message };
  const e = asRecord(err);
  const message =
    str(e.responseText) ?? str(e.message) ?? (typeof err === "string" ? err : "unknown IMAP error");
  const responseCode = str(e.serverResponseCode)?.toUpperCase() ?? null;

  // A response code is the server's own verdict and outranks everything else —
  // including imapflow's authenticationFailed flag, which it sets on any failed
  // LOGIN, even "[UNAVAILABLE] backend down".
  if (responseCode && RESPONSE_CODE_KINDS[responseCode]) {
    return { kind: RESPONSE_CODE_KINDS[responseCode], code: responseCode, message };
  }
  if (e.authenticationFailed === true)
    return { kind: "auth", code: responseCode ?? "AUTHENTICATIONFAILED", message };

  const code = str(e.code);
  if (code) {
    const known = CODE_KINDS[code] ?? (code.startsWith("ParserError") ? "transient" : undefined);
    if (known) return { kind: known, code, message };
  }
  const status = str(e.responseStatus)?.toUpperCase();
  if (status === "BAD") return { kind: "permanent", code: "BAD", message };
  if (status === "NO")
    return { kind: TRANSIENT_TEXT.test(message) ? "transient" : "permanent", code: "NO", message };

  // Wrapped errors (AggregateError from happy-eyeballs connects, `cause` chains).
  if (e.cause !== undefined && e.cause !== err) {
    const inner = describeImapError(e.cause);
    if (inner.code !== null) return { ...inner, message };
  }
  if (err instanceof AggregateError) {
    for (const inner of err.errors) {
      const info = describeImapError(inner);
      if (info.code !== null) return { ...info, message };
    }
  }
  return { kind: "transient", code, message };
}

export function classifyImapError(err: unknown): ImapErrorKind {
  return describeImapError(err).kind;
}

/** The error the IMAP connector throws: the library's error with our kind on it. */
export class ImapConnectorError extends Error {
  readonly kind: ImapErrorKind;
  readonly code: string | null;

  constructor(info: ImapErrorInfo, options?: { cause?: unknown }) {
    super(info.message, options);
    this.name = "ImapConnectorError";
    this.kind = info.kind;
    this.code = info.code;
  }

  static from(err: unknown): ImapConnectorError {
    return err instanceof ImapConnectorError
      ? err
      : new ImapConnectorError(describeImapError(err), { cause: err });
  }
}
