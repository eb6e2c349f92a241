import {
  archiveMailAccount,
  createMailAccount,
  type MailAccountInput as EngineInput,
  getMailAccount,
  listMailAccounts,
  type MailAccount,
  type MailAccountTestResult,
  testMailAccount,
  updateMailAccount,
} from "../engine/config/mail-accounts.js";
import { CHECK_FAILURE_KINDS, type CheckResult } from "../engine/connectivity.js";
import { ACCOUNT_KINDS, ACCOUNT_STATUSES, IMAP_AFTER_PROCESS, SMTP_TLS_MODES } from "../engine/domain.js";
import { builder } from "./builder.js";
import { standardErrors } from "./errors.js";
import { decodeId } from "./ids.js";
import { loadVisible } from "./load.js";
import { offsetConnection } from "./paging.js";

export const AccountKindEnum = builder.enumType("AccountKind", {
  description:
    "INBOUND_OUTBOUND reads mail over IMAP and sends over SMTP; OUTBOUND_ONLY only sends (e.g. auto-replies) " +
    "and its addresses cannot be a queue's default address.",
  values: ACCOUNT_KINDS,
});
export const AccountStatusEnum = builder.enumType("AccountStatus", {
  description: "Outcome of the last connection test: UNKNOWN until tested or after settings changed.",
  values: ACCOUNT_STATUSES,
});
export const SmtpTlsModeEnum = builder.enumType("SmtpTlsMode", {
  description: "NONE: plain text; STARTTLS: upgrade required (port 587); TLS: implicit TLS (port 465).",
  values: SMTP_TLS_MODES,
});
export const ImapAfterProcessEnum = builder.enumType("ImapAfterProcess", {
  description:
    "What happens to a mail on the IMAP server once it is stored here: SEEN flags it, MOVE moves it to `imapMoveTo`, LEAVE does nothing.",
  values: IMAP_AFTER_PROCESS,
});
export const CheckFailureKindEnum = builder.enumType("CheckFailureKind", {
  description:
    "Why a connection check failed: AUTH (credentials refused), CONNECTION (host unreachable or refused), " +
    "TLS (handshake or certificate), TIMEOUT (no answer within 10 s), MAILBOX (the IMAP mailbox does not exist), " +
    "PROTOCOL (anything else the server answered).",
  values: CHECK_FAILURE_KINDS,
});

export const MailAccountRef = builder.objectRef<MailAccount>("MailAccount");

builder.node(MailAccountRef, {
  description:
    "A mailbox Switchboard reads (IMAP) and sends through (SMTP). ADMIN only. Passwords are write-only: " +
    "stored encrypted and never returned; `hasImapPassword`/`hasSmtpPassword` tell whether one is set.",
  id: { resolve: (a) => a.id, description: "Global ID." },
  // getMailAccount refuses non-admins; to them the node simply does not exist.
  loadOne: loadVisible(MailAccountRef, getMailAccount),
  fields: (t) => ({
    name: t.exposeString("name", { description: "Name shown to admins." }),
    kind: t.field({
      type: AccountKindEnum,
      description: "Inbound and outbound, or outbound only.",
      resolve: (a) => a.kind,
    }),
    enabled: t.exposeBoolean("enabled", {
      description: "Whether mail is fetched/sent through it; false after archiving.",
    }),
    imapHost: t.exposeString("imapHost", {
      nullable: true,
      description: "IMAP server; null for outbound-only accounts.",
    }),
    imapPort: t.exposeInt("imapPort", {
      nullable: true,
      description: "IMAP port (993 with TLS, 143 without, unless set).",
    }),
    imapTls: t.exposeBoolean("imapTls", {
      description: "Implicit TLS (IMAPS); false = plain, upgraded with STARTTLS when offered.",
    }),
    imapUser: t.exposeString("imapUser", { nullable: true, description: "IMAP login name." }),
    hasImapPassword: t.boolean({
      description: "Whether an IMAP password is stored. The password itself is never returned.",
      resolve: (a) => a.imapPasswordEnc !== null,
    }),
    imapMailbox: t.exposeString("imapMailbox", { description: "Mailbox read for new mail, e.g. INBOX." }),
    imapAfterProcess: t.field({
      type: ImapAfterProcessEnum,
      description: "What happens to a mail on the server after it was stored here.",
      resolve: (a) => a.imapAfterProcess,
    }),
    imapMoveTo: t.exposeString("imapMoveTo", {
      nullable: true,
      description: "Target mailbox when imapAfterProcess is MOVE.",
    }),
    smtpHost: t.exposeString("smtpHost", { nullable: true, description: "SMTP server for outbound mail." }),
    smtpPort: t.exposeInt("smtpPort", {
      nullable: true,
      description: "SMTP port (465 TLS, 587 STARTTLS, 25 NONE, unless set).",
    }),
    smtpTlsMode: t.field({
      type: SmtpTlsModeEnum,
      description: "How SMTP is secured.",
      resolve: (a) => a.smtpTlsMode,
    }),
    smtpUser: t.exposeString("smtpUser", {
      nullable: true,
      description: "SMTP login name; null = no authentication.",
    }),
    hasSmtpPassword: t.boolean({
      description: "Whether an SMTP password is stored. The password itself is never returned.",
      resolve: (a) => a.smtpPasswordEnc !== null,
    }),
    status: t.field({
      type: AccountStatusEnum,
      description: "Result of the last connection test.",
      resolve: (a) => a.status,
    }),
    lastError: t.exposeString("lastError", {
      nullable: true,
      description: "What failed in the last test, per side.",
    }),
    lastCheckedAt: t.expose("lastCheckedAt", {
      type: "DateTime",
      nullable: true,
      description: "When it was last tested.",
    }),
    archivedAt: t.expose("archivedAt", {
      type: "DateTime",
      nullable: true,
      description: "Set once archived.",
    }),
    createdAt: t.expose("createdAt", { type: "DateTime", description: "When it was created." }),
    updatedAt: t.expose("updatedAt", { type: "DateTime", description: "Last change." }),
  }),
});

