import { randomUUID } from "node:crypto";
import type { HistoryPolicy, SignaturePolicy } from "../domain.js";
import type { TicketFormat } from "../subject.js";
import { forwardSubject, replySubject, withTicketNumber } from "../subject.js";
import type { MailAddress, MailAddressInput } from "./address.js";
import {
  cleanDisplayName,
  extractMessageIds,
  isValidDomain,
  normalizeMessageId,
  sameAddress,
  toMailAddress,
} from "./address.js";
import { ComposeError } from "./errors.js";
import { htmlToText, memoize, sanitizeContentHtml, sanitizeTemplateHtml } from "./html.js";
import { withoutClientQuoteHtml, withoutClientQuoteText } from "./quotes.js";
import {
  escapeHtml,
  hasControlChars,
  isValidTimeZone,
  localDateTime,
  quoteText,
  stripControls,
  textToHtml,
} from "./text.js";

/**
 * Composition of one outbound mail (SPEC §10) into a transport-neutral `ComposedMail`.
 * Pure: time and randomness are inputs, nothing is read or sent. The SMTP connector
 * turns the result into MIME; the send job stores and sends it.
 *
 * Header safety is decided here, not left to the MIME library: every value that ends up
 * in a header is either validated (addresses, message ids, header names — bad input is a
 * typed error or, for ids taken from inbound mail, dropped) or cleaned of control
 * characters (subject, display names, file names), so no input can start a new header.
 */

export const COMPOSE_KINDS = ["REPLY", "REPLY_ALL", "FORWARD", "NEW", "AUTO_REPLY"] as const;
export type ComposeKind = (typeof COMPOSE_KINDS)[number];

/** The point of contact (SPEC §2 "Email addresses") the mail goes out from. */
export interface AddressSettings {
  /** Display (From) name. */
  displayName: string;
  fromAddress: string;
  /** Reply-To addresses; empty when replies go to From. */
  replyTo: readonly string[];
  /** Hidden BCC recipients added to every outbound from this address, at most 5. */
  bcc: readonly string[];
  ticketFormat: TicketFormat;
  signaturePolicy: SignaturePolicy;
  historyPolicy: HistoryPolicy;
  /** Branded HTML template with one `{{content}}` placeholder, or null. */
  templateHtml: string | null;
}

/** Tenant subject options (SPEC §6); the two are mutually exclusive. */
export interface SubjectOptions {
  appendTicketOnFirstReply: boolean;
  agentsMayEditSubject: boolean;
}

/** A message already in the conversation, used for quoting and threading headers. */
export interface PreviousMessage {
  /** Message-ID as stored (with or without angle brackets); invalid ones are ignored. */
  messageId: string | null;
  /** Its References header as received (raw value or list); invalid ids are dropped. */
  references?: string | readonly string[] | null;
  from: MailAddressInput;
  replyTo?: readonly MailAddressInput[];
  to?: readonly MailAddressInput[];
  cc?: readonly MailAddressInput[];
  date: Date;
  subject?: string | null;
  text: string | null;
  html: string | null;
}

export interface ConversationContext {
  ticketNumber: number;
  subject: string;
  /** True when no outbound has been sent on this conversation yet. */
  isFirstReply: boolean;
  /** Messages of the conversation, oldest first. */
  messages: readonly PreviousMessage[];
  /** The message being answered or forwarded; the newest one when absent. */
  targetMessageId?: string | null;
}

export interface AgentInfo {
  name: string;
  /** Public alias; `{{agent.alias}}` falls back to the name when there is none. */
  alias: string | null;
  email: string;
}

/** Signature of the queue or user, plain and/or HTML, with `{{…}}` tags. */
export interface SignatureContent {
  html: string | null;
  text: string | null;
}

export interface AttachmentInput {
  filename: string;
  contentType: string;
  content: Uint8Array;
  /** Content-ID without angle brackets, referenced from the HTML as `cid:…`. */
  contentId?: string | null;
  inline?: boolean;
}

export interface ComposedAttachment {
  filename: string;
  contentType: string;
  content: Buffer;
  contentId?: string;
  inline: boolean;
}

export interface RecipientsInput {
  to?: readonly MailAddressInput[];
  cc?: readonly MailAddressInput[];
  bcc?: readonly MailAddressInput[];
}

export interface ComposeLimits {
  /** Recipients including every BCC (SPEC §10: 50). */
  maxRecipients: number;
  /** Hidden BCC of an address (SPEC §2: 5). */
  maxAddressBcc: number;
  /** Estimated size of the encoded message in bytes (default 25 MiB). */
  maxBytes: number;
  /** Cap on References ids carried forward (see `capReferences`). */
  maxReferences: number;
  /** Previous messages quoted in a reply, newest first (default 20). */
  maxQuotedMessages: number;
}

