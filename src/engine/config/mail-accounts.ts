import { and, asc, eq, ilike, inArray, isNotNull, isNull, sql } from "drizzle-orm";
import type { DbOrTx } from "../../db/client.js";
import {
  emailAddress,
  mailAccount,
  mailboxCheckpoint,
  message,
  queue,
  rejectedMessage,
} from "../../db/schema/index.js";
import { type AccountChecker, type CheckResult, withDeadline } from "../connectivity.js";
import type { EngineContext } from "../context.js";
import type { AccountKind, ImapAfterProcess, SmtpTlsMode } from "../domain.js";
import { ConflictError, NotFoundError, Problems } from "../errors.js";
import { imapPortOf, imapServerKey } from "../ingest/mailbox.js";
import { requireRole, type Viewer } from "../viewer.js";
import { clampPage, type Page } from "./paging.js";
import { likePattern } from "./search.js";
import { checkHeaderText, checkIntRange, checkName, hasChanges, isHostname } from "./validate.js";

/**
 * Whether two IMAP mailbox names name one mailbox: names are case-sensitive except INBOX
 * (RFC 3501 §5.1), also as the first level of a hierarchy ("inbox.Done" is "INBOX.Done" on
 * servers that put folders under it). Moving mail into the mailbox it is read from gives
 * it a new UID above the checkpoint: it is read again, moved again, without end.
 */
export function sameMailboxName(a: string, b: string): boolean {
  const canonical = (name: string) => name.trim().replace(/^inbox(?=$|[./])/i, "INBOX");
  return canonical(a) === canonical(b);
}

/**
 * The name an account stores for the mailbox it reads: trimmed, and INBOX in any case as
 * "INBOX". The name is part of the checkpoint's and the IMAP position's key, so a change of
 * spelling alone must not read the whole mailbox again (migration 0022 did the same for
 * accounts stored before). Other names are case-sensitive and stay as given.
 */
export function canonicalMailboxName(name: string): string {
  const trimmed = name.trim();
  return trimmed.toUpperCase() === "INBOX" ? "INBOX" : trimmed;
}

export type MailAccount = typeof mailAccount.$inferSelect;

/**
 * Fields of a mail account. On update, `undefined` = unchanged. Passwords are write-only:
 * a string sets it, null (or "") clears it; they are stored encrypted and never read back.
 */
export interface MailAccountInput {
  name?: string;
  kind?: AccountKind;
  enabled?: boolean;
  imapHost?: string | null;
  imapPort?: number | null;
  imapTls?: boolean;
  imapUser?: string | null;
  imapPassword?: string | null;
  imapMailbox?: string;
  imapAfterProcess?: ImapAfterProcess;
  imapMoveTo?: string | null;
  smtpHost?: string | null;
  smtpPort?: number | null;
  smtpTlsMode?: SmtpTlsMode;
  smtpUser?: string | null;
  smtpPassword?: string | null;
}

/** Each side of a connection test; imap is null for outbound-only accounts. */
export interface MailAccountTestResult {
  account: MailAccount;
  imap: CheckResult | null;
  smtp: CheckResult;
}

/** SPEC: a test must answer even when a server swallows packets. */
export const ACCOUNT_CHECK_TIMEOUT_MS = 10_000;

const CONNECTION_FIELDS = [
  "kind",
  "imapHost",
  "imapPort",
  "imapTls",
  "imapUser",
  "imapPassword",
  "imapMailbox",
  "smtpHost",
  "smtpPort",
  "smtpTlsMode",
  "smtpUser",
  "smtpPassword",
] as const;

function defaultImapPort(tls: boolean): number {
  return tls ? 993 : 143;
}

function defaultSmtpPort(mode: SmtpTlsMode): number {
  return mode === "TLS" ? 465 : mode === "STARTTLS" ? 587 : 25;
}

const blank = (v: string | null | undefined) => v === null || v === undefined || v.trim() === "";

/**
 * Validates the account as it will be after the change (stored row merged with the input),
 * so cross-field rules (MOVE needs a folder, IMAP needs a host) hold whatever was sent.
 */
