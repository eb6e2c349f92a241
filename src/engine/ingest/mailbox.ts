import { and, eq, isNotNull, isNull, sql } from "drizzle-orm";
import {
  emailAddress,
  mailAccount,
  mailboxCheckpoint,
  rejectedMessage,
  tenant,
} from "../../db/schema/index.js";
import { REFUSED_IMAP_LOGIN } from "../connectivity.js";
import type { EngineContext } from "../context.js";
import type { AccountStatus, ImapAfterProcess } from "../domain.js";
import { processingRoom } from "./ingest.js";

/** What an IMAP worker needs of a mail account; the password is decrypted only here. */
export interface ImapAccount {
  id: string;
  tenantId: string;
  host: string;
  port: number;
  tls: boolean;
  user: string;
  password: string;
  mailbox: string;
  afterProcess: ImapAfterProcess;
  moveTo: string | null;
  /** Changes whenever an admin edits the account: a running worker restarts with the new settings. */
  version: string;
}

type AccountRow = typeof mailAccount.$inferSelect;

/** The port an account connects to: its own, or the standard one of its TLS mode. */
export function imapPortOf(row: Pick<AccountRow, "imapPort" | "imapTls">): number {
  return row.imapPort ?? (row.imapTls ? 993 : 143);
}

/**
 * Which server and login a mailbox is on: host in any case, port, user. Another one is
 * another mailbox (its UIDs say nothing of the old one's): `updateMailAccount` resets the
 * positions when it changes, the connector keeps fetch failures per key, and
 * `advanceCheckpoint` compares the same three columns in SQL.
 */
export function imapServerKey(server: { host: string; port: number; user: string }): string {
  return `${server.host.toLowerCase()}:${server.port}/${server.user}`;
}

function toImapAccount(ctx: EngineContext, row: AccountRow): ImapAccount {
  return {
    id: row.id,
    tenantId: row.tenantId,
    host: row.imapHost!,
    port: imapPortOf(row),
    tls: row.imapTls,
    user: row.imapUser ?? "",
    password: row.imapPasswordEnc ? ctx.secrets.decrypt(row.imapPasswordEnc) : "",
    mailbox: row.imapMailbox,
    afterProcess: row.imapAfterProcess,
    moveTo: row.imapMoveTo,
    version: row.updatedAt.toISOString(),
  };
}

/**
 * Enabled, not archived INBOUND_OUTBOUND accounts with IMAP settings: the ones a worker
 * fetches from. An account marked INVALID (bad credentials) is left alone until an admin
 * edits it, because retrying a wrong password only gets the mailbox locked.
 */
export async function listImapAccounts(ctx: EngineContext): Promise<ImapAccount[]> {
  const rows = await ctx.db
    .select()
    .from(mailAccount)
    .where(
      and(
        eq(mailAccount.enabled, true),
        isNull(mailAccount.archivedAt),
        eq(mailAccount.kind, "INBOUND_OUTBOUND"),
        isNotNull(mailAccount.imapHost),
      ),
    );
  return rows.filter((r) => !parkedAsInvalid(r)).map((r) => toImapAccount(ctx, r));
}

/**
 * Rejected credentials, not edited since that verdict: wait for an admin (status writes
 * keep updatedAt). Other INVALID verdicts (a missing folder) keep being retried slowly.
 * The verdict is the connector's ("auth: …") or a connection test's ("IMAP: auth: …"; until
 * 2026-11-23 a test's rejected login did not park the account, and the supervisor logged
 * in again with the refused password).
 */
function parkedAsInvalid(r: AccountRow): boolean {
  const error = r.lastError ?? "";
  return (
    r.status === "INVALID" &&
    REFUSED_IMAP_LOGIN.some((p) => error.startsWith(p)) &&
    r.lastCheckedAt !== null &&
    r.lastCheckedAt >= r.updatedAt
  );
}