export const DEFAULT_COMPOSE_LIMITS: ComposeLimits = {
  maxRecipients: 50,
  maxAddressBcc: 5,
  maxBytes: 25 * 1024 * 1024,
  maxReferences: 20,
  maxQuotedMessages: 20,
};

export interface ComposeInput {
  kind: ComposeKind;
  address: AddressSettings;
  subjectOptions: SubjectOptions;
  conversation: ConversationContext;
  /** The sending agent; null for auto-replies. */
  agent: AgentInfo | null;
  companyName: string;
  signature: SignatureContent | null;
  body: { html?: string | null; text?: string | null };
  /** Explicit recipients; when all lists are empty, REPLY/REPLY_ALL/AUTO_REPLY derive them. */
  recipients?: RecipientsInput;
  attachments?: readonly AttachmentInput[];
  /** A new subject typed by the agent: only when the tenant lets agents edit it. */
  subjectOverride?: string | null;
  /** The agent's choice, used only when the address's history policy is AGENT_DECIDES. */
  includeHistory?: boolean;
  /** Right-hand side of our Message-IDs, e.g. `mail.example.com`. */
  messageIdDomain: string;
  now: Date;
  /** IANA zone for dates in quote attributions; UTC when absent. */
  timeZone?: string;
  /** Extra headers (e.g. X-…); structural headers cannot be set this way. */
  headers?: Readonly<Record<string, string>>;
  limits?: Partial<ComposeLimits>;
  /** Left-hand side of the Message-ID; random when absent (tests pass a fixed one). */
  randomId?: () => string;
}

export interface ComposedMail {
  /** `<random@messageIdDomain>` */
  messageId: string;
  date: Date;
  from: MailAddress;
  replyTo: MailAddress[];
  to: MailAddress[];
  cc: MailAddress[];
  bcc: MailAddress[];
  subject: string;
  inReplyTo: string | null;
  references: string[];
  text: string;
  html: string | null;
  attachments: ComposedAttachment[];
  headers: Record<string, string>;
}

const MAX_SUBJECT_LENGTH = 998;

// Headers the composer owns; letting a caller set them would bypass the checks above
// or produce duplicates that receivers resolve differently (RFC 5322 §3.6 allows one).
const RESERVED_HEADERS = new Set([
  "from",
  "sender",
  "reply-to",
  "to",
  "cc",
  "bcc",
  "subject",
  "date",
  "message-id",
  "in-reply-to",
  "references",
  "mime-version",
  "content-type",
  "content-transfer-encoding",
  "content-disposition",
  "content-id",
  "return-path",
  "received",
  "dkim-signature",
]);