function checkAccount(input: MailAccountInput, current: MailAccount | null): Problems {
  const p = new Problems();
  if (!current || input.name !== undefined) {
    if (input.name === undefined) p.add("name", "is required");
    checkName(p, "name", input.name);
  }
  const kind = input.kind ?? current?.kind ?? "INBOUND_OUTBOUND";
  const pick = <K extends keyof MailAccountInput & keyof MailAccount>(k: K) =>
    input[k] !== undefined ? input[k] : current?.[k];

  const host = (field: string, value: string | null | undefined, required: boolean, what: string) => {
    if (blank(value)) {
      if (required) p.add(field, `is required ${what}`);
      return;
    }
    p.check(isHostname(value!.trim()), field, "must be a host name or IP address");
  };
  const text = (field: string, value: string | null | undefined, max: number) =>
    checkHeaderText(p, field, value, max);

  if (kind === "INBOUND_OUTBOUND") {
    host("imapHost", pick("imapHost"), true, "for an account that receives mail");
    if (blank(pick("imapUser"))) p.add("imapUser", "is required for an account that receives mail");
  } else if (!blank(input.imapHost)) {
    p.add("imapHost", "an outbound-only account has no IMAP settings");
  }
  checkIntRange(p, "imapPort", input.imapPort, 1, 65535);
  text("imapUser", input.imapUser, 320);
  text("imapPassword", input.imapPassword, 1000);
  if (input.imapMailbox !== undefined) {
    p.check(input.imapMailbox.trim().length >= 1, "imapMailbox", "is required");
    text("imapMailbox", input.imapMailbox, 200);
  }
  const afterProcess = input.imapAfterProcess ?? current?.imapAfterProcess ?? "SEEN";
  const moveTo = pick("imapMoveTo");
  if (kind === "INBOUND_OUTBOUND" && afterProcess === "MOVE") {
    if (blank(moveTo)) p.add("imapMoveTo", "is required when processed mail is moved");
    else if (sameMailboxName(moveTo!, input.imapMailbox ?? current?.imapMailbox ?? "INBOX"))
      p.add("imapMoveTo", "must differ from the mailbox that is read");
  }
  text("imapMoveTo", input.imapMoveTo, 200);

  host("smtpHost", pick("smtpHost"), true, "to send mail");
  checkIntRange(p, "smtpPort", input.smtpPort, 1, 65535);
  text("smtpUser", input.smtpUser, 320);
  text("smtpPassword", input.smtpPassword, 1000);
  return p;
}

function seal(ctx: EngineContext, value: string | null | undefined): string | null | undefined {
  if (value === undefined) return undefined;
  return blank(value) ? null : ctx.secrets.encrypt(value!);
}

function trimOrNull(v: string | null | undefined): string | null | undefined {
  if (v === undefined) return undefined;
  return blank(v) ? null : v!.trim();
}

/** Input → columns; undefined keys are dropped by drizzle's `set`, so omitted fields stay. */
function columns(ctx: EngineContext, input: MailAccountInput, current: MailAccount | null) {
  const kind = input.kind ?? current?.kind ?? "INBOUND_OUTBOUND";
  const imapTls = input.imapTls ?? current?.imapTls ?? true;
  const smtpTlsMode = input.smtpTlsMode ?? current?.smtpTlsMode ?? "STARTTLS";
  const values = {
    name: input.name?.trim(),
    kind: input.kind,
    enabled: input.enabled,
    imapHost: trimOrNull(input.imapHost),
    imapPort: input.imapPort,
    imapTls: input.imapTls,
    imapUser: trimOrNull(input.imapUser),
    imapPasswordEnc: seal(ctx, input.imapPassword),
    imapMailbox: input.imapMailbox === undefined ? undefined : canonicalMailboxName(input.imapMailbox),
    imapAfterProcess: input.imapAfterProcess,
    imapMoveTo: trimOrNull(input.imapMoveTo),
    smtpHost: trimOrNull(input.smtpHost),
    smtpPort: input.smtpPort,
    smtpTlsMode: input.smtpTlsMode,
    smtpUser: trimOrNull(input.smtpUser),
    smtpPasswordEnc: seal(ctx, input.smtpPassword),
  };
  // A port left empty (or cleared with null) takes the standard port of the TLS mode.
  const effective = (v: number | null | undefined, old: number | null | undefined) =>
    v !== undefined ? v : (old ?? null);
  if (effective(input.imapPort, current?.imapPort) === null) values.imapPort = defaultImapPort(imapTls);
  if (effective(input.smtpPort, current?.smtpPort) === null) values.smtpPort = defaultSmtpPort(smtpTlsMode);
  if (kind === "OUTBOUND_ONLY") {
    // Outbound-only: no IMAP is ever opened, so no IMAP credentials are kept either.
    Object.assign(values, { imapHost: null, imapPort: null, imapUser: null, imapPasswordEnc: null });
  }
  // New connection settings invalidate the last test result.
  const reset = !current || CONNECTION_FIELDS.some((f) => input[f] !== undefined);
  return {
    ...values,
    ...(reset ? { status: "UNKNOWN" as const, lastError: null, lastCheckedAt: null } : {}),
  };
}

