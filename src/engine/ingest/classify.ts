import { heuristicBounce } from "../outbound/dsn.js";
import { normalizeEmailAddress } from "./contact.js";
import type { DeliveryStatus, HeaderOfInterest, ParsedMail } from "./parsed-mail.js";

/**
 * Classification of an inbound message (SPEC §3, §9): is it a bounce, machine-generated,
 * bulk, spam, and could answering it start a mail loop. Pure: headers in, verdict out.
 */

/** What the transport told us beyond the message itself. */
export interface EnvelopeInfo {
  /**
   * SMTP MAIL FROM (or the Return-Path an IMAP server recorded from it). "" is the null
   * reverse-path `<>`; undefined means unknown, and the Return-Path header is used.
   */
  mailFrom?: string | undefined;
  /** Addresses the tenant sends from: mail from one of them is our own mail coming back. */
  ownAddresses?: readonly string[] | undefined;
  /** Value our outbound mail carries in X-Loop; seeing it back means a loop. */
  loopMarker?: string | undefined;
}

export interface ClassifyOptions {
  /** X-Spam-Score at or above this counts as spam when no explicit verdict exists. */
  spamScoreThreshold?: number | undefined;
  /** Microsoft SCL at or above this counts as spam (5 is Exchange Online's junk threshold). */
  sclThreshold?: number | undefined;
  /** More Received fields than this is treated as a forwarding loop. */
  maxHops?: number | undefined;
}

export const LOOP_RISKS = [
  "bounce",
  "null-sender",
  "mailer-daemon",
  "auto-submitted",
  "auto-response-suppress",
  "bulk-precedence",
  "mailing-list",
  "own-address",
  "x-loop",
  "too-many-hops",
  "no-sender",
] as const;
export type LoopRisk = (typeof LOOP_RISKS)[number];

export type BounceAction = "failed" | "delayed" | "delivered" | "relayed" | "expanded" | "unknown";

export interface Classification {
  /** A delivery report (RFC 3464) or a recognisable non-standard bounce. */
  bounce: boolean;
  /** The most severe action among the report's recipients; null when not a bounce. */
  bounceAction: BounceAction | null;
  /** RFC 3834 Auto-Submitted other than "no", or a common vendor equivalent. */
  autoSubmitted: boolean;
  /** Precedence bulk/list/junk, or a mailing list / newsletter (List-Id, List-Unsubscribe). */
  bulk: boolean;
  spam: boolean;
  /** Which header decided `spam`, e.g. "X-Spam-Flag: YES". */
  spamReason: string | null;
  /** Reasons never to auto-reply; empty when an auto-reply is safe. */
  loopRisk: LoopRisk[];
}

const DEFAULTS = { spamScoreThreshold: 5, sclThreshold: 5, maxHops: 30 } as const;

function first(mail: ParsedMail, name: HeaderOfInterest): string | null {
  const v = mail.headers[name];
  return v && v.length > 0 ? (v[0] ?? "").trim() : null;
}

function all(mail: ParsedMail, name: HeaderOfInterest): string[] {
  return (mail.headers[name] ?? []).map((v) => v.trim());
}

/** Content-Type parameter value, e.g. report-type of multipart/report. */
function contentTypeParam(contentType: string, param: string): string | null {
  const re = new RegExp(`;\\s*${param}\\s*=\\s*(?:"([^"]*)"|([^;\\s]+))`, "i");
  const m = re.exec(contentType);
  return m ? (m[1] ?? m[2] ?? "").toLowerCase() : null;
}

// Order of severity for summarising a multi-recipient report.
const ACTION_RANK: Record<BounceAction, number> = {
  failed: 5,
  delayed: 4,
  unknown: 3,
  relayed: 2,
  expanded: 1,
  delivered: 0,
};

/** The most severe action among a report's recipients; "unknown" for none. */
export function reportActionOf(recipients: readonly { action: string | null }[]): BounceAction {
  let best: BounceAction | null = null;
  for (const r of recipients) {
    const a = (r.action ?? "").toLowerCase();
    const action: BounceAction = a in ACTION_RANK ? (a as BounceAction) : "unknown";
    if (best === null || ACTION_RANK[action] > ACTION_RANK[best]) best = action;
  }
  return best ?? "unknown";
}

// Subjects of the bounces and delay warnings that do not follow RFC 3464 (qmail, Exim,
// old Exchange, many hosted MTAs). Only used together with a null sender or a daemon
// From, never alone. Delay wordings are the notices' own — Exim's "Warning: message
// 1vAbCd-000123-4X delayed 24 hours", Postfix's "Delayed Mail (still being retried)",
// "Delivery delayed", "… has not yet been delivered" — not a bare "delayed": a customer's
// out-of-office answer to "Re: Order delayed" has a null sender too.
const BOUNCE_SUBJECT_RE =
  /undeliver|undelivered mail|delivery (?:status )?notification|delivery (?:has )?failed|delivery failure|delivery delayed|delayed mail|^\s*warning: message \S+ delayed|returned mail|failure notice|mail delivery (?:failed|system)|non[- ]?delivery|could not be delivered|not yet been delivered|unzustellbar|nicht zugestellt/i;