// RFC 5322 §3.6.8 field-name: printable US-ASCII except colon.
const HEADER_NAME_RE = /^[\x21-\x39\x3b-\x7e]{1,76}$/;
// RFC 2045 §5.1 type/subtype tokens.
const CONTENT_TYPE_RE = /^[A-Za-z0-9!#$&^_.+-]{1,64}\/[A-Za-z0-9!#$&^_.+-]{1,127}$/;
const CONTENT_ID_RE = /^[\x21-\x3b\x3d\x3f-\x7e]{1,250}$/;

export function compose(input: ComposeInput): ComposedMail {
  const limits: ComposeLimits = { ...DEFAULT_COMPOSE_LIMITS, ...input.limits };
  const { kind, address, conversation } = input;
  const timeZone = input.timeZone ?? "UTC";
  if (!isValidTimeZone(timeZone)) {
    throw new ComposeError("INVALID_TIME_ZONE", "timeZone", `Unknown time zone ${timeZone}`);
  }
  if (!isValidDomain(input.messageIdDomain)) {
    throw new ComposeError("INVALID_MESSAGE_ID_DOMAIN", "messageIdDomain", "Invalid Message-ID domain");
  }

  const target = findTarget(conversation);
  if ((kind === "REPLY" || kind === "REPLY_ALL" || kind === "FORWARD" || kind === "AUTO_REPLY") && !target) {
    throw new ComposeError(
      "NO_MESSAGE_TO_REPLY_TO",
      "conversation.messages",
      `${kind} needs a message to answer`,
    );
  }

  const from = toMailAddress(
    { name: address.displayName, address: address.fromAddress },
    "address.fromAddress",
  );
  const replyTo = address.replyTo.map((a, i) => toMailAddress({ address: a }, `address.replyTo[${i}]`));
  const subject = composeSubject(input, target);
  const { inReplyTo, references } = threadingHeaders(kind, target, limits.maxReferences);
  const recipients = composeRecipients(input, target, from, replyTo, limits);
  const attachments = (input.attachments ?? []).map(toAttachment);
  const headers = composeHeaders(input);
  const hasBody = Boolean(input.body.html?.trim() || input.body.text?.trim());
  // A forward may go out without a note: the forwarded message is the content.
  if (!hasBody && attachments.length === 0 && kind !== "FORWARD") {
    throw new ComposeError("EMPTY_BODY", "body", "The message has no content");
  }
  const { text, html } = composeBody(input, target, timeZone, limits.maxQuotedMessages);

  const mail: ComposedMail = {
    messageId: `<${(input.randomId ?? defaultRandomId)(input.now)}@${input.messageIdDomain}>`,
    date: input.now,
    from,
    replyTo,
    ...recipients,
    subject,
    inReplyTo,
    references,
    text,
    html,
    attachments,
    headers,
  };
  if (normalizeMessageId(mail.messageId) !== mail.messageId) {
    throw new ComposeError("INVALID_MESSAGE_ID_DOMAIN", "messageIdDomain", "Generated Message-ID is invalid");
  }
  const size = estimateMimeSize(mail);
  if (size > limits.maxBytes) {
    throw new ComposeError(
      "TOO_LARGE",
      attachments.length > 0 ? "attachments" : "body",
      `Message is about ${size} bytes, the limit is ${limits.maxBytes}`,
    );
  }
  return mail;
}

// Time prefix keeps ids roughly sortable in logs; the UUID's 122 random bits make them
// unguessable (RFC 5322 §3.6.4 asks for global uniqueness).
function defaultRandomId(now: Date): string {
  return `${now.getTime().toString(36)}.${randomUUID().replace(/-/g, "")}`;
}

function findTarget(conversation: ConversationContext): PreviousMessage | null {
  const { messages } = conversation;
  if (conversation.targetMessageId) {
    const wanted = normalizeMessageId(conversation.targetMessageId);
    const found = messages.find((m) => wanted !== null && normalizeMessageId(m.messageId) === wanted);
    if (found) return found;
  }
  return messages.at(-1) ?? null;
}

// ---------------------------------------------------------------------------
// Subject

/**
 * Subject rules (SPEC §6):
 * - REPLY/REPLY_ALL: one `Re:`; FORWARD: one `Fwd:`; NEW: the conversation subject;
 *   AUTO_REPLY: `Re: ` + the original subject and nothing else (SPEC §9).
 * - The ticket token is placed per the address format on every kind but AUTO_REPLY.
 * - `appendTicketOnFirstReply`: the address format already puts the token on every
 *   outbound unless its placement is HIDDEN, so the tenant option only changes the
 *   HIDDEN case — the first reply of a conversation then carries the token at the end
 *   (with the address's delimiter) so the customer's answer threads by ticket number.
 * - `subjectOverride` is refused unless agents may edit subjects (except on NEW, where
 *   the agent writes the subject in the first place); the token is still enforced.
 */
function composeSubject(input: ComposeInput, target: PreviousMessage | null): string {
  const { kind, subjectOptions, conversation, address } = input;
  if (subjectOptions.appendTicketOnFirstReply && subjectOptions.agentsMayEditSubject) {
    throw new ComposeError(
      "CONFLICTING_SUBJECT_OPTIONS",
      "subjectOptions",
      "appendTicketOnFirstReply and agentsMayEditSubject are mutually exclusive",
    );
  }
  const override = input.subjectOverride == null ? "" : cleanSubject(input.subjectOverride);
  if (input.subjectOverride != null && input.subjectOverride.trim() !== "" && kind !== "NEW") {
    if (!subjectOptions.agentsMayEditSubject) {
      throw new ComposeError(
        "SUBJECT_EDIT_NOT_ALLOWED",
        "subjectOverride",
        "Agents may not edit the subject",
      );
    }
  }
  const original = cleanSubject(conversation.subject);

  if (kind === "AUTO_REPLY") {
    return replySubject(cleanSubject(target?.subject ?? original));
  }

  let base: string;
  if (override !== "") base = override;
  else if (kind === "REPLY" || kind === "REPLY_ALL") base = replySubject(original);
  else if (kind === "FORWARD") base = forwardSubject(original);
  else base = original;
  if (kind === "NEW" && base === "") {
    throw new ComposeError("SUBJECT_REQUIRED", "subject", "A new conversation needs a subject");
  }

  let format = address.ticketFormat;
  if (format.placement === "HIDDEN" && subjectOptions.appendTicketOnFirstReply && conversation.isFirstReply) {
    format = { placement: "END", delimiter: format.delimiter };
  }
  return withTicketNumber(base, conversation.ticketNumber, format).slice(0, MAX_SUBJECT_LENGTH);
}

function cleanSubject(subject: string): string {
  return stripControls(subject).slice(0, MAX_SUBJECT_LENGTH);
}

// ---------------------------------------------------------------------------
// Threading

/**
 * In-Reply-To is the parent's Message-ID; References is the parent's References followed
 * by the parent's Message-ID (RFC 5322 §3.6.4). A forward starts a new exchange with a
 * third party, so it has no In-Reply-To, but keeps References so an answer from that
 * party still threads into this conversation (SPEC §5).
 */
function threadingHeaders(
  kind: ComposeKind,
  target: PreviousMessage | null,
  maxReferences: number,
): { inReplyTo: string | null; references: string[] } {
  if (kind === "NEW" || !target) return { inReplyTo: null, references: [] };
  const parentId = normalizeMessageId(target.messageId);
  const chain = extractMessageIds(target.references ?? null).filter((id) => id !== parentId);
  if (parentId) chain.push(parentId);
  return {
    inReplyTo: kind === "FORWARD" ? null : parentId,
    references: capReferences(chain, maxReferences),
  };
}

/**
 * Long threads grow References without bound. Keep the first id (the thread root, which
 * most clients thread on) and the most recent ones — the trimming RFC 5322 §3.6.4 leaves
 * to implementations and that Thunderbird and Gmail also do.
 */
export function capReferences(ids: readonly string[], max: number): string[] {
  if (ids.length <= max) return [...ids];
  if (max <= 1) return ids.slice(-Math.max(max, 0));
  return [ids[0] as string, ...ids.slice(ids.length - (max - 1))];
}

// ---------------------------------------------------------------------------
// Recipients

function composeRecipients(
  input: ComposeInput,
  target: PreviousMessage | null,
  from: MailAddress,
  replyTo: MailAddress[],
  limits: ComposeLimits,
): { to: MailAddress[]; cc: MailAddress[]; bcc: MailAddress[] } {
  const given = input.recipients ?? {};
  const explicit = (given.to?.length ?? 0) + (given.cc?.length ?? 0) + (given.bcc?.length ?? 0) > 0;

  let to: MailAddress[];
  let cc: MailAddress[];
  let bcc: MailAddress[];
  if (explicit) {
    to = (given.to ?? []).map((a, i) => toMailAddress(a, `recipients.to[${i}]`));
    cc = (given.cc ?? []).map((a, i) => toMailAddress(a, `recipients.cc[${i}]`));
    bcc = (given.bcc ?? []).map((a, i) => toMailAddress(a, `recipients.bcc[${i}]`));
  } else {
    ({ to, cc } = defaultRecipients(input.kind, target, [from.address, ...replyTo.map((r) => r.address)]));
    bcc = [];
  }

  if (input.address.bcc.length > limits.maxAddressBcc) {
    throw new ComposeError(
      "TOO_MANY_BCC",
      "address.bcc",
      `An address may have at most ${limits.maxAddressBcc} hidden BCC recipients`,
    );
  }
  const hidden = input.address.bcc.map((a, i) => toMailAddress({ address: a }, `address.bcc[${i}]`));

  // One copy per mailbox: a recipient listed twice counts once and is sent once.
  const seen: string[] = [];
  const unique = (list: MailAddress[]) =>
    list.filter((a) => {
      const key = a.address.toLowerCase();
      if (seen.includes(key)) return false;
      seen.push(key);
      return true;
    });
  to = unique(to);
  cc = unique(cc);
  bcc = unique([...bcc, ...hidden]);

  if (to.length + cc.length === 0) {
    throw new ComposeError("NO_RECIPIENTS", "recipients.to", "The message has no recipient");
  }
  const total = to.length + cc.length + bcc.length;
  if (total > limits.maxRecipients) {
    throw new ComposeError(
      "TOO_MANY_RECIPIENTS",
      "recipients",
      `${total} recipients including BCC; at most ${limits.maxRecipients} are allowed`,
    );
  }
  return { to, cc, bcc };
}

/**
 * Recipients when the caller gives none: a reply goes to the parent's Reply-To, else its
 * From (RFC 5322 §3.6.3); reply-all adds the parent's To and Cc as Cc, minus our own
 * addresses. Entries from inbound mail that do not validate are skipped, not fatal:
 * the agent can still add recipients by hand.
 */
export function defaultRecipients(
  kind: ComposeKind,
  target: PreviousMessage | null,
  ownAddresses: readonly string[],
): { to: MailAddress[]; cc: MailAddress[] } {
  if (!target || kind === "FORWARD" || kind === "NEW") return { to: [], cc: [] };
  const valid = (list: readonly MailAddressInput[] | undefined) =>
    (list ?? []).flatMap((a) => {
      try {
        return [toMailAddress(a, "conversation.messages")];
      } catch {
        return [];
      }
    });
  const notOwn = (a: MailAddress) => !ownAddresses.some((o) => sameAddress(o, a.address));
  const [sender] = valid([target.from]);
  // Answering our own previous outbound (the newest message of the thread): write to
  // whom it went to, as "reply" in a mail client's Sent folder does.
  if (sender && !notOwn(sender)) {
    const to = valid(target.to).filter(notOwn);
    const cc = kind === "REPLY_ALL" ? valid(target.cc).filter(notOwn) : [];
    return { to, cc };
  }
  const replyTargets = valid(target.replyTo);
  const to = (replyTargets.length > 0 ? replyTargets : valid([target.from])).filter(notOwn);
  if (kind !== "REPLY_ALL") return { to, cc: [] };
  const cc = [...valid(target.to), ...valid(target.cc)].filter(
    (a) => notOwn(a) && !to.some((t) => sameAddress(t.address, a.address)),
  );
  return { to, cc };
}

// ---------------------------------------------------------------------------
// Attachments and headers

function toAttachment(a: AttachmentInput, i: number): ComposedAttachment {
  const field = `attachments[${i}]`;
  if (!(a.content instanceof Uint8Array)) {
    throw new ComposeError("INVALID_ATTACHMENT", `${field}.content`, "Attachment content must be bytes");
  }
  const contentType = typeof a.contentType === "string" ? a.contentType.trim().toLowerCase() : "";
  if (!CONTENT_TYPE_RE.test(contentType)) {
    throw new ComposeError("INVALID_ATTACHMENT", `${field}.contentType`, "Invalid attachment content type");
  }
  // Path separators would let a file name choose where a careless client saves it.
  const filename = stripControls(String(a.filename ?? ""))
    .replace(/[/\\]/g, "_")
    .slice(0, 255);
  if (filename === "") {
    throw new ComposeError("INVALID_ATTACHMENT", `${field}.filename`, "Attachment needs a file name");
  }
  const out: ComposedAttachment = {
    filename,
    contentType,
    content: Buffer.isBuffer(a.content) ? a.content : Buffer.from(a.content),
    inline: a.inline === true,
  };
  if (a.contentId != null && a.contentId !== "") {
    const cid = a.contentId.replace(/^<|>$/g, "");
    if (!CONTENT_ID_RE.test(cid)) {
      throw new ComposeError("INVALID_ATTACHMENT", `${field}.contentId`, "Invalid Content-ID");
    }
    out.contentId = cid;
  }
  return out;
}

function composeHeaders(input: ComposeInput): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [name, value] of Object.entries(input.headers ?? {})) {
    if (!HEADER_NAME_RE.test(name) || RESERVED_HEADERS.has(name.toLowerCase())) {
      throw new ComposeError(
        "INVALID_HEADER",
        `headers.${name}`,
        `Header ${JSON.stringify(name)} cannot be set`,
      );
    }
    if (typeof value !== "string" || hasControlChars(value)) {
      throw new ComposeError("INVALID_HEADER", `headers.${name}`, `Header ${name} has control characters`);
    }
    out[name] = value.trim();
  }
  if (input.kind === "AUTO_REPLY") {
    // RFC 3834 §5: marks the mail as an automatic response so other responders stay quiet;
    // X-Auto-Response-Suppress asks Exchange/Outlook not to answer it with an OOF.
    out["Auto-Submitted"] = "auto-replied";
    out["X-Auto-Response-Suppress"] = "All";
  }
  return out;
}