const ConnectionCheckRef = builder.objectRef<CheckResult>("ConnectionCheck").implement({
  description: "The outcome of checking one side (IMAP or SMTP) of a mail account.",
  fields: (t) => ({
    ok: t.exposeBoolean("ok", { description: "Connected, negotiated TLS as configured and logged in." }),
    error: t.exposeString("error", {
      nullable: true,
      description: "Why not, when ok is false. Never contains the password.",
    }),
    kind: t.field({
      type: CheckFailureKindEnum,
      nullable: true,
      description: "Failure category when ok is false.",
      resolve: (r) => r.kind,
    }),
  }),
});

const MailAccountTestResultRef = builder.objectRef<MailAccountTestResult>("MailAccountTestResult").implement({
  description: "Result of `testMailAccount`: each side separately, and the account with its updated status.",
  fields: (t) => ({
    account: t.field({
      type: MailAccountRef,
      description: "The account, with status, lastError and lastCheckedAt updated.",
      resolve: (r) => r.account,
    }),
    imap: t.field({
      type: ConnectionCheckRef,
      nullable: true,
      description: "IMAP login and mailbox check; null for outbound-only accounts.",
      resolve: (r) => r.imap,
    }),
    smtp: t.field({
      type: ConnectionCheckRef,
      description: "SMTP connection, TLS and authentication check (no mail is sent).",
      resolve: (r) => r.smtp,
    }),
  }),
});

const MailAccountInput = builder.inputType("MailAccountInput", {
  description:
    "Fields of a mail account. On update, omitted fields stay unchanged. INBOUND_OUTBOUND needs imapHost, imapUser and smtpHost; " +
    "OUTBOUND_ONLY needs smtpHost and takes no IMAP settings. Changing connection settings resets the status to UNKNOWN.",
  fields: (t) => ({
    name: t.string({ description: "1–100 characters. Required on create." }),
    kind: t.field({
      type: AccountKindEnum,
      description:
        "Default INBOUND_OUTBOUND. OUTBOUND_ONLY is refused while an address of the account is a queue's default address.",
    }),
    enabled: t.boolean({ description: "Pause or resume fetching and sending (default true)." }),
    imapHost: t.string({ description: "IMAP host name or IP address." }),
    imapPort: t.int({ description: "1–65535; null = the standard port (993 with TLS, 143 without)." }),
    imapTls: t.boolean({ description: "Implicit TLS (default true)." }),
    imapUser: t.string({ description: "IMAP login name; no control characters." }),
    imapPassword: t.string({
      description: 'Write-only. A value sets it, null or "" clears it, omitted keeps it.',
    }),
    imapMailbox: t.string({ description: "Mailbox to read (default INBOX)." }),
    imapAfterProcess: t.field({
      type: ImapAfterProcessEnum,
      description: "Default SEEN. MOVE requires imapMoveTo.",
    }),
    imapMoveTo: t.string({ description: "Target mailbox for MOVE; must differ from imapMailbox." }),
    smtpHost: t.string({ description: "SMTP host name or IP address." }),
    smtpPort: t.int({ description: "1–65535; null = the standard port of smtpTlsMode." }),
    smtpTlsMode: t.field({ type: SmtpTlsModeEnum, description: "Default STARTTLS." }),
    smtpUser: t.string({ description: "SMTP login name; null = send without authentication." }),
    smtpPassword: t.string({
      description: 'Write-only. A value sets it, null or "" clears it, omitted keeps it.',
    }),
  }),
});

