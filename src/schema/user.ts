import { accessProfilesByIds } from "../engine/config/access-profiles.js";
import { type EffectiveInboxLimit, effectiveInboxLimit } from "../engine/config/inbox-limit.js";
import {
  type AgentSkill,
  agentSkillsByUserIds,
  archiveUser,
  createUser,
  getUser,
  listUsers,
  restoreUser,
  setAgentSkills,
  teamsByIds,
  updateUser,
} from "../engine/config/users.js";
import { NotFoundError } from "../engine/errors.js";
import { AccessProfileRef } from "./access-profile.js";
import { builder } from "./builder.js";
import { InboxLimitInput, inboxLimitFromInput } from "./common.js";
import type { GraphQLContext } from "./context.js";
import { standardErrors } from "./errors.js";
import { decodeId, encodeId } from "./ids.js";
import { batchLoad } from "./loaders.js";
import { offsetConnection } from "./paging.js";
import { decodeFilterId, decodeOptionalRef, decodeRef } from "./refs.js";
import { SkillRef } from "./skill.js";
import { TeamRef } from "./team.js";
import { RoleEnum, UserRef, type UserRow, ViewerRef } from "./viewer.js";

function tenantOf(ctx: GraphQLContext): string {
  return ctx.viewer?.tenantId ?? "";
}

function loadTeam(ctx: GraphQLContext, id: string) {
  return batchLoad(ctx, "people.teamById", async (ids: string[]) => {
    const rows = await teamsByIds(ctx.engine, tenantOf(ctx), ids);
    return new Map(rows.map((r) => [r.id, r]));
  })(id);
}

const InboxLimitSourceEnum = builder.enumType("InboxLimitSource", {
  description: "Which level decided an agent's effective inbox limit.",
  values: {
    AGENT: { description: "The agent's own setting (a number, or OFF)." },
    TEAM: { description: "Inherited from the agent's team." },
    SYSTEM: { description: "Neither set one: the system default of 5." },
  } as const,
});

const EffectiveInboxLimitRef = builder.objectRef<EffectiveInboxLimit>("EffectiveInboxLimit").implement({
  description:
    "The inbox limit routing applies to an agent: the agent's own value overrides the team's, the team's overrides the system default of 5. An agent's number beats a team's OFF; an agent's OFF always wins.",
  fields: (t) => ({
    off: t.exposeBoolean("off", {
      description: "True: no automatic delivery to this agent (it can still pick conversations).",
    }),
    limit: t.exposeInt("limit", {
      nullable: true,
      description: "The most conversations assigned or parked at once; null when `off`.",
    }),
    source: t.field({
      type: InboxLimitSourceEnum,
      description: "AGENT, TEAM or SYSTEM.",
      resolve: (l) => l.source,
    }),
  }),
});

const AgentSkillRef = builder.objectRef<AgentSkill>("AgentSkill").implement({
  description: "A skill an agent holds, with how well.",
  fields: (t) => ({
    skill: t.field({ type: SkillRef, description: "The skill.", resolve: (a) => a.skill }),
    proficiency: t.exposeInt("proficiency", {
      description: "1 (novice) … 10 (expert); higher is preferred.",
    }),
  }),
});

builder.objectFields(UserRef, (t) => ({
  updatedAt: t.expose("updatedAt", { type: "DateTime", description: "Last change." }),
  team: t.field({
    type: TeamRef,
    nullable: true,
    description: "The agent's team (may be archived); null when none.",
    resolve: async (u, _a, ctx) => (u.teamId ? ((await loadTeam(ctx, u.teamId)) ?? null) : null),
  }),
  accessProfile: t.field({
    type: AccessProfileRef,
    nullable: true,
    description:
      "The access profile limiting which queues the user sees; null = role default (SUPERVISOR: all queues, AGENT: the queues it is a member of).",
    resolve: async (u, _a, ctx) => {
      if (!u.accessProfileId) return null;
      const found = await batchLoad(ctx, "people.accessProfileById", async (ids: string[]) => {
        const rows = await accessProfilesByIds(ctx.engine, tenantOf(ctx), ids);
        return new Map(rows.map((r) => [r.id, r]));
      })(u.accessProfileId);
      return found ?? null;
    },
  }),
  skills: t.field({
    type: [AgentSkillRef],
    description:
      "The agent's active skills with proficiency, ordered by skill name. Set with setAgentSkills.",
    resolve: async (u, _a, ctx) => {
      const found = await batchLoad(ctx, "people.skillsByUserId", async (ids: string[]) => {
        const rows = await agentSkillsByUserIds(ctx.engine, tenantOf(ctx), ids);
        const byUser = new Map<string, AgentSkill[]>();
        for (const r of rows) byUser.set(r.userId, [...(byUser.get(r.userId) ?? []), r]);
        return byUser;
      })(u.id);
      return found ?? [];
    },
  }),
  effectiveInboxLimit: t.field({
    type: EffectiveInboxLimitRef,
    description:
      "The limit routing applies: agent override > team default > system default 5; see EffectiveInboxLimit.",
    resolve: async (u, _a, ctx) => {
      const team = u.teamId ? ((await loadTeam(ctx, u.teamId)) ?? null) : null;
      return effectiveInboxLimit(u, team);
    },
  }),
}));