// ---------------------------------------------------------------------------
// Body: agent content, signature, quoted history, template

export interface SignatureTagValues {
  agentName: string;
  agentAlias: string;
  agentEmail: string;
  company: string;
}

const SIGNATURE_TAG_RE = /\{\{\s*(agent\.name|agent\.alias|agent\.email|company)\s*\}\}/g;

/**
 * Replaces `{{agent.name}}`, `{{agent.alias}}`, `{{agent.email}}` and `{{company}}`
 * (spaces inside the braces allowed). Values are HTML-escaped in HTML signatures so an
 * agent named `<script>` stays text. Unknown `{{…}}` tags are left untouched.
 */
export function renderSignatureTags(template: string, values: SignatureTagValues, html: boolean): string {
  return template.replace(SIGNATURE_TAG_RE, (_m, tag: string) => {
    const v =
      tag === "agent.name"
        ? values.agentName
        : tag === "agent.alias"
          ? values.agentAlias
          : tag === "agent.email"
            ? values.agentEmail
            : values.company;
    return html ? escapeHtml(v) : v;
  });
}

function signatureApplies(input: ComposeInput): boolean {
  if (input.kind === "AUTO_REPLY" || !input.signature) return false;
  switch (input.address.signaturePolicy) {
    case "ALL":
      return true;
    case "FIRST_REPLY":
      return input.conversation.isFirstReply;
    default:
      return false;
  }
}

