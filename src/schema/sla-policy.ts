import { getCalendarsByIds } from "../engine/config/calendars.js";
import {
  archiveSlaPolicy,
  createSlaPolicy,
  type DurationParts,
  durationToMinutes,
  formatDuration,
  getSlaPolicy,
  getTenantDefaultSlaPolicy,
  listSlaPolicies,
  minutesToDuration,
  type SlaPolicy,
  setDefaultSlaPolicy,
  updateSlaPolicy,
} from "../engine/config/sla-policies.js";
import { ValidationError } from "../engine/errors.js";
import { builder } from "./builder.js";
import { BusinessCalendarRef } from "./calendar.js";
import { standardErrors } from "./errors.js";
import { decodeId, decodeOptionalId } from "./ids.js";
import { loadVisible } from "./load.js";
import { offsetConnection } from "./paging.js";

export const SlaPolicyRef = builder.objectRef<SlaPolicy>("SlaPolicy");

const SlaDurationRef = builder.objectRef<number>("SlaDuration").implement({
  description:
    "An SLA target in business time. A day is 24 business hours (1,440 business minutes), not 'the next working day'.",
  fields: (t) => ({
    totalMinutes: t.int({ description: "The target in business minutes (1–525,600).", resolve: (m) => m }),
    days: t.int({
      description: "Whole 24-business-hour days of the breakdown.",
      resolve: (m) => minutesToDuration(m).days,
    }),
    hours: t.int({
      description: "Hours of the breakdown (0–23).",
      resolve: (m) => minutesToDuration(m).hours,
    }),
    minutes: t.int({
      description: "Minutes of the breakdown (0–59).",
      resolve: (m) => minutesToDuration(m).minutes,
    }),
    formatted: t.string({
      description: 'Short form such as "1d 4h 30m".',
      resolve: (m) => formatDuration(m),
    }),
  }),
});

const SlaDurationInput = builder.inputType("SlaDurationInput", {
  description:
    "An SLA target as days/hours/minutes of business time, summed: days × 1,440 + hours × 60 + minutes. Parts may exceed their usual range (e.g. 90 minutes). Total 1–525,600.",
  fields: (t) => ({
    days: t.int({ description: "Business days of 24 business hours; ≥ 0." }),
    hours: t.int({ description: "Business hours; ≥ 0." }),
    minutes: t.int({ description: "Business minutes; ≥ 0." }),
  }),
});