/** GraphQL null on a non-nullable column means "not given". */
const nn = <T>(v: T | null | undefined): T | undefined => (v === null ? undefined : v);

function accountInput(i: typeof MailAccountInput.$inferInput): EngineInput {
  return {
    name: nn(i.name),
    kind: nn(i.kind),
    enabled: nn(i.enabled),
    imapHost: i.imapHost,
    imapPort: i.imapPort,
    imapTls: nn(i.imapTls),
    imapUser: i.imapUser,
    imapPassword: i.imapPassword,
    imapMailbox: nn(i.imapMailbox),
    imapAfterProcess: nn(i.imapAfterProcess),
    imapMoveTo: i.imapMoveTo,
    smtpHost: i.smtpHost,
    smtpPort: i.smtpPort,
    smtpTlsMode: nn(i.smtpTlsMode),
    smtpUser: i.smtpUser,
    smtpPassword: i.smtpPassword,
  };
}

builder.queryFields((t) => ({
  mailAccounts: t.withAuth({ admin: true }).connection({
    type: MailAccountRef,
    description: "Mail accounts of the caller's tenant, ordered by name. ADMIN only.",
    args: {
      search: t.arg.string({ description: "Case-insensitive substring of the name." }),
      includeArchived: t.arg.boolean({ description: "Include archived accounts (default false)." }),
    },
    resolve: (_root, args, ctx) =>
      offsetConnection(args, (page) =>
        listMailAccounts(
          ctx.engine,
          ctx.viewer,
          { search: args.search, includeArchived: args.includeArchived ?? false },
          page,
        ),
      ),
  }),
}));

builder.mutationFields((t) => ({
  createMailAccount: t.withAuth({ admin: true }).field({
    type: MailAccountRef,
    description: "Creates a mail account (status UNKNOWN until tested). ADMIN only.",
    errors: { types: standardErrors },
    args: {
      input: t.arg({
        type: MailAccountInput,
        required: true,
        description: "The new account; name is required.",
      }),
    },
    resolve: (_root, { input }, ctx) => createMailAccount(ctx.engine, ctx.viewer, accountInput(input)),
  }),
  updateMailAccount: t.withAuth({ admin: true }).field({
    type: MailAccountRef,
    description: "Changes a mail account. ADMIN only.",
    errors: { types: standardErrors },
    args: {
      id: t.arg.id({ required: true, description: "The account's global ID." }),
      input: t.arg({ type: MailAccountInput, required: true, description: "Fields to change." }),
    },
    resolve: (_root, { id, input }, ctx) =>
      updateMailAccount(ctx.engine, ctx.viewer, decodeId(String(id), "MailAccount"), accountInput(input)),
  }),
  archiveMailAccount: t.withAuth({ admin: true }).field({
    type: MailAccountRef,
    description: "Archives and disables a mail account (messages keep referring to it). ADMIN only.",
    errors: { types: standardErrors },
    args: { id: t.arg.id({ required: true, description: "The account's global ID." }) },
    resolve: (_root, { id }, ctx) =>
      archiveMailAccount(ctx.engine, ctx.viewer, decodeId(String(id), "MailAccount")),
  }),
  testMailAccount: t.withAuth({ admin: true }).field({
    type: MailAccountTestResultRef,
    description:
      "Checks IMAP (login + mailbox) and SMTP (connect, TLS, login; nothing is sent) separately, each within 10 s, " +
      "and records status VALID/INVALID with lastError. A failed check is a normal result, not an error. ADMIN only.",
    errors: { types: standardErrors },
    args: { id: t.arg.id({ required: true, description: "The account's global ID." }) },
    resolve: (_root, { id }, ctx) =>
      testMailAccount(ctx.engine, ctx.viewer, decodeId(String(id), "MailAccount")),
  }),
}));