/**
 * Whether a worker parked after its login was rejected may log in again: a verdict recorded
 * after it parked (`since`), about the settings it runs with (`version`), says the IMAP
 * login works — `testMailAccount` found the account VALID (or failed only its SMTP side),
 * or another instance's worker got in. Until then nothing logs in with that password again
 * (retrying a wrong one only gets the mailbox locked). An admin's edit is a new version:
 * the supervisor restarts the worker for it.
 */
export async function parkedAccountCleared(
  ctx: EngineContext,
  accountId: string,
  version: string,
  since: Date,
): Promise<boolean> {
  const [row] = await ctx.db
    .select({
      status: mailAccount.status,
      lastError: mailAccount.lastError,
      lastCheckedAt: mailAccount.lastCheckedAt,
      updatedAt: mailAccount.updatedAt,
    })
    .from(mailAccount)
    .where(eq(mailAccount.id, accountId));
  if (!row || row.updatedAt.toISOString() !== version) return false;
  if (row.lastCheckedAt === null || row.lastCheckedAt <= since) return false;
  return row.status === "VALID" || (row.lastError ?? "").startsWith("SMTP:");
}

export async function getImapAccount(ctx: EngineContext, accountId: string): Promise<ImapAccount | null> {
  const [row] = await ctx.db.select().from(mailAccount).where(eq(mailAccount.id, accountId));
  if (!row?.enabled || row.archivedAt || row.kind !== "INBOUND_OUTBOUND" || !row.imapHost) return null;
  if (parkedAsInvalid(row)) return null;
  return toImapAccount(ctx, row);
}

/** The committed position in a mailbox; null before the first message. */
export async function getCheckpoint(
  ctx: EngineContext,
  accountId: string,
  mailbox: string,
): Promise<{
  uidValidity: number;
  lastUid: number;
  resyncThroughUid: number | null;
  batchFirstUid: number | null;
  batchAction: ImapAfterProcess | null;
} | null> {
  const [row] = await ctx.db
    .select({
      uidValidity: mailboxCheckpoint.uidValidity,
      lastUid: mailboxCheckpoint.lastUid,
      resyncThroughUid: mailboxCheckpoint.resyncThroughUid,
      batchFirstUid: mailboxCheckpoint.batchFirstUid,
      batchAction: mailboxCheckpoint.batchAction,
    })
    .from(mailboxCheckpoint)
    .where(and(eq(mailboxCheckpoint.accountId, accountId), eq(mailboxCheckpoint.mailbox, mailbox)));
  return row ?? null;
}

/**
 * The connector's verdict on an account. `updatedAt` is deliberately left alone: it is the
 * admin's edit marker that restarts a worker, and a status write must not look like one.
 */
export async function recordAccountStatus(
  ctx: EngineContext,
  accountId: string,
  /** Null: leave the status as it is (a passing failure), record only the error. */
  status: AccountStatus | null,
  lastError: string | null,
  /**
   * The settings the verdict is about (`ImapAccount.version`): when an admin edited the
   * account since, the verdict is about settings that are gone and is not written — a
   * worker still on the old password would otherwise park the account, new password and
   * all, as INVALID until the next edit.
   */
  version?: string,
): Promise<void> {
  await ctx.db
    .update(mailAccount)
    .set({
      status: status ?? sql`${mailAccount.status}`,
      lastError: lastError?.slice(0, 1000) ?? null,
      lastCheckedAt: ctx.clock.now(),
      updatedAt: sql`${mailAccount.updatedAt}`,
    })
    .where(
      version === undefined
        ? eq(mailAccount.id, accountId)
        : and(
            eq(mailAccount.id, accountId),
            sql`date_trunc('milliseconds', ${mailAccount.updatedAt}) = ${version}::timestamptz`,
          ),
    );
}

/**
 * Why a mailbox is not fetched from right now; the mail stays on the server and the
 * worker looks again every `pauseRecheckSeconds`. `email_off`: the tenant switched its
 * email channel off (which stops ingest, as SMTP's refused recipients do);
 * `processing_limit`: more open conversations than the tenant's limit (SPEC §3);
 * `account_off`: an admin disabled or archived the account (its worker is stopped at the
 * supervisor's next reload; until 2026-11-23 it went on draining the mailbox until then,
 * up to `IMAP_POLL_SECONDS`, and left its last batch without the server action);
 * `no_address`: no (unarchived) address points at the account, so its mail has no queue
 * to go to (until 2026-11-23 that was a permanent error: the account was marked INVALID
 * and the worker waited a minute between tries).
 */
