import type { SmtpTlsMode } from "../domain.js";
import type { ComposedMail } from "./compose.js";

/**
 * The engine's view of an outbound mail transport. The SMTP connector implements it;
 * the send job depends on this interface only, so tests can swap in a fake.
 */

/** SMTP settings of a mail account (SPEC §2). */
export interface SmtpSettings {
  host: string;
  port: number;
  tlsMode: SmtpTlsMode;
  user?: string | null;
  password?: string | null;
  /** Verify the server certificate (default true); off only for self-signed relays. */
  rejectUnauthorized?: boolean;
  /** Extra trusted CA certificates in PEM, for relays with a private CA. */
  ca?: string | null;
}

export interface SendOptions {
  /** Exact bytes to send (from `buildRawMime`), so what is stored is what was sent. */
  raw?: Buffer;
  /** Envelope sender (MAIL FROM, where bounces go); From's address when absent. */
  envelopeFrom?: string;
  /** The address's force-TLS switch (SPEC §2): never send this mail in clear text. */
  forceTls?: boolean;
}

export const SEND_FAILURE_KINDS = ["transient", "permanent", "auth", "tls_required"] as const;
export type SendFailureKind = (typeof SEND_FAILURE_KINDS)[number];

/** A recipient the server refused with its RCPT TO reply (RFC 5321 §4.2). */
export interface RecipientRejection {
  address: string;
  responseCode: number | null;
  response: string;
}

export interface SendSuccess {
  ok: true;
  messageId: string;
  response: string;
  accepted: string[];
  rejected: string[];
  /** Recipients refused while the others were accepted (the mail went to the others). */
  rejectedRecipients: RecipientRejection[];
}

export interface SendFailure {
  ok: false;
  kind: SendFailureKind;
  /** True when retrying the same mail with the same settings cannot succeed. */
  permanent: boolean;
  /** Library/network error code (e.g. ECONNECTION, EAUTH, ETLS), when known. */
  code: string | null;
  /** SMTP reply code, when the failure was a server reply. */
  responseCode: number | null;
  /** The server's reply text, when there was one. */
  response: string | null;
  message: string;
  /** When every recipient was refused: each one's reply. */
  rejectedRecipients?: RecipientRejection[];
}

export type SendResult = SendSuccess | SendFailure;

export interface MailSender {
  send(settings: SmtpSettings, mail: ComposedMail, options?: SendOptions): Promise<SendResult>;
  close(): Promise<void>;
}

/** Retry policy of the send job (pg-boss retryLimit / retryDelay / retryBackoff). */
export interface SendRetryPolicy {
  /** Retries after the first attempt. */
  limit: number;
  delaySeconds: number;
  backoff: boolean;
}

/**
 * What the outbound service needs from the outside: a transport, the MIME builder (so the
 * exact bytes are stored when the message is queued and every retry sends the same
 * bytes), and the retry policy the send job is scheduled with.
 */
export interface OutboundMail {
  sender: MailSender;
  buildMime(mail: ComposedMail): Promise<Buffer>;
  retry: SendRetryPolicy;
}