builder.node(SlaPolicyRef, {
  description:
    "Response and resolution targets counted in business hours only (SPEC §2). The tenant default applies unless an address or queue names another. Readable by every user of the tenant; written by ADMIN.",
  id: { resolve: (p) => p.id },
  loadOne: loadVisible(SlaPolicyRef, getSlaPolicy),
  fields: (t) => ({
    name: t.exposeString("name", { description: "Display name, 1–100 characters." }),
    firstResponse: t.field({
      type: SlaDurationRef,
      nullable: true,
      description: "Target for the first agent reply; null = none.",
      resolve: (p) => p.firstResponseMinutes,
    }),
    nextResponse: t.field({
      type: SlaDurationRef,
      nullable: true,
      description: "Target for each later reply after a customer message; null = none.",
      resolve: (p) => p.nextResponseMinutes,
    }),
    resolution: t.field({
      type: SlaDurationRef,
      nullable: true,
      description: "Target for resolving the conversation; null = none.",
      resolve: (p) => p.resolutionMinutes,
    }),
    warningPercent: t.exposeInt("warningPercent", {
      description: "Share of a target (1–99 %) after which a warning is raised.",
    }),
    calendar: t.loadable({
      type: BusinessCalendarRef,
      nullable: true,
      description: "Business hours used when the queue has no calendar; null = counted around the clock.",
      load: (ids: string[], ctx) =>
        ctx.viewer ? getCalendarsByIds(ctx.engine, ctx.viewer, ids) : Promise.resolve(ids.map(() => null)),
      resolve: (p) => p.calendarId,
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

const SlaPolicyInput = builder.inputType("SlaPolicyInput", {
  description:
    "Fields of an SLA policy. On update, omitted fields stay unchanged and null clears a target. At least one target must remain.",
  fields: (t) => ({
    name: t.string({ description: "1–100 characters; required on create." }),
    firstResponse: t.field({ type: SlaDurationInput, description: "First-response target; null = none." }),
    nextResponse: t.field({ type: SlaDurationInput, description: "Next-response target; null = none." }),
    resolution: t.field({ type: SlaDurationInput, description: "Resolution target; null = none." }),
    warningPercent: t.int({ description: "1–99; default 80." }),
    calendarId: t.id({ description: "A BusinessCalendar's global ID; null = around the clock." }),
  }),
});

function target(d: DurationParts | null | undefined): number | null | undefined {
  if (d === undefined) return undefined;
  return d === null ? null : durationToMinutes(d);
}

function policyInput(input: typeof SlaPolicyInput.$inferInput) {
  return {
    name: input.name ?? undefined,
    firstResponseMinutes: target(input.firstResponse),
    nextResponseMinutes: target(input.nextResponse),
    resolutionMinutes: target(input.resolution),
    warningPercent: input.warningPercent ?? undefined,
    calendarId: decodeCalendarId(input.calendarId),
  };
}

/** A malformed or foreign calendar ID is a field problem of this input, not a missing policy. */
function decodeCalendarId(id: string | number | null | undefined): string | null | undefined {
  try {
    return decodeOptionalId(id === null || id === undefined ? id : String(id), "BusinessCalendar");
  } catch {
    throw new ValidationError({ field: "calendarId", message: "no such business-hours calendar" });
  }
}

const SetDefaultSlaPolicyPayload = builder
  .objectRef<{ policy: SlaPolicy | null }>("SetDefaultSlaPolicyPayload")
  .implement({
    description: "The tenant's default SLA policy after the change.",
    fields: (t) => ({
      policy: t.field({
        type: SlaPolicyRef,
        nullable: true,
        description: "The new default; null when the default was cleared.",
        resolve: (r) => r.policy,
      }),
    }),
  });

builder.queryFields((t) => ({
  slaPolicies: t.withAuth({ authenticated: true }).connection({
    type: SlaPolicyRef,
    description: "SLA policies of the caller's tenant, ordered by name. Any role.",
    args: {
      search: t.arg.string({ description: "Case-insensitive substring of the name." }),
      includeArchived: t.arg.boolean({ description: "Include archived policies (default false)." }),
    },
    resolve: (_root, args, ctx) =>
      offsetConnection(args, (page) =>
        listSlaPolicies(
          ctx.engine,
          ctx.viewer,
          { search: args.search, includeArchived: args.includeArchived ?? false },
          page,
        ),
      ),
  }),
  tenantDefaultSlaPolicy: t.withAuth({ authenticated: true }).field({
    type: SlaPolicyRef,
    nullable: true,
    description: "The policy used when neither the address nor the queue names one; null = no SLA. Any role.",
    resolve: (_root, _args, ctx) => getTenantDefaultSlaPolicy(ctx.engine, ctx.viewer),
  }),
}));

builder.mutationFields((t) => ({
  createSlaPolicy: t.withAuth({ admin: true }).field({
    type: SlaPolicyRef,
    description: "Creates an SLA policy. ADMIN only.",
    errors: { types: standardErrors },
    args: {
      input: t.arg({
        type: SlaPolicyInput,
        required: true,
        description: "name and at least one target are required.",
      }),
    },
    resolve: (_root, { input }, ctx) => createSlaPolicy(ctx.engine, ctx.viewer, policyInput(input)),
  }),
  updateSlaPolicy: t.withAuth({ admin: true }).field({
    type: SlaPolicyRef,
    description: "Changes an SLA policy. ADMIN only.",
    errors: { types: standardErrors },
    args: {
      id: t.arg.id({ required: true, description: "The policy's global ID." }),
      input: t.arg({ type: SlaPolicyInput, required: true, description: "Fields to change." }),
    },
    resolve: (_root, { id, input }, ctx) =>
      updateSlaPolicy(ctx.engine, ctx.viewer, decodeId(String(id), "SlaPolicy"), policyInput(input)),
  }),
  archiveSlaPolicy: t.withAuth({ admin: true }).field({
    type: SlaPolicyRef,
    description: "Archives an SLA policy; if it was the tenant default, the default is cleared. ADMIN only.",
    errors: { types: standardErrors },
    args: { id: t.arg.id({ required: true, description: "The policy's global ID." }) },
    resolve: (_root, { id }, ctx) =>
      archiveSlaPolicy(ctx.engine, ctx.viewer, decodeId(String(id), "SlaPolicy")),
  }),
  setDefaultSlaPolicy: t.withAuth({ admin: true }).field({
    type: SetDefaultSlaPolicyPayload,
    description:
      "Sets or clears the tenant's default SLA policy. An archived policy is a ConflictError. ADMIN only.",
    errors: { types: standardErrors },
    args: { id: t.arg.id({ description: "The policy's global ID; null or omitted clears the default." }) },
    resolve: async (_root, { id }, ctx) => ({
      policy: await setDefaultSlaPolicy(
        ctx.engine,
        ctx.viewer,
        id === null || id === undefined ? null : decodeId(String(id), "SlaPolicy"),
      ),
    }),
  }),
}));