// Which notices are delay warnings (they mark nothing on the message they report on).
const DELAY_SUBJECT_RE = /\bdelayed\b|delivery delay|not yet been delivered/i;
// How a person's reply or automatic reply begins; a delivery notice's subject never does.
// Reply and forward prefixes (also "Re[2]:", full-width colons) and the auto-reply wordings
// of the common clients in the languages customers write in (second re-probe: German,
// Dutch, Spanish, Italian, Swedish, Portuguese, Polish and Chinese ones were swallowed).
const AUTO_WORD = String.raw`(?:automatic|auto|automatische|automatisch|automatiskt?|autom[aá]tic[ao]|automatyczna|vacation|urlaubs?)`;
const REPLY_WORD = String.raw`(?:reply|response|answer|antwort|antwoord|svar|respuesta|risposta|resposta|odpowied[zź]|notiz)`;
const REPLY_PREFIX_RE = new RegExp(
  String.raw`^\s*(?:\[?auto[- ]?${REPLY_WORD}\]?|(?:re|aw|sv|vs|antw|wg|fw|fwd|tr|rif|r|rv|odp|ynt|回复|答复|转发)\s*(?:\[\d+\])?\s*[:：]|` +
    String.raw`${AUTO_WORD}\s*${REPLY_WORD}|${AUTO_WORD}\s*[:：]|out[- ]of[- ](?:the[- ])?office|ooo\b|abwesen|absen[ct]|` +
    String.raw`fuori sede|r[ée]ponse automatique|(?:respuesta|risposta|resposta) autom|urlaub)`,
  "iu",
);

/**
 * What the headers say of machine-made mail: `automatic`, any RFC 3834 Auto-Submitted value
 * but "no", or a vendor equivalent (X-Autoreply, X-Autorespond, Precedence: auto_reply, as
 * Exchange, Zendesk, Freshdesk and vacation scripts send); `autoReplied`, an automatic
 * reply written for a person (Auto-Submitted: auto-replied, or the vendor fields). With a
 * From that is no mail daemon, the second is an out-of-office answer, not a delivery
 * notice, unless its text reports a failure (`plainNoticeAction`).
 */
function autoSubmission(mail: ParsedMail): { automatic: boolean; autoReplied: boolean } {
  const header = first(mail, "auto-submitted") ?? "";
  const vendor =
    first(mail, "x-autoreply") !== null ||
    first(mail, "x-autorespond") !== null ||
    (first(mail, "precedence") ?? "").toLowerCase() === "auto_reply";
  return {
    automatic: vendor || (header !== "" && !/^no\b/i.test(header)),
    autoReplied: vendor || /^auto-replied\b/i.test(header),
  };
}
// Exchange sends its non-delivery reports from "MicrosoftExchange" and 32 hex digits.
const DAEMON_LOCAL_RE =
  /^(?:mailer-daemon|postmaster|mail-daemon|mailerdaemon|bounces?|double-bounce|microsoftexchange[0-9a-f]{32})$/i;

function isDaemonAddress(address: string | null | undefined): boolean {
  if (!address) return false;
  const at = address.lastIndexOf("@");
  const local = at > 0 ? address.slice(0, at) : address;
  return DAEMON_LOCAL_RE.test(local);
}

/** The reverse-path: the envelope's, else the last Return-Path field (the final MTA's). */
function reversePath(mail: ParsedMail, envelope: EnvelopeInfo): string | null {
  if (envelope.mailFrom !== undefined) return envelope.mailFrom.trim().replace(/^<|>$/g, "");
  const rp = all(mail, "return-path");
  const last = rp[rp.length - 1];
  if (last === undefined) return null;
  const m = /<([^>]*)>/.exec(last);
  return (m ? (m[1] ?? "") : last).trim();
}

/**
 * Whether mail that is no RFC 3464 report is a delivery notice (a bounce or a delay
 * warning), and its action; null: ordinary mail.
 * - A null reverse path (RFC 5321 §4.5.5: what MTAs send notices with) and a daemon From:
 *   a notice, whatever the subject ("Warning: message … delayed 24 hours").
 * - A null reverse path and a bounce subject: a notice (hosted MTAs with other From names).
 * - A daemon From and a bounce subject with any other reverse path — a real one, or none
 *   known (mail over IMAP or the API without a Return-Path field): only when the text
 *   reports a failed or delayed recipient and quotes the original's Message-ID
 *   (`heuristicBounce`). postmaster@ is a customer's mailbox too, and "Mail delivery
 *   failed for your invoices - please help" is their question, not a bounce (until
 *   2026-11-23 it was recorded as a delivery report and no agent saw it).
 * Cheap for ordinary mail: the text is read only for a daemon From with a bounce subject.
 */