export async function listMailAccounts(
  ctx: EngineContext,
  viewer: Viewer,
  filter: { search?: string | null; includeArchived?: boolean },
  page: Page,
): Promise<MailAccount[]> {
  requireRole(viewer, "ADMIN");
  const { limit, offset } = clampPage(page);
  return ctx.db
    .select()
    .from(mailAccount)
    .where(
      and(
        eq(mailAccount.tenantId, viewer.tenantId),
        filter.includeArchived ? undefined : isNull(mailAccount.archivedAt),
        filter.search ? ilike(mailAccount.name, likePattern(filter.search)) : undefined,
      ),
    )
    .orderBy(asc(sql`lower(${mailAccount.name})`), asc(mailAccount.id))
    .limit(limit)
    .offset(offset);
}

async function findAccount(db: DbOrTx, viewer: Viewer, id: string): Promise<MailAccount> {
  const [row] = await db
    .select()
    .from(mailAccount)
    .where(and(eq(mailAccount.id, id), eq(mailAccount.tenantId, viewer.tenantId)));
  if (!row) throw new NotFoundError("MailAccount", id);
  return row;
}

/** Mail accounts hold server names and user names: configuration, so ADMIN only. */
export async function getMailAccount(ctx: EngineContext, viewer: Viewer, id: string): Promise<MailAccount> {
  requireRole(viewer, "ADMIN");
  return findAccount(ctx.db, viewer, id);
}

export async function createMailAccount(
  ctx: EngineContext,
  viewer: Viewer,
  input: MailAccountInput,
): Promise<MailAccount> {
  requireRole(viewer, "ADMIN");
  checkAccount(input, null).throwIfAny();
  const values = columns(ctx, input, null);
  const [row] = await ctx.db
    .insert(mailAccount)
    .values({ ...values, tenantId: viewer.tenantId, name: values.name! })
    .returning();
  return row!;
}

export async function updateMailAccount(
  ctx: EngineContext,
  viewer: Viewer,
  id: string,
  input: MailAccountInput,
): Promise<MailAccount> {
  requireRole(viewer, "ADMIN");
  return ctx.db.transaction(async (tx) => {
    // FOR UPDATE: a concurrent queue change cannot slip a default address in between the check and the write.
    const [current] = await tx
      .select()
      .from(mailAccount)
      .where(and(eq(mailAccount.id, id), eq(mailAccount.tenantId, viewer.tenantId)))
      .for("update");
    if (!current) throw new NotFoundError("MailAccount", id);
    // An archived account is never read or sent through again: `enabled: true` on it was
    // accepted and answered `enabled: true` while nothing fetched (config probe, session 17).
    if (current.archivedAt) {
      throw new ConflictError("this account is archived: create a new one to use it", "ARCHIVED");
    }
    const p = checkAccount(input, current);
    if (input.kind === "OUTBOUND_ONLY" && current.kind !== "OUTBOUND_ONLY") {
      const used = await queuesDefaultingToAccount(tx, viewer.tenantId, id);
      if (used.length > 0) {
        p.add(
          "kind",
          `an address of this account is the default address of queue ${used.map((n) => JSON.stringify(n)).join(", ")}; outbound-only accounts cannot be`,
        );
      }
    }
    p.throwIfAny();
    // Checked on the input: `columns` also derives values (an outbound-only account's
    // cleared IMAP settings, default ports) that would turn "nothing given" into a write.
    if (!hasChanges(input)) return current;
    const [row] = await tx
      .update(mailAccount)
      .set(columns(ctx, input, current))
      .where(and(eq(mailAccount.id, id), eq(mailAccount.tenantId, viewer.tenantId)))
      .returning();
    if (serverOf(row!) !== serverOf(current)) await forgetImapPositions(tx, id);
    return row!;
  });
}