function historyApplies(input: ComposeInput): boolean {
  if (input.kind !== "REPLY" && input.kind !== "REPLY_ALL") return false;
  switch (input.address.historyPolicy) {
    case "ALWAYS":
      return true;
    case "AGENT_DECIDES":
      return input.includeHistory === true;
    default:
      return false;
  }
}

function composeBody(
  input: ComposeInput,
  target: PreviousMessage | null,
  timeZone: string,
  maxQuoted: number,
): { text: string; html: string | null } {
  const bodyHtml = input.body.html?.trim() ? input.body.html : null;
  const bodyText = input.body.text?.trim() ? input.body.text.replace(/\r\n?/g, "\n") : null;
  const templateHtml = input.address.templateHtml?.trim() ? input.address.templateHtml : null;
  const wantHtml = bodyHtml !== null || templateHtml !== null;

  const agentHtml = bodyHtml ? sanitizeContentHtml(bodyHtml) : textToHtml(bodyText ?? "");
  const agentText = bodyText ?? (bodyHtml ? htmlToText(agentHtml) : "");

  let sigHtml = "";
  let sigText = "";
  if (signatureApplies(input) && input.signature) {
    const agent = input.agent;
    const values: SignatureTagValues = {
      agentName: cleanDisplayName(agent?.name),
      agentAlias: cleanDisplayName(agent?.alias || agent?.name),
      agentEmail: stripControls(agent?.email ?? ""),
      company: stripControls(input.companyName),
    };
    const { html, text } = input.signature;
    if (html?.trim()) {
      sigHtml = sanitizeRepeated(renderSignatureTags(html, values, true));
      sigText = text?.trim() ? renderSignatureTags(text, values, false).trim() : textOfRepeated(sigHtml);
    } else if (text?.trim()) {
      sigText = renderSignatureTags(text, values, false).trim();
      sigHtml = textToHtml(sigText);
    }
  }

  // Our own earlier replies are quoted without the history they quoted in turn: that
  // history is the older messages, quoted here already. Quoting them whole made every
  // reply carry all earlier replies whole, doubling in size each round until TOO_LARGE.
  // Mail from elsewhere loses the quote its client appended (usually our previous reply,
  // which carries the history again): quoted whole, each round doubled the size anyway.
  const quoted = (historyApplies(input) ? quotedMessages(input.conversation, target, maxQuoted) : []).map(
    (m) => renderPrevious(m, timeZone, mintedBy(m, input.messageIdDomain) ? "OURS" : "CLIENT"),
  );
  const forwarded = input.kind === "FORWARD" && target ? renderPrevious(target, timeZone) : null;

  // Text: agent text, RFC 3676 §4.3 signature separator "-- ", then quotes.
  const textParts: string[] = [agentText.trim()];
  if (sigText) textParts.push(`-- \n${sigText}`);
  for (const q of quoted) textParts.push(`${q.attribution}\n${quoteText(q.text)}`);
  if (forwarded) textParts.push(forwardHeaderText(forwarded.message, timeZone) + forwarded.text);
  const text = textParts.filter((p) => p !== "").join("\n\n");

  if (!wantHtml) return { text, html: null };

  // Every piece is either sanitised (a balanced fragment) or escaped text inside our own
  // markup, so the joined fragment needs no second sanitising pass.
  const htmlParts: string[] = [agentHtml];
  if (sigHtml) htmlParts.push(`<div class="sb-signature">${sigHtml}</div>`);
  for (const q of quoted) {
    htmlParts.push(
      `<div class="sb-quote"><p>${escapeHtml(q.attribution)}</p>` +
        `<blockquote type="cite" style="margin:0 0 0 0.8ex;border-left:1px solid #cccccc;padding-left:1ex">` +
        `${q.html}</blockquote></div>`,
    );
  }
  if (forwarded) {
    htmlParts.push(
      `<div class="sb-forward"><p>${escapeHtml(forwardHeaderText(forwarded.message, timeZone)).replace(/\n/g, "<br>")}</p>` +
        `${forwarded.html}</div>`,
    );
  }
  const content = htmlParts.join("\n");
  return { text, html: templateHtml ? wrapInTemplate(templateHtml, content) : content };
}

