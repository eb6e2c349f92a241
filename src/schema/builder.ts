import SchemaBuilder from "@pothos/core";
import DataloaderPlugin from "@pothos/plugin-dataloader";
import ErrorsPlugin from "@pothos/plugin-errors";
import RelayPlugin from "@pothos/plugin-relay";
import ScopeAuthPlugin from "@pothos/plugin-scope-auth";
import { GraphQLError } from "graphql";
import type { Viewer } from "../engine/viewer.js";
import type { GraphQLContext } from "./context.js";

/** `nodes(ids:)` takes at most this many IDs (GitHub's API takes 100 too). */
export const MAX_NODES = 100;

export interface AuthedContext extends GraphQLContext {
  viewer: Viewer;
}

export const builder = new SchemaBuilder<{
  Context: GraphQLContext;
  AuthContexts: {
    authenticated: AuthedContext;
    admin: AuthedContext;
    supervisor: AuthedContext;
  };
  AuthScopes: {
    /** Any valid API key. */
    authenticated: boolean;
    /** ADMIN role: configuration. */
    admin: boolean;
    /** SUPERVISOR or ADMIN. */
    supervisor: boolean;
  };
  Scalars: {
    DateTime: { Input: Date; Output: Date };
    JSON: { Input: unknown; Output: unknown };
  };
  DefaultFieldNullability: false;
  DefaultEdgesNullability: false;
  DefaultNodeNullability: false;
}>({
  // Relay first so scope checks see decoded global IDs (Pothos docs); then auth, then errors.
  plugins: [RelayPlugin, ScopeAuthPlugin, ErrorsPlugin, DataloaderPlugin],
  defaultFieldNullability: false,
  scopeAuth: {
    authorizeOnSubscribe: true,
    authScopes: (ctx) => ({
      authenticated: ctx.viewer !== null,
      admin: ctx.viewer?.role === "ADMIN",
      supervisor: ctx.viewer?.role === "ADMIN" || ctx.viewer?.role === "SUPERVISOR",
    }),
    unauthorizedError: (_parent, ctx) =>
      new GraphQLError(ctx.viewer ? "Forbidden" : "Authentication required", {
        extensions: { code: ctx.viewer ? "FORBIDDEN" : "UNAUTHENTICATED" },
      }),
  },
  relay: {
    clientMutationId: "omit",
    cursorType: "String",
    edgesFieldOptions: { nullable: false },
    nodeFieldOptions: { nullable: false },
    nodeQueryOptions: {
      authScopes: { authenticated: true },
      description:
        "Any object by global ID, if the caller may see it; null for unknown, foreign or hidden IDs.",
      args: { id: { description: "The global ID." } },
    },
    nodesQueryOptions: {
      authScopes: { authenticated: true },
      description: `Several objects by global ID (at most ${MAX_NODES}); null entries for IDs the caller may not see.`,
      args: { ids: { description: "The global IDs." } },
      // Each ID is its own read, and variables are not counted by the query limits.
      resolve: (_root, args, _ctx, _info, resolveNodes) => {
        if (args.ids.length > MAX_NODES) {
          throw new GraphQLError(`ids: at most ${MAX_NODES}`, { extensions: { code: "BAD_USER_INPUT" } });
        }
        return resolveNodes(args.ids);
      },
    },
    firstArgOptions: {
      description: "Page size from the start (at most 200 unless the list's description says otherwise).",
    },
    afterArgOptions: { description: "Return items after this cursor (from pageInfo.endCursor)." },
    lastArgOptions: { description: "Page size from the end." },
    beforeArgOptions: { description: "Return items before this cursor." },
  },
  errors: {
    defaultTypes: [],
    directResult: true,
  },
});

builder.queryType({
  description: "Read access to Switchboard. Every field requires an API key unless stated.",
});
builder.mutationType({ description: "Changes. Expected failures are returned as typed error results." });
builder.subscriptionType({
  description: "Live updates over graphql-ws, with the same authorization as queries.",
});