function plainNoticeAction(mail: ParsedMail, nullSender: boolean, daemonFrom: boolean): BounceAction | null {
  if (!nullSender && !daemonFrom) return null;
  const bounceSubject = BOUNCE_SUBJECT_RE.test(mail.subject);
  if (nullSender && daemonFrom) return DELAY_SUBJECT_RE.test(mail.subject) ? "delayed" : "unknown";
  // A null sender without a daemon From is also how a person's automatic reply comes
  // ("Automatic reply: Re: My order has not yet been delivered"): never a notice under a
  // reply or auto-reply prefix (re-probe, session 16: such out-of-office replies were
  // swallowed as delay notices).
  if (nullSender && bounceSubject) {
    if (REPLY_PREFIX_RE.test(mail.subject)) return null;
    // Some MTAs mark their notices "auto-replied" too: such a mail is a notice only when
    // its text reports a failed recipient and returns the original (third re-probe).
    if (autoSubmission(mail).autoReplied) return textReportsFailure(mail);
    return DELAY_SUBJECT_RE.test(mail.subject) ? "delayed" : "unknown";
  }
  if (nullSender || !bounceSubject) return null;
  return textReportsFailure(mail);
}

/**
 * The action of a plain-text notice whose text reports a failed or delayed recipient and
 * quotes the returned original's Message-ID; null otherwise. A notice names who failed and
 * returns the mail it failed on; without the original's Message-ID it could mark nothing
 * anyway (`recordDeliveryReport`), while a customer's "I get 550 for bob@…" would be lost
 * to agents.
 */
function textReportsFailure(mail: ParsedMail): BounceAction | null {
  const ds = plainDeliveryStatus(mail);
  if (!ds?.originalMessageId) return null;
  const reported = ds.recipients.filter((r) => r.action === "failed" || r.action === "delayed");
  return reported.length > 0 ? reportActionOf(reported) : null;
}

/**
 * A bounce or delay warning that is no RFC 3464 report (qmail, Exim, old Exchange, plain
 * "Undelivered Mail" notices), read by `heuristicBounce` as a report's delivery status:
 * for classification (`textReportsFailure`) and for what ingest marks once `classify`
 * decided it is a notice. Null when the text names nothing, so nothing gets marked.
 */
export function plainDeliveryStatus(mail: ParsedMail): DeliveryStatus | null {
  const outcome = heuristicBounce({
    subject: mail.subject,
    from: mail.from?.address ?? null,
    text: mail.text,
    notice: true,
  });
  if (!outcome) return null;
  return {
    reportingMta: null,
    originalEnvelopeId: null,
    originalMessageId: outcome.originalMessageId,
    recipients: outcome.recipients.map((r) => ({
      finalRecipient: r.address,
      originalRecipient: null,
      action: r.action,
      status: r.status,
      diagnosticCode: r.diagnostic,
      remoteMta: null,
    })),
  };
}

function detectSpam(mail: ParsedMail, opts: Required<ClassifyOptions>): string | null {
  // SpamAssassin (and most filters copying it): X-Spam-Flag: YES
  const flag = first(mail, "x-spam-flag");
  if (flag && /^yes\b/i.test(flag)) return `X-Spam-Flag: ${flag}`;
  // SpamAssassin: "X-Spam-Status: Yes, score=7.1 required=5.0 …"
  const status = first(mail, "x-spam-status");
  if (status && /^yes\b/i.test(status)) return `X-Spam-Status: ${status.slice(0, 60)}`;
  // rspamd's milter header
  const rspamd = first(mail, "x-spam");
  if (rspamd && /^(?:yes|true)\b/i.test(rspamd)) return `X-Spam: ${rspamd}`;
  // Amazon SES receiving: PASS | FAIL | GRAY | PROCESSING_FAILED
  const ses = first(mail, "x-ses-spam-verdict");
  if (ses && /^fail\b/i.test(ses)) return `X-SES-Spam-Verdict: ${ses}`;
  // Microsoft 365 / Exchange spam confidence level: -1 trusted … 5–6 spam, 9 high confidence.
  for (const h of ["x-forefront-antispam-report", "x-microsoft-antispam"] as const) {
    for (const v of all(mail, h)) {
      const m = /(?:^|;)\s*SCL:\s*(-?\d+)/i.exec(v);
      if (m && Number(m[1]) >= opts.sclThreshold)
        return `${h === "x-microsoft-antispam" ? "X-Microsoft-Antispam" : "X-Forefront-Antispam-Report"} SCL:${m[1]}`;
    }
  }
  const scl = first(mail, "x-ms-exchange-organization-scl");
  if (scl && /^-?\d+$/.test(scl) && Number(scl) >= opts.sclThreshold) {
    return `X-MS-Exchange-Organization-SCL: ${scl}`;
  }
  // A bare score only counts when no filter above gave an explicit verdict.
  if (!flag && !status && !rspamd && !ses) {
    const score = first(mail, "x-spam-score");
    const m = score ? /^\s*(-?\d+(?:\.\d+)?)/.exec(score) : null;
    if (m && Number(m[1]) >= opts.spamScoreThreshold) return `X-Spam-Score: ${m[1]}`;
  }
  return null;
}