// Signatures and templates repeat from mail to mail; sanitise each distinct one once.
const sanitizeRepeated = memoize(sanitizeContentHtml);
const textOfRepeated = memoize(htmlToText);
const sanitizeTemplateRepeated = memoize(sanitizeTemplateHtml, 64);

interface RenderedPrevious {
  message: PreviousMessage;
  text: string;
  html: string;
  attribution: string;
}

/**
 * Which quote a previous message is rendered without: `OURS`, a mail we composed,
 * without the quotes `composeBody` put at its end; `CLIENT`, mail from elsewhere,
 * without the trailing quote its mail client appended (see `quotes.ts`); `NONE`, whole
 * (a forward).
 */
type QuoteCut = "OURS" | "CLIENT" | "NONE";

/** A previous message's sanitised HTML, text and attribution line, each computed once. */
function renderPrevious(m: PreviousMessage, timeZone: string, cut: QuoteCut = "NONE"): RenderedPrevious {
  let html = m.html?.trim() ? sanitizeContentHtml(m.html) : null;
  let source = m.text?.trim() ? m.text.replace(/\r\n?/g, "\n") : null;
  if (cut === "OURS") {
    if (html !== null) html = withoutQuotedHtml(html);
    if (source !== null) source = withoutQuotedText(source);
  } else if (cut === "CLIENT") {
    // Outlook's quote is recognised by a header block naming this message's subject.
    const cutText = source === null ? null : withoutClientQuoteText(source, m.subject ?? "");
    const cutHtml = html === null ? null : withoutClientQuoteHtml(html, m.subject ?? "");
    // Both parts show the same: a quote found in one part only is cut from the other by
    // deriving it from the part that was cut (HTML made from text has no formatting).
    if (cutText !== null) source = cutText;
    if (cutHtml !== null) html = cutHtml;
    else if (cutText !== null && html !== null) html = textToHtml(cutText);
    if (cutHtml !== null && cutText === null && source !== null) source = htmlToText(cutHtml);
  }
  const text = source?.trim() ? source.trim() : html ? htmlToText(html) : "";
  return {
    message: m,
    text,
    html: html ?? textToHtml(source ?? m.text ?? ""),
    attribution: attribution(m, timeZone),
  };
}

