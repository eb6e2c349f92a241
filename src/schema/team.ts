import {
  archiveTeam,
  createTeam,
  getTeam,
  listTeams,
  type Team,
  updateTeam,
} from "../engine/config/teams.js";
import { builder } from "./builder.js";
import { InboxLimit, InboxLimitInput, inboxLimitFromInput } from "./common.js";
import { standardErrors } from "./errors.js";
import { decodeId } from "./ids.js";
import { loadVisible } from "./load.js";
import { offsetConnection } from "./paging.js";

export const TeamRef = builder.objectRef<Team>("Team");

builder.node(TeamRef, {
  description: "A group of agents. Carries the default inbox limit its members inherit.",
  id: { resolve: (t) => t.id },
  loadOne: loadVisible(TeamRef, getTeam),
  fields: (t) => ({
    name: t.exposeString("name", { description: "Unique per tenant among active teams." }),
    description: t.exposeString("description", { description: "Free text for admins." }),
    inboxLimit: t.field({
      type: InboxLimit,
      description: "Default inbox limit of members; an agent's own setting overrides it.",
      resolve: (team) => team,
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

const TeamInput = builder.inputType("TeamInput", {
  description: "Fields of a team. On update, omitted fields stay unchanged.",
  fields: (t) => ({
    name: t.string({ description: "1–100 characters, unique per tenant." }),
    description: t.string({ description: "Up to 2,000 characters." }),
    inboxLimit: t.field({ type: InboxLimitInput, description: "Default inbox limit of the team's agents." }),
  }),
});

function teamInput(input: typeof TeamInput.$inferInput) {
  return {
    name: input.name ?? undefined,
    description: input.description ?? undefined,
    inboxLimit: inboxLimitFromInput(input.inboxLimit),
  };
}

builder.queryFields((t) => ({
  teams: t.withAuth({ authenticated: true }).connection({
    type: TeamRef,
    description: "Teams of the caller's tenant, ordered by name.",
    args: {
      search: t.arg.string({ description: "Case-insensitive substring of the name." }),
      includeArchived: t.arg.boolean({ description: "Include archived teams (default false)." }),
    },
    resolve: (_root, args, ctx) =>
      offsetConnection(args, (page) =>
        listTeams(
          ctx.engine,
          ctx.viewer,
          { search: args.search, includeArchived: args.includeArchived ?? false },
          page,
        ),
      ),
  }),
}));

builder.mutationFields((t) => ({
  createTeam: t.withAuth({ admin: true }).field({
    type: TeamRef,
    description: "Creates a team. ADMIN only.",
    errors: { types: standardErrors },
    args: {
      input: t.arg({ type: TeamInput, required: true, description: "The new team; name is required." }),
    },
    resolve: (_root, { input }, ctx) => createTeam(ctx.engine, ctx.viewer, teamInput(input)),
  }),
  updateTeam: t.withAuth({ admin: true }).field({
    type: TeamRef,
    description: "Changes a team. ADMIN only.",
    errors: { types: standardErrors },
    args: {
      id: t.arg.id({ required: true, description: "The team's global ID." }),
      input: t.arg({ type: TeamInput, required: true, description: "Fields to change." }),
    },
    resolve: (_root, { id, input }, ctx) =>
      updateTeam(ctx.engine, ctx.viewer, decodeId(String(id), "Team"), teamInput(input)),
  }),
  archiveTeam: t.withAuth({ admin: true }).field({
    type: TeamRef,
    description: "Archives a team (history keeps referring to it). ADMIN only.",
    errors: { types: standardErrors },
    args: { id: t.arg.id({ required: true, description: "The team's global ID." }) },
    resolve: (_root, { id }, ctx) => archiveTeam(ctx.engine, ctx.viewer, decodeId(String(id), "Team")),
  }),
}));