export function classify(
  mail: ParsedMail,
  envelope: EnvelopeInfo = {},
  options: ClassifyOptions = {},
): Classification {
  const opts: Required<ClassifyOptions> = {
    spamScoreThreshold: options.spamScoreThreshold ?? DEFAULTS.spamScoreThreshold,
    sclThreshold: options.sclThreshold ?? DEFAULTS.sclThreshold,
    maxHops: options.maxHops ?? DEFAULTS.maxHops,
  };
  const risks = new Set<LoopRisk>();
  const fromAddress = mail.from?.address ?? null;
  const rp = reversePath(mail, envelope);
  // RFC 5321 §4.5.5: mail with a null reverse-path (notifications) must never be answered.
  const nullSender = rp === "";
  if (nullSender) risks.add("null-sender");
  const daemonFrom = isDaemonAddress(fromAddress);
  if (daemonFrom || isDaemonAddress(rp)) risks.add("mailer-daemon");

  // --- Bounces (RFC 3464 delivery reports, RFC 6522 multipart/report container)
  let bounce = mail.isDeliveryReport;
  let bounceAction: BounceAction | null = bounce
    ? reportActionOf(mail.deliveryStatus?.recipients ?? [])
    : null;
  if (!bounce) bounceAction = plainNoticeAction(mail, nullSender, daemonFrom);
  if (bounceAction !== null) bounce = true;
  if (bounce) risks.add("bounce");

  // --- Machine-generated mail (RFC 3834 §5)
  const contentType = first(mail, "content-type") ?? "";
  const reportType = /^multipart\/report\b/i.test(contentType)
    ? contentTypeParam(contentType, "report-type")
    : null;
  let autoSubmitted = autoSubmission(mail).automatic;
  // Read receipts (RFC 8098) and any other report are generated by software.
  if (reportType !== null || bounce) autoSubmitted = true;
  if (autoSubmitted) risks.add("auto-submitted");

  // X-Auto-Response-Suppress (MS-OXCMAIL §2.2.3.2.20): the sender asks for no auto-replies.
  const suppress = first(mail, "x-auto-response-suppress");
  if (suppress && /\b(?:all|oof|autoreply)\b/i.test(suppress)) risks.add("auto-response-suppress");

  // --- Bulk (RFC 3834 §2 names these Precedence values; RFC 2919 List-Id; RFC 2369)
  const precedence = (first(mail, "precedence") ?? "").toLowerCase();
  const bulkPrecedence = ["bulk", "list", "junk"].includes(precedence);
  if (bulkPrecedence) risks.add("bulk-precedence");
  const list = first(mail, "list-id") !== null || first(mail, "list-post") !== null;
  if (list) risks.add("mailing-list");
  const bulk = bulkPrecedence || list || first(mail, "list-unsubscribe") !== null;

  // --- Our own mail coming back, or a forwarding loop
  const own = new Set(
    (envelope.ownAddresses ?? []).flatMap((a) => {
      const n = normalizeEmailAddress(a);
      return n ? [n.address] : [];
    }),
  );
  const fromNorm = normalizeEmailAddress(fromAddress);
  if (fromNorm && own.has(fromNorm.address)) risks.add("own-address");
  if (!fromNorm) risks.add("no-sender");
  if (envelope.loopMarker) {
    const marker = envelope.loopMarker.toLowerCase();
    if (all(mail, "x-loop").some((v) => v.toLowerCase().includes(marker))) risks.add("x-loop");
  }
  // RFC 5321 §6.3 has MTAs give up at ~100 hops; an auto-reply should stop far sooner.
  if (mail.receivedCount > opts.maxHops) risks.add("too-many-hops");

  const spamReason = detectSpam(mail, opts);
  return {
    bounce,
    bounceAction,
    autoSubmitted,
    bulk,
    spam: spamReason !== null,
    spamReason,
    loopRisk: LOOP_RISKS.filter((r) => risks.has(r)),
  };
}