builder.objectFields(ViewerRef, (t) => ({
  queueIds: t.idList({
    nullable: true,
    description:
      "Global IDs of the queues the caller may see (from its access profile, or its memberships for agents without one); null = every queue.",
    resolve: (_v, _a, ctx) =>
      ctx.viewer?.queueIds ? [...ctx.viewer.queueIds].sort().map((id) => encodeId("Queue", id)) : null,
  }),
}));

const CreateUserInput = builder.inputType("CreateUserInput", {
  description: "A new user.",
  fields: (t) => ({
    email: t.string({
      required: true,
      description: "Login and contact address; unique per tenant, case-insensitively (stored lower-case).",
    }),
    name: t.string({ required: true, description: "1–100 characters." }),
    alias: t.string({ description: "Name shown to customers, 1–100 characters." }),
    role: t.field({ type: RoleEnum, required: true, description: "ADMIN, SUPERVISOR or AGENT." }),
    teamId: t.id({ description: "Global ID of an active team of this tenant." }),
    accessProfileId: t.id({
      description: "Global ID of an active access profile; omitted = the role's default visibility.",
    }),
    inboxLimit: t.field({
      type: InboxLimitInput,
      description: "The agent's own inbox limit; omitted or DEFAULT inherits the team's.",
    }),
  }),
});

const UpdateUserInput = builder.inputType("UpdateUserInput", {
  description:
    "Changes to a user: omitted fields stay unchanged; null clears alias, teamId and accessProfileId.",
  fields: (t) => ({
    email: t.string({ description: "New address; unique per tenant, case-insensitively." }),
    name: t.string({ description: "1–100 characters." }),
    alias: t.string({ description: "Name shown to customers; null clears it." }),
    role: t.field({
      type: RoleEnum,
      description: "New role. The tenant's last active ADMIN cannot be demoted (ConflictError LAST_ADMIN).",
    }),
    teamId: t.id({ description: "Global ID of an active team; null removes the user from its team." }),
    accessProfileId: t.id({ description: "Global ID of an active access profile; null = role default." }),
    inboxLimit: t.field({ type: InboxLimitInput, description: "DEFAULT inherits the team's limit." }),
  }),
});

type UserInputShape = {
  email?: string | null;
  name?: string | null;
  alias?: string | null;
  role?: "ADMIN" | "SUPERVISOR" | "AGENT" | null;
  teamId?: string | number | null;
  accessProfileId?: string | number | null;
  inboxLimit?: { mode: "DEFAULT" | "LIMIT" | "OFF"; value?: number | null } | null;
};

function userInput(input: UserInputShape) {
  return {
    email: input.email ?? undefined,
    name: input.name ?? undefined,
    alias: input.alias,
    role: input.role ?? undefined,
    teamId: decodeOptionalRef(input.teamId == null ? input.teamId : String(input.teamId), "Team", "teamId"),
    accessProfileId: decodeOptionalRef(
      input.accessProfileId == null ? input.accessProfileId : String(input.accessProfileId),
      "AccessProfile",
      "accessProfileId",
    ),
    inboxLimit: inboxLimitFromInput(input.inboxLimit),
  };
}

const AgentSkillInput = builder.inputType("AgentSkillInput", {
  description: "One skill an agent holds.",
  fields: (t) => ({
    skillId: t.id({ required: true, description: "Global ID of an active skill of this tenant." }),
    proficiency: t.int({ required: true, description: "1 (novice) … 10 (expert)." }),
  }),
});

