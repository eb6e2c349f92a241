import {
  addNote,
  forwardMessage,
  type OutboundInput,
  replyToConversation,
  retryMessage,
  startConversation,
} from "../engine/outbound/service.js";
import { builder } from "./builder.js";
import { MessageRef } from "./conversation.js";
import { standardErrors } from "./errors.js";
import { decodeId, encodeId } from "./ids.js";

/**
 * Outbound mail (SPEC §10, issue #5): reply, reply-all, forward, new outbound
 * conversations, internal notes and retries. Every mutation returns the stored Message
 * (status QUEUED; the send job moves it to SENT or FAILED) or a typed error.
 */

const MailboxInput = builder.inputType("MailboxInput", {
  description: "A recipient. The address is validated; a CR, LF or other control character is refused.",
  fields: (t) => ({
    address: t.string({ required: true, description: "addr-spec, e.g. jane@example.com." }),
    name: t.string({ description: "Display name; control characters become spaces." }),
  }),
});

const OutboundAttachmentInput = builder.inputType("OutboundAttachmentInput", {
  description:
    "A file to attach. At most 20 per message; the whole message may be at most 25 MiB encoded (TOO_LARGE otherwise).",
  fields: (t) => ({
    filename: t.string({ required: true, description: "File name; path separators become `_`." }),
    contentType: t.string({ required: true, description: "MIME type, e.g. application/pdf." }),
    contentBase64: t.string({ required: true, description: "The bytes, base64-encoded." }),
    contentId: t.string({ description: "Content-ID (without <>) for an inline image referenced as cid:…" }),
    inline: t.boolean({ description: "Inline (true) or attachment (default)." }),
  }),
});

const ReplyInput = builder.inputType("OutboundMessageInput", {
  description:
    "Content and options of a reply or forward. HTML is sanitised; a text alternative is generated when only HTML is given.",
  fields: (t) => ({
    html: t.string({ description: "HTML body (sanitised: no scripts, handlers, forms, frames)." }),
    text: t.string({ description: "Plain-text body." }),
    attachments: t.field({ type: [OutboundAttachmentInput], description: "Attachments and inline images." }),
    subject: t.string({
      description:
        "A new subject. Needs the tenant option `agentsMayEditSubject` (else ValidationError on `subjectOverride`) and the EDIT_SUBJECT permission (else ForbiddenError). The ticket token is still added.",
    }),
    fromAddressId: t.id({
      description:
        "Send from another of the tenant's addresses (outbound allowed, with an SMTP account). Needs CHANGE_FROM when it differs from the conversation's address.",
    }),
    to: t.field({
      type: [MailboxInput],
      description: "Recipients; by default the answered message's Reply-To or From.",
    }),
    cc: t.field({
      type: [MailboxInput],
      description: "Cc recipients; reply-all defaults them from the answered message.",
    }),
    bcc: t.field({
      type: [MailboxInput],
      description: "Bcc recipients (the address's hidden BCC are always added).",
    }),
    includeHistory: t.boolean({
      description: "Quote earlier messages. Used only when the address's history policy is AGENT_DECIDES.",
    }),
    inReplyToMessageId: t.id({
      description: "The message answered (global ID); default the newest message of the conversation.",
    }),
  }),
});

const StartConversationInput = builder.inputType("StartConversationInput", {
  description: "A new outbound conversation.",
  fields: (t) => ({
    fromAddressId: t.id({ required: true, description: "The tenant's address to send from." }),
    to: t.field({
      type: [MailboxInput],
      required: true,
      description: "At least one recipient; the first becomes the contact.",
    }),
    cc: t.field({ type: [MailboxInput], description: "Cc recipients." }),
    bcc: t.field({ type: [MailboxInput], description: "Bcc recipients." }),
    subject: t.string({
      required: true,
      description: "Subject; the ticket token is added per the address's format.",
    }),
    html: t.string({ description: "HTML body (sanitised)." }),
    text: t.string({ description: "Plain-text body." }),
    attachments: t.field({ type: [OutboundAttachmentInput], description: "Attachments." }),
    queueId: t.id({ description: "Queue of the new conversation; default the address's queue." }),
  }),
});

const NoteInput = builder.inputType("NoteInput", {
  description: "An internal note: stored on the conversation, never sent.",
  fields: (t) => ({
    text: t.string({ description: "Plain text." }),
    html: t.string({ description: "HTML (sanitised); the text is generated from it when absent." }),
  }),
});

type MailboxArg = { address: string; name?: string | null };
const mailboxes = (list: readonly MailboxArg[] | null | undefined) =>
  list?.map((m) => ({ address: m.address, name: m.name ?? null })) ?? null;

