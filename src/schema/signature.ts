import {
  archiveSignature,
  assignUserSignature,
  createSignature,
  getSignature,
  getSignatureHolders,
  getUserSignature,
  listSignatures,
  type Signature,
  updateSignature,
} from "../engine/config/signatures.js";
import { SIGNATURE_TAGS } from "../engine/domain.js";
import { NotFoundError } from "../engine/errors.js";
import { builder } from "./builder.js";
import { standardErrors } from "./errors.js";
import { decodeId } from "./ids.js";
import { loadVisible } from "./load.js";
import { offsetConnection } from "./paging.js";
import { UserRef } from "./viewer.js";

const TAGS = SIGNATURE_TAGS.map((t) => `{{${t}}}`).join(", ");

export const SignatureRef = builder.objectRef<Signature>("Signature");

builder.node(SignatureRef, {
  description: `A signature appended to outbound replies (SPEC §2): a queue's, or one user's personal one. Tags ${TAGS} are filled in when sending; any other {{…}} tag is rejected on save. ADMIN and SUPERVISOR read all; an AGENT reads only their own; ADMIN writes.`,
  id: { resolve: (s) => s.id },
  loadOne: loadVisible(SignatureRef, getSignature),
  fields: (t) => ({
    name: t.exposeString("name", { description: "Display name, 1–100 characters." }),
    text: t.exposeString("text", { description: "Plain-text variant (may be empty)." }),
    html: t.exposeString("html", {
      nullable: true,
      description:
        "HTML variant, sanitised on save (no scripts, event handlers or javascript: URLs); null = use the text.",
    }),
    user: t.loadable({
      type: UserRef,
      nullable: true,
      description: "The user holding it as their personal signature; null for queue signatures.",
      load: (ids: string[], ctx) =>
        ctx.viewer ? getSignatureHolders(ctx.engine, ctx.viewer, ids) : Promise.resolve(ids.map(() => null)),
      resolve: (s) => s.userId,
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

builder.objectField(UserRef, "signature", (t) =>
  t.field({
    type: SignatureRef,
    nullable: true,
    description:
      "The user's personal signature (at most one). Visible to ADMIN, SUPERVISOR and the user themselves; null otherwise or when none is assigned.",
    resolve: async (u, _a, ctx) => {
      if (!ctx.viewer) return null;
      return getUserSignature(ctx.engine, ctx.viewer, u.id).catch((e) => {
        if (e instanceof NotFoundError) return null;
        throw e;
      });
    },
  }),
);

const SignatureInput = builder.inputType("SignatureInput", {
  description: `Fields of a signature. On update, omitted fields stay unchanged. Tags: ${TAGS}.`,
  fields: (t) => ({
    name: t.string({ description: "1–100 characters; required on create." }),
    text: t.string({ description: "Plain text, up to 100,000 characters." }),
    html: t.string({ description: "HTML, up to 500,000 characters, sanitised on save; null removes it." }),
  }),
});

function signatureInput(input: typeof SignatureInput.$inferInput) {
  return { name: input.name ?? undefined, text: input.text ?? undefined, html: input.html };
}

const AssignUserSignaturePayload = builder
  .objectRef<{ userId: string; signature: Signature | null }>("AssignUserSignaturePayload")
  .implement({
    description: "A user's personal signature after assignment.",
    fields: (t) => ({
      user: t.field({
        type: UserRef,
        description: "The user.",
        resolve: async (r, _a, ctx) => {
          const [row] = ctx.viewer ? await getSignatureHolders(ctx.engine, ctx.viewer, [r.userId]) : [];
          if (!row) throw new NotFoundError("User", r.userId);
          return row;
        },
      }),
      signature: t.field({
        type: SignatureRef,
        nullable: true,
        description: "Their signature now; null when it was removed.",
        resolve: (r) => r.signature,
      }),
    }),
  });

builder.queryFields((t) => ({
  signatures: t.withAuth({ authenticated: true }).connection({
    type: SignatureRef,
    description:
      "Signatures of the caller's tenant, ordered by name. ADMIN and SUPERVISOR see all; an AGENT sees only their own personal signature.",
    args: {
      search: t.arg.string({ description: "Case-insensitive substring of the name." }),
      includeArchived: t.arg.boolean({ description: "Include archived signatures (default false)." }),
    },
    resolve: (_root, args, ctx) =>
      offsetConnection(args, (page) =>
        listSignatures(
          ctx.engine,
          ctx.viewer,
          { search: args.search, includeArchived: args.includeArchived ?? false },
          page,
        ),
      ),
  }),
}));

builder.mutationFields((t) => ({
  createSignature: t.withAuth({ admin: true }).field({
    type: SignatureRef,
    description: "Creates a signature (for a queue, or to assign to a user). ADMIN only.",
    errors: { types: standardErrors },
    args: { input: t.arg({ type: SignatureInput, required: true, description: "name is required." }) },
    resolve: (_root, { input }, ctx) => createSignature(ctx.engine, ctx.viewer, signatureInput(input)),
  }),
  updateSignature: t.withAuth({ admin: true }).field({
    type: SignatureRef,
    description: "Changes a signature. ADMIN only.",
    errors: { types: standardErrors },
    args: {
      id: t.arg.id({ required: true, description: "The signature's global ID." }),
      input: t.arg({ type: SignatureInput, required: true, description: "Fields to change." }),
    },
    resolve: (_root, { id, input }, ctx) =>
      updateSignature(ctx.engine, ctx.viewer, decodeId(String(id), "Signature"), signatureInput(input)),
  }),
  archiveSignature: t.withAuth({ admin: true }).field({
    type: SignatureRef,
    description: "Archives a signature and detaches it from its user. ADMIN only.",
    errors: { types: standardErrors },
    args: { id: t.arg.id({ required: true, description: "The signature's global ID." }) },
    resolve: (_root, { id }, ctx) =>
      archiveSignature(ctx.engine, ctx.viewer, decodeId(String(id), "Signature")),
  }),
  assignUserSignature: t.withAuth({ admin: true }).field({
    type: AssignUserSignaturePayload,
    description:
      "Gives a user their personal signature. A user holds at most one: the previous one is detached. A signature held by another user moves to this one. ADMIN only.",
    errors: { types: standardErrors },
    args: {
      userId: t.arg.id({ required: true, description: "The user's global ID." }),
      signatureId: t.arg.id({
        description: "The signature's global ID; null or omitted removes the user's signature.",
      }),
    },
    resolve: (_root, { userId, signatureId }, ctx) =>
      assignUserSignature(
        ctx.engine,
        ctx.viewer,
        decodeId(String(userId), "User"),
        signatureId === null || signatureId === undefined ? null : decodeId(String(signatureId), "Signature"),
      ),
  }),
}));