/** Which server and login an account reads (`imapServerKey`). */
function serverOf(a: MailAccount): string {
  return imapServerKey({ host: a.imapHost ?? "", port: imapPortOf(a), user: a.imapUser ?? "" });
}

/**
 * Another server or login is another mailbox: its UIDs and UIDVALIDITY say nothing about
 * the old one's. Until 2026-11-23 the checkpoint stayed, and when the new folder had the
 * old one's UIDVALIDITY (Dovecot takes the second the folder was made; some servers use
 * one value for all) its mail up to the old checkpoint was taken as read and never
 * fetched, and the old positions made the rest duplicates. Now the account's checkpoints
 * are reset as a UIDVALIDITY change resets them, and its stored and rejected rows lose
 * their IMAP positions (in the edit's transaction): the new mailbox is read from its
 * first UID as a resync, and what is the same mail as before (a host renamed, the same
 * mailbox) is still one message by Message-ID and content. A worker still fetching with the old settings commits nothing more
 * (`advanceCheckpoint`).
 */
async function forgetImapPositions(tx: DbOrTx, accountId: string): Promise<void> {
  // As a UIDVALIDITY change is: no UIDVALIDITY is 0, so the next sync of each folder sees a
  // new one and reads it whole as a resync (mail past the retention period is recorded as
  // expired, not opened as new work: a host retyped as an alias of the same server would
  // otherwise bring back every purged mail).
  await tx
    .update(mailboxCheckpoint)
    .set({ uidValidity: 0, lastUid: 0, resyncThroughUid: null, batchFirstUid: null, batchAction: null })
    .where(eq(mailboxCheckpoint.accountId, accountId));
  const none = { imapMailbox: null, uidValidity: null, uid: null };
  await tx
    .update(message)
    .set(none)
    .where(and(eq(message.accountId, accountId), isNotNull(message.uid)));
  await tx
    .update(rejectedMessage)
    .set(none)
    .where(and(eq(rejectedMessage.accountId, accountId), isNotNull(rejectedMessage.uid)));
}

/** Names of active queues whose default address belongs to the account. */
export async function queuesDefaultingToAccount(
  db: DbOrTx,
  tenantId: string,
  accountId: string,
): Promise<string[]> {
  const rows = await db
    .select({ name: queue.name })
    .from(queue)
    .innerJoin(emailAddress, eq(emailAddress.id, queue.defaultAddressId))
    .where(and(eq(queue.tenantId, tenantId), isNull(queue.archivedAt), eq(emailAddress.accountId, accountId)))
    .orderBy(asc(queue.name));
  return rows.map((r) => r.name);
}

/** Archived, not deleted: messages keep pointing at the account they came through. */
export async function archiveMailAccount(
  ctx: EngineContext,
  viewer: Viewer,
  id: string,
): Promise<MailAccount> {
  requireRole(viewer, "ADMIN");
  await findAccount(ctx.db, viewer, id);
  const [row] = await ctx.db
    .update(mailAccount)
    .set({ archivedAt: ctx.clock.now(), enabled: false })
    .where(and(eq(mailAccount.id, id), eq(mailAccount.tenantId, viewer.tenantId)))
    .returning();
  return row!;
}

function describeFailure(side: string, r: CheckResult | null): string | null {
  if (!r || r.ok) return null;
  // A rejected IMAP login reads "IMAP: auth: …", as the connector's own "auth: …": the
  // supervisor parks the account on it (`parkedAsInvalid`) instead of logging in again with
  // the password the test just saw refused (servers lock mailboxes after repeated failures).
  return `${side}: ${side === "IMAP" && r.kind === "AUTH" ? "auth: " : ""}${r.error ?? "failed"}`;
}

/**
 * Checks IMAP and SMTP separately (each bounded by the timeout) and records the outcome.
 * The network round trips run outside any transaction (STYLE 11); only the final status
 * write touches the database.
 */
