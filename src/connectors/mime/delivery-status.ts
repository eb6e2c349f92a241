import type { DeliveryStatus, DeliveryStatusRecipient } from "../../engine/ingest/parsed-mail.js";
import { normalizeMessageId } from "../../engine/ingest/parsed-mail.js";

/**
 * RFC 3464 message/delivery-status body: one block of per-message fields, then one
 * block per recipient, blocks separated by blank lines, fields folded like RFC 5322
 * headers. Tolerant: unknown fields are ignored and a report without recipient blocks
 * still yields its per-message fields.
 */

type Fields = Map<string, string>;

function parseBlocks(body: string): Fields[] {
  const blocks: Fields[] = [];
  let current: Fields = new Map();
  let lastKey: string | null = null;
  for (const line of body.replace(/\r\n?/g, "\n").split("\n")) {
    if (line.trim() === "") {
      if (current.size > 0) blocks.push(current);
      current = new Map();
      lastKey = null;
      continue;
    }
    if (/^[ \t]/.test(line) && lastKey) {
      current.set(lastKey, `${current.get(lastKey) ?? ""} ${line.trim()}`);
      continue;
    }
    const m = /^([!-9;-~]+)\s*:\s*(.*)$/.exec(line);
    if (!m) continue;
    const key = (m[1] ?? "").toLowerCase();
    lastKey = key;
    // The first occurrence wins; RFC 3464 fields are single-valued.
    if (!current.has(key)) current.set(key, (m[2] ?? "").trim());
  }
  if (current.size > 0) blocks.push(current);
  return blocks;
}

/** Drops the `type;` prefix of typed fields ("rfc822; a@b", "smtp; 550 …", "dns; mx"). */
function untyped(value: string | undefined): string | null {
  if (value === undefined) return null;
  const m = /^[\w-]+\s*;\s*(.*)$/s.exec(value);
  const v = (m ? (m[1] ?? "") : value).trim();
  return v === "" ? null : v;
}

function address(value: string | undefined): string | null {
  const v = untyped(value);
  return v === null ? null : v.replace(/^<|>$/g, "").trim() || null;
}

export function parseDeliveryStatus(body: string): Omit<DeliveryStatus, "originalMessageId"> {
  const blocks = parseBlocks(body);
  const perMessage = blocks[0] ?? new Map<string, string>();
  const recipients: DeliveryStatusRecipient[] = [];
  // A block is a recipient block when it names a recipient or an action; some MTAs put
  // the per-message block's fields and the first recipient's in one block.
  const candidates = blocks.filter(
    (b) => b.has("final-recipient") || b.has("original-recipient") || b.has("action"),
  );
  for (const b of candidates) {
    const status = b.get("status");
    recipients.push({
      finalRecipient: address(b.get("final-recipient")),
      originalRecipient: address(b.get("original-recipient")),
      action: b.get("action")?.trim().toLowerCase().split(/[\s(]/)[0] || null,
      status: status ? (/\d\.\d{1,3}\.\d{1,3}/.exec(status)?.[0] ?? status.trim()) : null,
      diagnosticCode: untyped(b.get("diagnostic-code")),
      remoteMta: untyped(b.get("remote-mta")),
    });
  }
  return {
    reportingMta: untyped(perMessage.get("reporting-mta")),
    originalEnvelopeId: perMessage.get("original-envelope-id")?.trim() || null,
    recipients,
  };
}

/** The Message-ID field of a header block (the returned message or its headers). */
export function messageIdOfHeaderBlock(text: string): string | null {
  const head = text.replace(/\r\n?/g, "\n").split(/\n\n/, 1)[0] ?? "";
  const unfolded = head.replace(/\n[ \t]+/g, " ");
  const m = /^message-id\s*:\s*(.*)$/im.exec(unfolded);
  return m ? normalizeMessageId(m[1]) : null;
}
