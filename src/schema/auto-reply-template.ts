import {
  type AutoReplyAttachmentMeta,
  type AutoReplyTemplate,
  archiveAutoReplyTemplate,
  autoReplyAttachmentsOf,
  createAutoReplyTemplate,
  getAutoReplyTemplate,
  listAutoReplyTemplates,
  updateAutoReplyTemplate,
} from "../engine/config/content.js";
import { AUTO_REPLY_TAGS } from "../engine/domain.js";
import { builder } from "./builder.js";
import { standardErrors } from "./errors.js";
import { decodeId, encodeId } from "./ids.js";
import { loadVisible } from "./load.js";
import { offsetConnection } from "./paging.js";

const TAGS = AUTO_REPLY_TAGS.map((t) => `@{${t}}`).join(", ");

export const AutoReplyTemplateRef = builder.objectRef<AutoReplyTemplate>("AutoReplyTemplate");

const AutoReplyAttachmentRef = builder.objectRef<AutoReplyAttachmentMeta>("AutoReplyAttachment").implement({
  description:
    "A file an auto-reply template sends along: an inline image (referenced from the HTML as cid:<contentId>) or an attachment.",
  fields: (t) => ({
    id: t.id({ description: "Global ID.", resolve: (a) => encodeId("AutoReplyAttachment", a.id) }),
    filename: t.exposeString("filename", { description: "File name." }),
    contentType: t.exposeString("contentType", { description: "MIME type (one of the allowed types)." }),
    sizeBytes: t.exposeInt("sizeBytes", { description: "Size in bytes." }),
    contentId: t.exposeString("contentId", {
      nullable: true,
      description: "Content-ID of an inline image (without <>); null for attachments.",
    }),
    inline: t.exposeBoolean("inline", { description: "Inline image (true) or attachment." }),
  }),
});

const AutoReplyAttachmentInput = builder.inputType("AutoReplyAttachmentInput", {
  description:
    "A file of an auto-reply template. Per template at most 10 inline images and 10 attachments, 25 MB in total, " +
    "of the allowed types (images, PDF, text/CSV, office documents; the extension must match the type; " +
    "executables are refused whatever their name).",
  fields: (t) => ({
    filename: t.string({ required: true, description: "File name with an extension matching the type." }),
    contentType: t.string({ required: true, description: "MIME type, e.g. image/png or application/pdf." }),
    contentBase64: t.string({ required: true, description: "The bytes, base64-encoded." }),
    contentId: t.string({
      description: "Required for an inline image: the Content-ID (without <>) the HTML uses as cid:…",
    }),
    inline: t.boolean({ description: "Inline image (true; images only) or attachment (default)." }),
  }),
});

builder.node(AutoReplyTemplateRef, {
  description: `The automatic answer a queue sends (SPEC §9). Tags ${TAGS} are filled in when sending; any other @{…} tag is rejected on save. Readable by every user of the tenant; written by ADMIN.`,
  id: { resolve: (a) => a.id },
  loadOne: loadVisible(AutoReplyTemplateRef, getAutoReplyTemplate),
  fields: (t) => ({
    name: t.exposeString("name", { description: "Display name, 1–100 characters." }),
    subject: t.exposeString("subject", {
      nullable: true,
      description: "Subject template; null = `Re: ` + the original subject.",
    }),
    text: t.exposeString("text", { description: "Plain-text body (may be empty)." }),
    html: t.exposeString("html", {
      nullable: true,
      description: "HTML body, sanitised on save; null = use the text.",
    }),
    archivedAt: t.expose("archivedAt", {
      type: "DateTime",
      nullable: true,
      description: "Set once archived.",
    }),
    attachments: t.loadableList({
      type: AutoReplyAttachmentRef,
      description: "Inline images and attachments sent with every auto-reply from this template, in order.",
      load: (ids: string[], ctx) => autoReplyAttachmentsOf(ctx.engine, ctx.viewer!.tenantId, ids),
      resolve: (a) => a.id,
    }),
    createdAt: t.expose("createdAt", { type: "DateTime", description: "When it was created." }),
    updatedAt: t.expose("updatedAt", { type: "DateTime", description: "Last change." }),
  }),
});

const AutoReplyTemplateInput = builder.inputType("AutoReplyTemplateInput", {
  description: `Fields of an auto-reply template. On update, omitted fields stay unchanged. Allowed tags: ${TAGS}.`,
  fields: (t) => ({
    name: t.string({ description: "1–100 characters; required on create." }),
    subject: t.string({ description: "One line, up to 500 characters; null = `Re: ` + original subject." }),
    text: t.string({ description: "Plain text, up to 100,000 characters." }),
    html: t.string({ description: "HTML, up to 500,000 characters, sanitised on save; null = none." }),
    attachments: t.field({
      type: [AutoReplyAttachmentInput],
      description: "Replaces the template's files when given ([] removes them); omitted = unchanged.",
    }),
  }),
});

function autoReplyInput(input: typeof AutoReplyTemplateInput.$inferInput) {
  return {
    name: input.name ?? undefined,
    subject: input.subject,
    text: input.text ?? undefined,
    html: input.html,
    attachments: input.attachments,
  };
}

builder.queryFields((t) => ({
  autoReplyTemplates: t.withAuth({ authenticated: true }).connection({
    type: AutoReplyTemplateRef,
    description: "Auto-reply templates of the caller's tenant, ordered by name. Any role.",
    args: {
      search: t.arg.string({ description: "Case-insensitive substring of the name." }),
      includeArchived: t.arg.boolean({ description: "Include archived templates (default false)." }),
    },
    resolve: (_root, args, ctx) =>
      offsetConnection(args, (page) =>
        listAutoReplyTemplates(
          ctx.engine,
          ctx.viewer,
          { search: args.search, includeArchived: args.includeArchived ?? false },
          page,
        ),
      ),
  }),
}));

builder.mutationFields((t) => ({
  createAutoReplyTemplate: t.withAuth({ admin: true }).field({
    type: AutoReplyTemplateRef,
    description: "Creates an auto-reply template. ADMIN only.",
    errors: { types: standardErrors },
    args: {
      input: t.arg({ type: AutoReplyTemplateInput, required: true, description: "name is required." }),
    },
    resolve: (_root, { input }, ctx) =>
      createAutoReplyTemplate(ctx.engine, ctx.viewer, autoReplyInput(input)),
  }),
  updateAutoReplyTemplate: t.withAuth({ admin: true }).field({
    type: AutoReplyTemplateRef,
    description: "Changes an auto-reply template. ADMIN only.",
    errors: { types: standardErrors },
    args: {
      id: t.arg.id({ required: true, description: "The template's global ID." }),
      input: t.arg({ type: AutoReplyTemplateInput, required: true, description: "Fields to change." }),
    },
    resolve: (_root, { id, input }, ctx) =>
      updateAutoReplyTemplate(
        ctx.engine,
        ctx.viewer,
        decodeId(String(id), "AutoReplyTemplate"),
        autoReplyInput(input),
      ),
  }),
  archiveAutoReplyTemplate: t.withAuth({ admin: true }).field({
    type: AutoReplyTemplateRef,
    description: "Archives an auto-reply template. ADMIN only.",
    errors: { types: standardErrors },
    args: { id: t.arg.id({ required: true, description: "The template's global ID." }) },
    resolve: (_root, { id }, ctx) =>
      archiveAutoReplyTemplate(ctx.engine, ctx.viewer, decodeId(String(id), "AutoReplyTemplate")),
  }),
}));
