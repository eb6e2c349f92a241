import { randomBytes } from "node:crypto";

/** Builds raw RFC 5322 messages (CRLF) for parser tests. */

export interface RawAttachment {
  filename: string;
  contentType: string;
  content: Buffer;
  contentId?: string;
  inline?: boolean;
}

export interface RawMailSpec {
  from?: string;
  to?: string;
  subject?: string;
  messageId?: string | null;
  date?: string | null;
  headers?: Record<string, string>;
  text?: string;
  html?: string;
  attachments?: RawAttachment[];
}

function base64Lines(buf: Buffer): string {
  return (buf.toString("base64").match(/.{1,76}/g) ?? []).join("\r\n");
}

/** RFC 2231 encoding of a parameter value (charset''percent-encoded). */
function rfc2231(value: string): string {
  return `UTF-8''${encodeURIComponent(value).replace(/['()*]/g, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`)}`;
}

export function buildRawMail(spec: RawMailSpec = {}): Buffer {
  const lines: string[] = [];
  lines.push(`From: ${spec.from ?? "Alice <alice@customer.example>"}`);
  lines.push(`To: ${spec.to ?? "support@acme.example"}`);
  lines.push(`Subject: ${spec.subject ?? "Hello"}`);
  if (spec.date !== null) lines.push(`Date: ${spec.date ?? "Wed, 01 May 2024 10:00:00 +0000"}`);
  if (spec.messageId !== null)
    lines.push(`Message-ID: <${spec.messageId ?? `${randomBytes(8).toString("hex")}@customer.example`}>`);
  for (const [k, v] of Object.entries(spec.headers ?? {})) lines.push(`${k}: ${v}`);
  lines.push("MIME-Version: 1.0");

  const text = spec.text ?? "Hello, I need help.";
  const textPart = `Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n${text}`;
  let body: string;
  let topType: string;
  const alt = spec.html
    ? `Content-Type: multipart/alternative; boundary="alt-b"\r\n\r\n--alt-b\r\n${textPart}\r\n--alt-b\r\nContent-Type: text/html; charset=utf-8\r\n\r\n${spec.html}\r\n--alt-b--`
    : textPart;
  const atts = spec.attachments ?? [];
  if (atts.length === 0) {
    const sep = alt.indexOf("\r\n\r\n");
    topType = alt.slice(0, sep);
    body = alt.slice(sep + 4);
  } else {
    topType = 'Content-Type: multipart/mixed; boundary="mix-b"';
    const parts = [alt];
    for (const a of atts) {
      const disp = a.inline ? "inline" : "attachment";
      const cid = a.contentId ? `Content-ID: <${a.contentId}>\r\n` : "";
      parts.push(
        `Content-Type: ${a.contentType}; name*=${rfc2231(a.filename)}\r\nContent-Disposition: ${disp}; filename*=${rfc2231(a.filename)}\r\n${cid}Content-Transfer-Encoding: base64\r\n\r\n${base64Lines(a.content)}`,
      );
    }
    body = `${parts.map((p) => `--mix-b\r\n${p}\r\n`).join("")}--mix-b--`;
  }
  lines.push(topType);
  return Buffer.from(`${lines.join("\r\n")}\r\n\r\n${body}\r\n`, "utf8");
}

/** A message of roughly `bytes` bytes: mostly one base64 attachment. */
export function buildLargeMail(bytes: number): Buffer {
  // base64 grows 4/3, plus CRLF every 76 characters.
  const raw = Math.floor(((bytes - 2000) * 3) / 4 / (78 / 76));
  return buildRawMail({
    subject: "Large scan",
    text: "See the attached scan.",
    attachments: [
      { filename: "scan.bin", contentType: "application/octet-stream", content: randomBytes(raw) },
    ],
  });
}

/**
 * An RFC 3464 delivery report to `to`: the final recipient gone@customer.example failed
 * permanently (5.1.1, "550 5.1.1 no such user"). `messageId` gives the report its own
 * Message-ID; `original` adds the returned headers of the mail it reports on.
 */
export function buildDeliveryReport(
  to: string,
  opts: { messageId?: string; original?: { messageId: string; subject: string } } = {},
): Buffer {
  return Buffer.from(
    [
      "From: MAILER-DAEMON@mx.customer.example",
      `To: ${to}`,
      "Subject: Undelivered Mail Returned to Sender",
      ...(opts.messageId ? [`Message-ID: <${opts.messageId}>`] : []),
      "MIME-Version: 1.0",
      'Content-Type: multipart/report; report-type=delivery-status; boundary="b"',
      "",
      "--b",
      "Content-Type: text/plain",
      "",
      "Delivery failed.",
      "--b",
      "Content-Type: message/delivery-status",
      "",
      "Reporting-MTA: dns; mx.customer.example",
      "",
      "Final-Recipient: rfc822; gone@customer.example",
      "Action: failed",
      "Status: 5.1.1",
      "Diagnostic-Code: smtp; 550 5.1.1 no such user",
      "",
      ...(opts.original
        ? [
            "--b",
            "Content-Type: text/rfc822-headers",
            "",
            `Message-ID: <${opts.original.messageId}>`,
            `Subject: ${opts.original.subject}`,
            "",
          ]
        : []),
      "--b--",
      "",
    ].join("\r\n"),
  );
}

/**
 * The text of an Exim bounce (no RFC 3464 report) for gone6@customer.example, naming the
 * host by `ip` before the SMTP reply, then the returned original's headers and body.
 */
export function eximFailureLines(opts: {
  ip?: string;
  original: { messageId: string; from: string; subject?: string };
}): string[] {
  return [
    "This message was created automatically by mail delivery software.",
    "",
    "A message that you sent could not be delivered to one or more of its",
    "recipients. This is a permanent error. The following address(es) failed:",
    "",
    "  gone6@customer.example",
    `    host mx.customer.example [${opts.ip ?? "1.2.3.4"}]`,
    "    SMTP error from remote mail server after RCPT TO:<gone6@customer.example>:",
    "    550 5.1.1 User unknown",
    "",
    "------ This is a copy of the message, including all the headers. ------",
    "",
    `Return-path: <${opts.original.from}>`,
    `Message-ID: <${opts.original.messageId}>`,
    ...(opts.original.subject === undefined
      ? []
      : [`From: ${opts.original.from}`, `Subject: ${opts.original.subject}`, "", "hello"]),
  ];
}