export async function testMailAccount(
  ctx: EngineContext,
  viewer: Viewer,
  id: string,
  opts: { checker?: AccountChecker; timeoutMs?: number } = {},
): Promise<MailAccountTestResult> {
  requireRole(viewer, "ADMIN");
  const checker = opts.checker ?? ctx.accountChecker;
  if (!checker)
    throw new ConflictError("Connection tests are not available in this deployment", "UNAVAILABLE");
  const timeoutMs = opts.timeoutMs ?? ACCOUNT_CHECK_TIMEOUT_MS;
  const acc = await findAccount(ctx.db, viewer, id);
  const open = (sealed: string | null) => (sealed ? ctx.secrets.decrypt(sealed) : null);

  const imapCheck: Promise<CheckResult | null> =
    acc.kind === "OUTBOUND_ONLY"
      ? Promise.resolve(null)
      : acc.imapHost && acc.imapUser
        ? withDeadline(
            checker.checkImap(
              {
                host: acc.imapHost,
                port: acc.imapPort ?? defaultImapPort(acc.imapTls),
                tls: acc.imapTls,
                user: acc.imapUser,
                password: open(acc.imapPasswordEnc) ?? "",
                mailbox: acc.imapMailbox,
              },
              timeoutMs,
            ),
            timeoutMs,
          )
        : Promise.resolve({ ok: false, error: "IMAP host and user are not set", kind: "PROTOCOL" as const });
  const smtpCheck: Promise<CheckResult> = acc.smtpHost
    ? withDeadline(
        checker.checkSmtp(
          {
            host: acc.smtpHost,
            port: acc.smtpPort ?? defaultSmtpPort(acc.smtpTlsMode),
            tlsMode: acc.smtpTlsMode,
            user: acc.smtpUser,
            password: open(acc.smtpPasswordEnc),
          },
          timeoutMs,
        ),
        timeoutMs,
      )
    : Promise.resolve({ ok: false, error: "SMTP host is not set", kind: "PROTOCOL" as const });
  const [imap, smtp] = await Promise.all([imapCheck, smtpCheck]);

  const errors = [describeFailure("IMAP", imap), describeFailure("SMTP", smtp)].filter(
    (e): e is string => e !== null,
  );
  const [row] = await ctx.db
    .update(mailAccount)
    .set({
      status: errors.length === 0 ? "VALID" : "INVALID",
      lastError: errors.length === 0 ? null : errors.join("; ").slice(0, 2000),
      lastCheckedAt: ctx.clock.now(),
      // A verdict, not an edit: the running worker's settings (its version) are unchanged,
      // so it must not restart for it.
      updatedAt: sql`${mailAccount.updatedAt}`,
    })
    .where(
      and(
        eq(mailAccount.id, id),
        eq(mailAccount.tenantId, viewer.tenantId),
        // Only about the settings tested: an admin who saved new ones while the test ran
        // (a slow check of the old password) must not get the old verdict. Since a refused
        // login parks the account, that verdict stopped the corrected account's fetching
        // (re-probe, session 17). Versions are compared at the millisecond, as the workers do.
        sql`date_trunc('milliseconds', ${mailAccount.updatedAt}) = ${acc.updatedAt.toISOString()}::timestamptz`,
      ),
    )
    .returning();
  const recorded = row !== undefined;
  const account = row ?? (await findAccount(ctx.db, viewer, id));
  // Outcome only: never the settings, which include the user name and (decrypted) password.
  ctx.log.info(
    {
      tenantId: viewer.tenantId,
      accountId: id,
      recorded,
      status: account.status,
      imap: imap?.kind ?? imap?.ok,
      smtp: smtp.kind ?? smtp.ok,
    },
    recorded
      ? "mail account tested"
      : "mail account tested; its settings changed meanwhile: verdict not recorded",
  );
  return { account, imap, smtp };
}

/** Batch load for DataLoaders, aligned with `ids`; all null for non-admins (accounts are ADMIN-only). */
export async function loadMailAccounts(
  ctx: EngineContext,
  viewer: Viewer,
  ids: readonly string[],
): Promise<(MailAccount | null)[]> {
  if (viewer.role !== "ADMIN" || ids.length === 0) return ids.map(() => null);
  const rows = await ctx.db
    .select()
    .from(mailAccount)
    .where(and(eq(mailAccount.tenantId, viewer.tenantId), inArray(mailAccount.id, [...ids])));
  const byId = new Map(rows.map((r) => [r.id, r]));
  return ids.map((id) => byId.get(id) ?? null);
}
