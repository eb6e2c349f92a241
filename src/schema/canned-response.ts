import {
  archiveCannedResponse,
  type CannedResponse,
  createCannedResponse,
  getCannedResponse,
  listCannedResponses,
  updateCannedResponse,
} from "../engine/config/content.js";
import { builder } from "./builder.js";
import { standardErrors } from "./errors.js";
import { decodeId } from "./ids.js";
import { loadVisible } from "./load.js";
import { offsetConnection } from "./paging.js";

export const CannedResponseRef = builder.objectRef<CannedResponse>("CannedResponse");

builder.node(CannedResponseRef, {
  description:
    "A prepared answer agents insert into replies (SPEC §2). Readable by every user of the tenant; written by ADMIN.",
  id: { resolve: (c) => c.id },
  loadOne: loadVisible(CannedResponseRef, getCannedResponse),
  fields: (t) => ({
    name: t.exposeString("name", { description: "Display name, 1–100 characters." }),
    subject: t.exposeString("subject", {
      nullable: true,
      description: "Subject suggested when it starts a new mail; null = keep the conversation's.",
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
    createdAt: t.expose("createdAt", { type: "DateTime", description: "When it was created." }),
    updatedAt: t.expose("updatedAt", { type: "DateTime", description: "Last change." }),
  }),
});

const CannedResponseInput = builder.inputType("CannedResponseInput", {
  description:
    "Fields of a canned response. On update, omitted fields stay unchanged; null clears subject/html.",
  fields: (t) => ({
    name: t.string({ description: "1–100 characters; required on create." }),
    subject: t.string({ description: "One line, up to 500 characters; null = none." }),
    text: t.string({ description: "Plain text, up to 100,000 characters." }),
    html: t.string({ description: "HTML, up to 500,000 characters, sanitised on save; null = none." }),
  }),
});

function cannedInput(input: typeof CannedResponseInput.$inferInput) {
  return {
    name: input.name ?? undefined,
    subject: input.subject,
    text: input.text ?? undefined,
    html: input.html,
  };
}

builder.queryFields((t) => ({
  cannedResponses: t.withAuth({ authenticated: true }).connection({
    type: CannedResponseRef,
    description: "Canned responses of the caller's tenant, ordered by name. Any role (agents use them).",
    args: {
      search: t.arg.string({ description: "Case-insensitive substring of the name." }),
      includeArchived: t.arg.boolean({ description: "Include archived responses (default false)." }),
    },
    resolve: (_root, args, ctx) =>
      offsetConnection(args, (page) =>
        listCannedResponses(
          ctx.engine,
          ctx.viewer,
          { search: args.search, includeArchived: args.includeArchived ?? false },
          page,
        ),
      ),
  }),
}));

builder.mutationFields((t) => ({
  createCannedResponse: t.withAuth({ admin: true }).field({
    type: CannedResponseRef,
    description: "Creates a canned response. ADMIN only.",
    errors: { types: standardErrors },
    args: { input: t.arg({ type: CannedResponseInput, required: true, description: "name is required." }) },
    resolve: (_root, { input }, ctx) => createCannedResponse(ctx.engine, ctx.viewer, cannedInput(input)),
  }),
  updateCannedResponse: t.withAuth({ admin: true }).field({
    type: CannedResponseRef,
    description: "Changes a canned response. ADMIN only.",
    errors: { types: standardErrors },
    args: {
      id: t.arg.id({ required: true, description: "The canned response's global ID." }),
      input: t.arg({ type: CannedResponseInput, required: true, description: "Fields to change." }),
    },
    resolve: (_root, { id, input }, ctx) =>
      updateCannedResponse(
        ctx.engine,
        ctx.viewer,
        decodeId(String(id), "CannedResponse"),
        cannedInput(input),
      ),
  }),
  archiveCannedResponse: t.withAuth({ admin: true }).field({
    type: CannedResponseRef,
    description: "Archives a canned response. ADMIN only.",
    errors: { types: standardErrors },
    args: { id: t.arg.id({ required: true, description: "The canned response's global ID." }) },
    resolve: (_root, { id }, ctx) =>
      archiveCannedResponse(ctx.engine, ctx.viewer, decodeId(String(id), "CannedResponse")),
  }),
}));