builder.queryFields((t) => ({
  users: t.withAuth({ authenticated: true }).connection({
    type: UserRef,
    description:
      "Users of the caller's tenant, ordered by name. ADMIN and SUPERVISOR see everyone; an AGENT sees only itself.",
    args: {
      search: t.arg.string({ description: "Case-insensitive substring of name, email or alias." }),
      role: t.arg({ type: RoleEnum, description: "Only users with this role." }),
      teamId: t.arg.id({ description: "Only members of this team (global ID)." }),
      includeArchived: t.arg.boolean({ description: "Include archived users (default false)." }),
    },
    resolve: (_root, args, ctx) => {
      const teamId = args.teamId ? decodeFilterId(String(args.teamId), "Team") : null;
      if (args.teamId && !teamId) return offsetConnection(args, async () => []);
      return offsetConnection(args, (page) =>
        listUsers(
          ctx.engine,
          ctx.viewer,
          {
            search: args.search,
            role: args.role,
            teamId,
            includeArchived: args.includeArchived ?? false,
          },
          page,
        ),
      );
    },
  }),
  user: t.withAuth({ authenticated: true }).field({
    type: UserRef,
    nullable: true,
    description:
      "One user by global ID; null when unknown, in another tenant, or (for an AGENT) anyone but itself.",
    args: { id: t.arg.id({ required: true, description: "The user's global ID." }) },
    resolve: async (_root, { id }, ctx): Promise<UserRow | null> => {
      const raw = decodeFilterId(String(id), "User");
      if (!raw) return null;
      return getUser(ctx.engine, ctx.viewer, raw).catch((e) => {
        if (e instanceof NotFoundError) return null;
        throw e;
      });
    },
  }),
}));

builder.mutationFields((t) => ({
  createUser: t.withAuth({ admin: true }).field({
    type: UserRef,
    description: "Creates a user (no API key yet: use createApiKey). ADMIN only.",
    errors: { types: standardErrors },
    args: { input: t.arg({ type: CreateUserInput, required: true, description: "The new user." }) },
    resolve: (_root, { input }, ctx) => createUser(ctx.engine, ctx.viewer, userInput(input)),
  }),
  updateUser: t.withAuth({ admin: true }).field({
    type: UserRef,
    description: "Changes a user. ADMIN only.",
    errors: { types: standardErrors },
    args: {
      id: t.arg.id({ required: true, description: "The user's global ID." }),
      input: t.arg({ type: UpdateUserInput, required: true, description: "Fields to change." }),
    },
    resolve: (_root, { id, input }, ctx) =>
      updateUser(ctx.engine, ctx.viewer, decodeId(String(id), "User"), userInput(input)),
  }),
  archiveUser: t.withAuth({ admin: true }).field({
    type: UserRef,
    description:
      "Archives a user: its API keys are revoked at once, it is logged out, history keeps referring to it. The last active ADMIN cannot be archived. Idempotent. ADMIN only.",
    errors: { types: standardErrors },
    args: { id: t.arg.id({ required: true, description: "The user's global ID." }) },
    resolve: (_root, { id }, ctx) => archiveUser(ctx.engine, ctx.viewer, decodeId(String(id), "User")),
  }),
  restoreUser: t.withAuth({ admin: true }).field({
    type: UserRef,
    description:
      "Un-archives a user (its email stays reserved while archived). Its old API keys stay revoked: issue a new one. Idempotent. ADMIN only.",
    errors: { types: standardErrors },
    args: { id: t.arg.id({ required: true, description: "The user's global ID." }) },
    resolve: (_root, { id }, ctx) => restoreUser(ctx.engine, ctx.viewer, decodeId(String(id), "User")),
  }),
  setAgentSkills: t.withAuth({ admin: true }).field({
    type: UserRef,
    description: "Replaces the user's whole skill set (an empty list removes every skill). ADMIN only.",
    errors: { types: standardErrors },
    args: {
      userId: t.arg.id({ required: true, description: "The user's global ID." }),
      skills: t.arg({
        type: [AgentSkillInput],
        required: true,
        description: "The complete new set; each skill at most once, proficiency 1–10.",
      }),
    },
    resolve: (_root, { userId, skills }, ctx) =>
      setAgentSkills(
        ctx.engine,
        ctx.viewer,
        decodeId(String(userId), "User"),
        skills.map((s, i) => ({
          skillId: decodeRef(String(s.skillId), "Skill", `skills[${i}].skillId`),
          proficiency: s.proficiency,
        })),
      ),
  }),
}));
