import {
  archiveBrandedTemplate,
  type BrandedTemplate,
  createBrandedTemplate,
  getBrandedTemplate,
  listBrandedTemplates,
  updateBrandedTemplate,
} from "../engine/config/content.js";
import { builder } from "./builder.js";
import { standardErrors } from "./errors.js";
import { decodeId } from "./ids.js";
import { loadVisible } from "./load.js";
import { offsetConnection } from "./paging.js";

export const BrandedTemplateRef = builder.objectRef<BrandedTemplate>("BrandedTemplate");

builder.node(BrandedTemplateRef, {
  description:
    "An HTML frame an email address wraps around outbound bodies (SPEC §2): the body replaces the one `{{content}}` placeholder. Readable by every user of the tenant; written by ADMIN.",
  id: { resolve: (b) => b.id },
  loadOne: loadVisible(BrandedTemplateRef, getBrandedTemplate),
  fields: (t) => ({
    name: t.exposeString("name", { description: "Display name, 1–100 characters." }),
    html: t.exposeString("html", {
      description:
        "The sanitised HTML (html/head/body, tables and inline styles kept; scripts, <style> elements, event handlers and javascript: URLs removed), with exactly one `{{content}}`.",
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

const BrandedTemplateInput = builder.inputType("BrandedTemplateInput", {
  description: "Fields of a branded template. On update, omitted fields stay unchanged.",
  fields: (t) => ({
    name: t.string({ description: "1–100 characters; required on create." }),
    html: t.string({
      description:
        "Required on create; up to 500,000 characters. Must contain exactly one `{{content}}` after sanitising, else a ValidationError on `html`.",
    }),
  }),
});

function brandedInput(input: typeof BrandedTemplateInput.$inferInput) {
  return { name: input.name ?? undefined, html: input.html ?? undefined };
}

builder.queryFields((t) => ({
  brandedTemplates: t.withAuth({ authenticated: true }).connection({
    type: BrandedTemplateRef,
    description: "Branded templates of the caller's tenant, ordered by name. Any role.",
    args: {
      search: t.arg.string({ description: "Case-insensitive substring of the name." }),
      includeArchived: t.arg.boolean({ description: "Include archived templates (default false)." }),
    },
    resolve: (_root, args, ctx) =>
      offsetConnection(args, (page) =>
        listBrandedTemplates(
          ctx.engine,
          ctx.viewer,
          { search: args.search, includeArchived: args.includeArchived ?? false },
          page,
        ),
      ),
  }),
}));

builder.mutationFields((t) => ({
  createBrandedTemplate: t.withAuth({ admin: true }).field({
    type: BrandedTemplateRef,
    description: "Creates a branded template. ADMIN only.",
    errors: { types: standardErrors },
    args: {
      input: t.arg({
        type: BrandedTemplateInput,
        required: true,
        description: "name and html are required.",
      }),
    },
    resolve: (_root, { input }, ctx) => createBrandedTemplate(ctx.engine, ctx.viewer, brandedInput(input)),
  }),
  updateBrandedTemplate: t.withAuth({ admin: true }).field({
    type: BrandedTemplateRef,
    description: "Changes a branded template. ADMIN only.",
    errors: { types: standardErrors },
    args: {
      id: t.arg.id({ required: true, description: "The template's global ID." }),
      input: t.arg({ type: BrandedTemplateInput, required: true, description: "Fields to change." }),
    },
    resolve: (_root, { id, input }, ctx) =>
      updateBrandedTemplate(
        ctx.engine,
        ctx.viewer,
        decodeId(String(id), "BrandedTemplate"),
        brandedInput(input),
      ),
  }),
  archiveBrandedTemplate: t.withAuth({ admin: true }).field({
    type: BrandedTemplateRef,
    description: "Archives a branded template. ADMIN only.",
    errors: { types: standardErrors },
    args: { id: t.arg.id({ required: true, description: "The template's global ID." }) },
    resolve: (_root, { id }, ctx) =>
      archiveBrandedTemplate(ctx.engine, ctx.viewer, decodeId(String(id), "BrandedTemplate")),
  }),
}));