export type FetchPause = "email_off" | "processing_limit" | "account_off" | "no_address";

export async function fetchPause(
  ctx: EngineContext,
  tenantId: string,
  /** The account fetched from: checked too when given (one statement either way). */
  accountId?: string,
): Promise<{ pause: FetchPause | null; room: number }> {
  const [t] = await ctx.db
    .select({
      emailEnabled: tenant.emailEnabled,
      limit: tenant.processingLimit,
      accountOn: accountId
        ? sql<boolean>`EXISTS (SELECT 1 FROM ${mailAccount} a WHERE a.id = ${accountId}::uuid
                         AND a.enabled AND a.archived_at IS NULL)`
        : sql<boolean>`true`,
      hasAddress: accountId
        ? sql<boolean>`EXISTS (SELECT 1 FROM ${emailAddress} e WHERE e.account_id = ${accountId}::uuid
                         AND e.archived_at IS NULL)`
        : sql<boolean>`true`,
    })
    .from(tenant)
    .where(eq(tenant.id, tenantId));
  const none = Number.POSITIVE_INFINITY;
  if (!t) return { pause: null, room: none };
  if (!t.accountOn) return { pause: "account_off", room: 0 };
  if (!t.emailEnabled) return { pause: "email_off", room: 0 };
  if (!t.hasAddress) return { pause: "no_address", room: 0 };
  if (t.limit === null) return { pause: null, room: none };
  // How many messages the next batch may hold: it is cut to the room left under the limit.
  const room = await processingRoom(ctx, tenantId, t.limit);
  return { pause: room <= 0 ? "processing_limit" : null, room };
}

/**
 * Which of an account's addresses an IMAP message belongs to, for a whole batch: the
 * account's addresses are read once and each message picks the first of its candidate recipients, best first (the IMAP
 * connector's `recipientCandidates`: delivery fields and To/Cc) that is one of them,
 * else the first address. Null when the account has no address (a `no_address` pause).
 */
export async function accountAddressResolver(
  ctx: EngineContext,
  accountId: string,
): Promise<((recipients: string[]) => { tenantId: string; addressId: string }) | null> {
  const rows = await ctx.db
    .select({ id: emailAddress.id, tenantId: emailAddress.tenantId, address: emailAddress.address })
    .from(emailAddress)
    .where(and(eq(emailAddress.accountId, accountId), isNull(emailAddress.archivedAt)))
    .orderBy(emailAddress.createdAt);
  if (rows.length === 0) return null;
  const byAddress = new Map(rows.map((r) => [r.address.toLowerCase(), r]));
  return (recipients) => {
    const hit = recipients.map((r) => byAddress.get(r.toLowerCase())).find((r) => r) ?? rows[0]!;
    return { tenantId: hit.tenantId, addressId: hit.id };
  };
}

/**
 * UIDs of a folder recorded as `fetch_failed`: the IMAP server failed to deliver them, and
 * they were passed over (connectors/fetch-trouble.ts). No server action is applied to
 * them, also not by the repair of a later session: they stay where they are.
 */
export async function passedOverUids(
  ctx: EngineContext,
  accountId: string,
  mailbox: string,
  uidValidity: number,
): Promise<Set<number>> {
  const rows = await ctx.db
    .select({ uid: rejectedMessage.uid })
    .from(rejectedMessage)
    .where(
      and(
        eq(rejectedMessage.accountId, accountId),
        eq(rejectedMessage.imapMailbox, mailbox),
        eq(rejectedMessage.uidValidity, uidValidity),
        eq(rejectedMessage.reason, "fetch_failed"),
      ),
    );
  return new Set(rows.flatMap((r) => (r.uid === null ? [] : [r.uid])));
}