function outboundInput(input: typeof ReplyInput.$inferInput): OutboundInput {
  return {
    html: input.html,
    text: input.text,
    attachments: input.attachments?.map((a) => ({
      filename: a.filename,
      contentType: a.contentType,
      contentBase64: a.contentBase64,
      contentId: a.contentId,
      inline: a.inline,
    })),
    subject: input.subject,
    fromAddressId: input.fromAddressId ? decodeId(String(input.fromAddressId), "EmailAddress") : null,
    to: mailboxes(input.to),
    cc: mailboxes(input.cc),
    bcc: mailboxes(input.bcc),
    includeHistory: input.includeHistory,
    inReplyToMessageId: input.inReplyToMessageId
      ? decodeId(String(input.inReplyToMessageId), "Message")
      : null,
  };
}

builder.mutationFields((t) => ({
  replyToConversation: t.withAuth({ authenticated: true }).field({
    type: MessageRef,
    description:
      "Replies on a conversation the caller can see (REPLY_INBOUND). Returns the QUEUED message; sending runs as a retried job. `replyAll` also copies the answered message's To/Cc.",
    errors: { types: standardErrors },
    args: {
      conversationId: t.arg.id({ required: true, description: "The conversation's global ID." }),
      input: t.arg({ type: ReplyInput, required: true, description: "Body and options." }),
      replyAll: t.arg.boolean({ description: "Reply to all (default false)." }),
    },
    resolve: (_r, args, ctx) =>
      replyToConversation(
        ctx.engine,
        ctx.viewer,
        decodeId(String(args.conversationId), "Conversation"),
        outboundInput(args.input),
        { replyAll: args.replyAll ?? false },
      ),
  }),
  forwardMessage: t.withAuth({ authenticated: true }).field({
    type: MessageRef,
    description: "Forwards a message of a visible conversation (FORWARD permission); `input.to` is required.",
    errors: { types: standardErrors },
    args: {
      messageId: t.arg.id({ required: true, description: "The message's global ID." }),
      input: t.arg({ type: ReplyInput, required: true, description: "Recipients, note and options." }),
    },
    resolve: (_r, args, ctx) =>
      forwardMessage(
        ctx.engine,
        ctx.viewer,
        decodeId(String(args.messageId), "Message"),
        outboundInput(args.input),
      ),
  }),
  startConversation: t.withAuth({ authenticated: true }).field({
    type: MessageRef,
    description:
      "Starts a new outbound conversation (START_OUTBOUND permission) with a new ticket number; returns its first message.",
    errors: { types: standardErrors },
    args: { input: t.arg({ type: StartConversationInput, required: true, description: "The new mail." }) },
    resolve: (_r, { input }, ctx) =>
      startConversation(ctx.engine, ctx.viewer, {
        fromAddressId: decodeId(String(input.fromAddressId), "EmailAddress"),
        to: mailboxes(input.to) ?? [],
        cc: mailboxes(input.cc),
        bcc: mailboxes(input.bcc),
        subject: input.subject,
        html: input.html,
        text: input.text,
        attachments: input.attachments,
        queueId: input.queueId ? decodeId(String(input.queueId), "Queue") : null,
      }),
  }),
  addNote: t.withAuth({ authenticated: true }).field({
    type: MessageRef,
    description: "Adds an internal note (direction NOTE, never sent) to a conversation the caller can see.",
    errors: { types: standardErrors },
    args: {
      conversationId: t.arg.id({ required: true, description: "The conversation's global ID." }),
      input: t.arg({ type: NoteInput, required: true, description: "The note." }),
    },
    resolve: (_r, args, ctx) =>
      addNote(ctx.engine, ctx.viewer, decodeId(String(args.conversationId), "Conversation"), args.input),
  }),
  retryMessage: t.withAuth({ supervisor: true }).field({
    type: MessageRef,
    description: "Queues a FAILED outbound message again (same bytes, same Message-ID). SUPERVISOR or ADMIN.",
    errors: { types: standardErrors },
    args: { messageId: t.arg.id({ required: true, description: "The message's global ID." }) },
    resolve: (_r, args, ctx) =>
      retryMessage(ctx.engine, ctx.viewer, decodeId(String(args.messageId), "Message")),
  }),
}));

builder.objectFields(MessageRef, (t) => ({
  sentAt: t.expose("sentAt", {
    type: "DateTime",
    nullable: true,
    description: "When the SMTP server accepted it (outbound only).",
  }),
  sendAttempts: t.exposeInt("sendAttempts", { description: "SMTP attempts so far (outbound only)." }),
  isAutoReply: t.exposeBoolean("isAutoReply", { description: "An automatic reply of the queue (SPEC §9)." }),
  authorId: t.id({
    nullable: true,
    description: "Global ID of the agent who wrote it (outbound and notes).",
    resolve: (m) => (m.authorId ? encodeId("User", m.authorId) : null),
  }),
  references: t.stringList({
    description: "References message ids (without <>), oldest first.",
    resolve: (m) => m.references,
  }),
}));