/**
 * True when the message's id was minted with our Message-ID domain, i.e. we composed it
 * (as auto-reply loop protection recognises our own mail), so its quotes are ours and
 * their outline is known exactly; other mail gets the heuristics of `quotes.ts`.
 */
function mintedBy(m: PreviousMessage, messageIdDomain: string): boolean {
  const id = normalizeMessageId(m.messageId);
  return id !== null && id.slice(id.lastIndexOf("@") + 1, -1).toLowerCase() === messageIdDomain.toLowerCase();
}

// The attribution line `attribution()` writes: date and time are always digits, the name
// and address have no line breaks.
const ATTRIBUTION_LINE_RE = /^On \d{4}-\d{2}-\d{2} \d{2}:\d{2}, .* wrote:$/;

/**
 * Text we composed, without its quoted history. `composeBody` ends the text with the
 * quotes, each an attribution line followed by `>` lines (`quoteText` prefixes every
 * line, blank ones too), separated by one blank line from each other and from the
 * agent's text or signature. The cut is at the earliest blank line after which only such
 * blocks follow; a quote the agent typed is kept when their own text or the signature
 * comes after it. Replies stored before their quoting changed have the same outline
 * (the nested quotes are `>` lines), so they lose their history the same way.
 */
function withoutQuotedText(text: string): string {
  const lines = text.replace(/\n+$/, "").split("\n");
  let cut = lines.length;
  let end = lines.length - 1;
  while (end >= 0) {
    let start = end;
    while (start >= 0 && (lines[start] as string).startsWith(">")) start--;
    // lines[start] must be the attribution of the `>` lines after it.
    if (start === end || start < 0 || !ATTRIBUTION_LINE_RE.test(lines[start] as string)) break;
    if (start > 0 && lines[start - 1] !== "") break;
    cut = start;
    end = start - 2;
  }
  return lines.slice(0, cut).join("\n").trimEnd();
}

const QUOTE_DIV = '<div class="sb-quote">';
const DIV_TAG_RE = /<div[\s>]|<\/div>/g;

