import {
  type AccessProfile,
  archiveAccessProfile,
  createAccessProfile,
  getAccessProfile,
  listAccessProfiles,
  updateAccessProfile,
} from "../engine/config/access-profiles.js";
import { NotFoundError } from "../engine/errors.js";
import { builder } from "./builder.js";
import { standardErrors } from "./errors.js";
import { decodeId, encodeId } from "./ids.js";
import { loadVisible } from "./load.js";
import { offsetConnection } from "./paging.js";
import { decodeFilterId, decodeRef } from "./refs.js";

export const AccessProfileRef = builder.objectRef<AccessProfile>("AccessProfile");

builder.node(AccessProfileRef, {
  description:
    "Which queues its users may see: every queue, or a chosen set. Conversations outside them are not found for those users. ADMINs always see everything.",
  id: { resolve: (a) => a.id, description: "Global ID (opaque)." },
  loadOne: loadVisible(AccessProfileRef, getAccessProfile),
  fields: (t) => ({
    name: t.exposeString("name", { description: "Unique per tenant among active profiles." }),
    allQueues: t.exposeBoolean("allQueues", {
      description: "True: every queue of the tenant, including queues created later.",
    }),
    queueIds: t.idList({
      description: "Global IDs of the chosen queues; empty when `allQueues` is true.",
      resolve: (a) => a.queueIds.map((id) => encodeId("Queue", id)),
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

const AccessProfileInput = builder.inputType("AccessProfileInput", {
  description: "Fields of an access profile. On update, omitted fields stay unchanged.",
  fields: (t) => ({
    name: t.string({ description: "1–100 characters, unique per tenant. Required on create." }),
    allQueues: t.boolean({
      description: "True: every queue (then `queueIds` must be empty or omitted). Default false on create.",
    }),
    queueIds: t.idList({
      description:
        "Global IDs of this tenant's active queues; replaces the whole set. Unknown or foreign IDs are rejected as `queueIds[i]`.",
    }),
  }),
});

function profileInput(input: typeof AccessProfileInput.$inferInput) {
  return {
    name: input.name ?? undefined,
    allQueues: input.allQueues ?? undefined,
    queueIds: input.queueIds?.map((id, i) => decodeRef(String(id), "Queue", `queueIds[${i}]`)),
  };
}

builder.queryFields((t) => ({
  accessProfiles: t.withAuth({ supervisor: true }).connection({
    type: AccessProfileRef,
    description: "Access profiles of the caller's tenant, ordered by name. SUPERVISOR or ADMIN.",
    args: {
      search: t.arg.string({ description: "Case-insensitive substring of the name." }),
      includeArchived: t.arg.boolean({ description: "Include archived profiles (default false)." }),
    },
    resolve: (_root, args, ctx) =>
      offsetConnection(args, (page) =>
        listAccessProfiles(
          ctx.engine,
          ctx.viewer,
          { search: args.search, includeArchived: args.includeArchived ?? false },
          page,
        ),
      ),
  }),
  accessProfile: t.withAuth({ authenticated: true }).field({
    type: AccessProfileRef,
    nullable: true,
    description:
      "One access profile by global ID; null when unknown or foreign. Agents may read only their own profile.",
    args: { id: t.arg.id({ required: true, description: "The profile's global ID." }) },
    resolve: async (_root, { id }, ctx) => {
      const raw = decodeFilterId(String(id), "AccessProfile");
      if (!raw) return null;
      return getAccessProfile(ctx.engine, ctx.viewer, raw).catch((e) => {
        if (e instanceof NotFoundError) return null;
        throw e;
      });
    },
  }),
}));

builder.mutationFields((t) => ({
  createAccessProfile: t.withAuth({ admin: true }).field({
    type: AccessProfileRef,
    description: "Creates an access profile. ADMIN only.",
    errors: { types: standardErrors },
    args: {
      input: t.arg({
        type: AccessProfileInput,
        required: true,
        description: "The new profile; name is required.",
      }),
    },
    resolve: (_root, { input }, ctx) => createAccessProfile(ctx.engine, ctx.viewer, profileInput(input)),
  }),
  updateAccessProfile: t.withAuth({ admin: true }).field({
    type: AccessProfileRef,
    description:
      "Changes an access profile; its users see the new queues from their next request. ADMIN only.",
    errors: { types: standardErrors },
    args: {
      id: t.arg.id({ required: true, description: "The profile's global ID." }),
      input: t.arg({ type: AccessProfileInput, required: true, description: "Fields to change." }),
    },
    resolve: (_root, { id, input }, ctx) =>
      updateAccessProfile(ctx.engine, ctx.viewer, decodeId(String(id), "AccessProfile"), profileInput(input)),
  }),
  archiveAccessProfile: t.withAuth({ admin: true }).field({
    type: AccessProfileRef,
    description:
      "Archives an access profile. Fails with ConflictError (code IN_USE) while active users hold it. ADMIN only.",
    errors: { types: standardErrors },
    args: { id: t.arg.id({ required: true, description: "The profile's global ID." }) },
    resolve: (_root, { id }, ctx) =>
      archiveAccessProfile(ctx.engine, ctx.viewer, decodeId(String(id), "AccessProfile")),
  }),
}));
