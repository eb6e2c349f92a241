import {
  archiveSkill,
  createSkill,
  getSkill,
  listSkills,
  type Skill,
  updateSkill,
} from "../engine/config/skills.js";
import { NotFoundError } from "../engine/errors.js";
import { builder } from "./builder.js";
import { standardErrors } from "./errors.js";
import { decodeId } from "./ids.js";
import { loadVisible } from "./load.js";
import { offsetConnection } from "./paging.js";
import { decodeFilterId } from "./refs.js";

export const SkillRef = builder.objectRef<Skill>("Skill");

builder.node(SkillRef, {
  description:
    "Something an agent can be good at (a language, a product). Routing can require skills and prefer higher proficiency.",
  id: { resolve: (s) => s.id, description: "Global ID (opaque)." },
  loadOne: loadVisible(SkillRef, getSkill),
  fields: (t) => ({
    name: t.exposeString("name", {
      description:
        "2–30 letters, digits and `- _ . :`; unique per tenant, case-insensitively, including archived skills.",
    }),
    description: t.exposeString("description", { description: "Free text for admins." }),
    archivedAt: t.expose("archivedAt", {
      type: "DateTime",
      nullable: true,
      description: "Set once archived; archived skills are hidden from agents' skill lists.",
    }),
    createdAt: t.expose("createdAt", { type: "DateTime", description: "When it was created." }),
    updatedAt: t.expose("updatedAt", { type: "DateTime", description: "Last change." }),
  }),
});

const SkillInput = builder.inputType("SkillInput", {
  description: "Fields of a skill. On update, omitted fields stay unchanged.",
  fields: (t) => ({
    name: t.string({
      description:
        "2–30 letters, digits and `- _ . :`; unique per tenant (case-insensitive). Required on create.",
    }),
    description: t.string({ description: "Up to 500 characters." }),
  }),
});

function skillInput(input: typeof SkillInput.$inferInput) {
  return { name: input.name ?? undefined, description: input.description ?? undefined };
}

builder.queryFields((t) => ({
  skills: t.withAuth({ authenticated: true }).connection({
    type: SkillRef,
    description: "Skills of the caller's tenant, ordered by name. Any role.",
    args: {
      search: t.arg.string({ description: "Case-insensitive substring of the name." }),
      includeArchived: t.arg.boolean({ description: "Include archived skills (default false)." }),
    },
    resolve: (_root, args, ctx) =>
      offsetConnection(args, (page) =>
        listSkills(
          ctx.engine,
          ctx.viewer,
          { search: args.search, includeArchived: args.includeArchived ?? false },
          page,
        ),
      ),
  }),
  skill: t.withAuth({ authenticated: true }).field({
    type: SkillRef,
    nullable: true,
    description: "One skill by global ID; null when unknown or in another tenant. Any role.",
    args: { id: t.arg.id({ required: true, description: "The skill's global ID." }) },
    resolve: async (_root, { id }, ctx) => {
      const raw = decodeFilterId(String(id), "Skill");
      if (!raw) return null;
      return getSkill(ctx.engine, ctx.viewer, raw).catch((e) => {
        if (e instanceof NotFoundError) return null;
        throw e;
      });
    },
  }),
}));

builder.mutationFields((t) => ({
  createSkill: t.withAuth({ admin: true }).field({
    type: SkillRef,
    description: "Creates a skill. ADMIN only.",
    errors: { types: standardErrors },
    args: {
      input: t.arg({ type: SkillInput, required: true, description: "The new skill; name is required." }),
    },
    resolve: (_root, { input }, ctx) => createSkill(ctx.engine, ctx.viewer, skillInput(input)),
  }),
  updateSkill: t.withAuth({ admin: true }).field({
    type: SkillRef,
    description: "Changes a skill, archived or not (renaming an archived skill frees its name). ADMIN only.",
    errors: { types: standardErrors },
    args: {
      id: t.arg.id({ required: true, description: "The skill's global ID." }),
      input: t.arg({ type: SkillInput, required: true, description: "Fields to change." }),
    },
    resolve: (_root, { id, input }, ctx) =>
      updateSkill(ctx.engine, ctx.viewer, decodeId(String(id), "Skill"), skillInput(input)),
  }),
  archiveSkill: t.withAuth({ admin: true }).field({
    type: SkillRef,
    description:
      "Archives a skill: it can no longer be assigned and disappears from agents' skills; its name stays taken. Idempotent. ADMIN only.",
    errors: { types: standardErrors },
    args: { id: t.arg.id({ required: true, description: "The skill's global ID." }) },
    resolve: (_root, { id }, ctx) => archiveSkill(ctx.engine, ctx.viewer, decodeId(String(id), "Skill")),
  }),
}));