/**
 * Sanitised HTML we composed, without the `<div class="sb-quote">` blocks `composeBody`
 * wraps each quoted message in (and the template around them stays). On sanitised HTML
 * every `<div` and `</div>` is a tag — `<` in text and attribute values is escaped and
 * tags are balanced — so counting them finds the end of each block.
 */
function withoutQuotedHtml(html: string): string {
  let out = "";
  let from = 0;
  for (;;) {
    const start = html.indexOf(QUOTE_DIV, from);
    if (start < 0) return out + html.slice(from);
    out += html.slice(from, start);
    DIV_TAG_RE.lastIndex = start;
    let depth = 0;
    from = html.length;
    for (let tag = DIV_TAG_RE.exec(html); tag; tag = DIV_TAG_RE.exec(html)) {
      depth += tag[0] === "</div>" ? -1 : 1;
      if (depth === 0) {
        from = DIV_TAG_RE.lastIndex;
        break;
      }
    }
  }
}

/** Messages to quote: the target and those before it, newest first, at most `max`. */
function quotedMessages(
  conversation: ConversationContext,
  target: PreviousMessage | null,
  max: number,
): PreviousMessage[] {
  if (!target) return [];
  const idx = conversation.messages.indexOf(target);
  return conversation.messages
    .slice(0, idx + 1)
    .reverse()
    .slice(0, Math.max(0, max));
}

function attribution(m: PreviousMessage, timeZone: string): string {
  const { date, time } = localDateTime(m.date, timeZone);
  const name = cleanDisplayName(m.from.name);
  const addr = stripControls(m.from.address ?? "");
  const who = name ? `${name} <${addr}>` : addr;
  return `On ${date} ${time}, ${who} wrote:`;
}

function forwardHeaderText(m: PreviousMessage, timeZone: string): string {
  const { date, time } = localDateTime(m.date, timeZone);
  const fmt = (a: MailAddressInput) => {
    const name = cleanDisplayName(a.name);
    const addr = stripControls(a.address ?? "");
    return name ? `${name} <${addr}>` : addr;
  };
  const lines = ["---------- Forwarded message ----------", `From: ${fmt(m.from)}`, `Date: ${date} ${time}`];
  if (m.subject) lines.push(`Subject: ${stripControls(m.subject)}`);
  if (m.to?.length) lines.push(`To: ${m.to.map(fmt).join(", ")}`);
  return `${lines.join("\n")}\n\n`;
}

const CONTENT_PLACEHOLDER = "{{content}}";

/**
 * Checks a branded template: after sanitising it must hold exactly one `{{content}}`
 * in text position (not inside a tag, where the body would become an attribute value).
 * Returns the sanitised halves around the placeholder; the config API calls it to
 * refuse a broken template when it is saved.
 */
export function validateTemplate(templateHtml: string): { before: string; after: string } {
  const clean = sanitizeTemplateRepeated(templateHtml);
  const parts = clean.split(CONTENT_PLACEHOLDER);
  if (parts.length !== 2) {
    throw new ComposeError(
      "INVALID_TEMPLATE",
      "address.templateHtml",
      "The template needs exactly one {{content}} placeholder",
    );
  }
  const before = parts[0] as string;
  if (before.lastIndexOf("<") > before.lastIndexOf(">")) {
    throw new ComposeError(
      "INVALID_TEMPLATE",
      "address.templateHtml",
      "{{content}} must not be inside a tag",
    );
  }
  return { before, after: parts[1] as string };
}

export function wrapInTemplate(templateHtml: string, contentHtml: string): string {
  const { before, after } = validateTemplate(templateHtml);
  return before + contentHtml + after;
}

// ---------------------------------------------------------------------------
// Size

function base64Size(bytes: number): number {
  const chars = Math.ceil(bytes / 3) * 4;
  return chars + Math.ceil(chars / 76) * 2;
}

/**
 * Estimated size of the encoded message: attachments as base64 with CRLF every 76
 * characters; bodies as quoted-printable when ASCII (soft line breaks) and as base64
 * otherwise (what the MIME builder picks for mostly non-ASCII text, and an upper bound
 * for QP of sparse non-ASCII); plus an allowance for headers and MIME boundaries.
 * Slightly high on purpose: receiving servers refuse on the real encoded size.
 */
export function estimateMimeSize(mail: ComposedMail): number {
  const bodyBytes = (s: string) => {
    const bytes = Buffer.byteLength(s, "utf8");
    return bytes === s.length ? bytes + Math.ceil(bytes / 76) * 3 : base64Size(bytes);
  };
  let total = 4096;
  total += bodyBytes(mail.text);
  if (mail.html) total += bodyBytes(mail.html);
  for (const a of mail.attachments) total += base64Size(a.content.length) + 512;
  return total;
}
