import {
  type ApiKeyInfo,
  createApiKey,
  getApiKey,
  listApiKeys,
  revokeApiKey,
} from "../engine/config/api-keys.js";
import { NotFoundError } from "../engine/errors.js";
import { builder } from "./builder.js";
import { asGraphQLErrors, standardErrors } from "./errors.js";
import { decodeId, encodeId } from "./ids.js";
import { loadVisible } from "./load.js";
import { decodeFilterId } from "./refs.js";

export const ApiKeyRef = builder.objectRef<ApiKeyInfo>("ApiKey");

builder.node(ApiKeyRef, {
  description:
    "An API key of a user (metadata only: the secret is shown once, by createApiKey, and never stored in clear).",
  id: { resolve: (k) => k.id, description: "Global ID (opaque); pass it to revokeApiKey." },
  loadOne: loadVisible(ApiKeyRef, getApiKey),
  fields: (t) => ({
    name: t.exposeString("name", { description: "What the key is for, e.g. the integration's name." }),
    prefix: t.exposeString("prefix", {
      description: "The public part after `sb_`, to recognise a key without revealing it.",
    }),
    userId: t.id({
      description: "Global ID of the user it authenticates as.",
      resolve: (k) => encodeId("User", k.userId),
    }),
    createdAt: t.expose("createdAt", { type: "DateTime", description: "When it was issued." }),
    lastUsedAt: t.expose("lastUsedAt", {
      type: "DateTime",
      nullable: true,
      description: "Last successful authentication, updated at most once a minute; null = never used.",
    }),
    revokedAt: t.expose("revokedAt", {
      type: "DateTime",
      nullable: true,
      description: "Set once revoked; a revoked key no longer authenticates.",
    }),
  }),
});

const CreatedApiKeyRef = builder.objectRef<{ apiKey: ApiKeyInfo; key: string }>("CreatedApiKey").implement({
  description: "A newly issued key. `key` is shown only here, once; store it now.",
  fields: (t) => ({
    apiKey: t.field({ type: ApiKeyRef, description: "The key's metadata.", resolve: (c) => c.apiKey }),
    key: t.exposeString("key", {
      description: "The full secret key, `sb_<prefix>_<secret>`; send it as `Authorization: Bearer <key>`.",
    }),
  }),
});

builder.queryFields((t) => ({
  apiKeys: t.withAuth({ authenticated: true }).field({
    type: [ApiKeyRef],
    description:
      "A user's keys, newest first, revoked ones included. Anyone for themselves; ADMIN for any user of the tenant. Unknown or foreign users fail with NOT_FOUND, other users' keys for a SUPERVISOR with FORBIDDEN.",
    args: {
      userId: t.arg.id({ description: "The user's global ID; omitted = the caller." }),
    },
    resolve: async (_root, { userId }, ctx) => {
      const id = userId ? decodeFilterId(String(userId), "User") : ctx.viewer.userId;
      return asGraphQLErrors(() => {
        if (!id) throw new NotFoundError("User", String(userId));
        return listApiKeys(ctx.engine, ctx.viewer, id);
      });
    },
  }),
}));

builder.mutationFields((t) => ({
  createApiKey: t.withAuth({ authenticated: true }).field({
    type: CreatedApiKeyRef,
    description:
      "Issues an API key for a user and returns it once. Anyone for themselves; ADMIN for any active user of the tenant.",
    errors: { types: standardErrors },
    args: {
      userId: t.arg.id({ required: true, description: "Global ID of the user the key will act as." }),
      name: t.arg.string({ required: true, description: "1–100 characters, e.g. the integration's name." }),
    },
    resolve: (_root, { userId, name }, ctx) =>
      createApiKey(ctx.engine, ctx.viewer, { userId: decodeId(String(userId), "User"), name }),
  }),
  revokeApiKey: t.withAuth({ authenticated: true }).field({
    type: ApiKeyRef,
    description:
      "Revokes a key at once (the next request with it is unauthenticated). Idempotent. Anyone for their own keys; ADMIN for any key of the tenant.",
    errors: { types: standardErrors },
    args: { id: t.arg.id({ required: true, description: "The key's global ID." }) },
    resolve: (_root, { id }, ctx) => revokeApiKey(ctx.engine, ctx.viewer, decodeId(String(id), "ApiKey")),
  }),
}));
