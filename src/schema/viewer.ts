import { eq } from "drizzle-orm";
import { tenant, user } from "../db/schema/index.js";
import { getUser } from "../engine/config/users.js";
import { PERMISSIONS, PRESENCES, ROLES } from "../engine/domain.js";
import { builder } from "./builder.js";
import { InboxLimit } from "./common.js";
import { loadVisible } from "./load.js";

export const RoleEnum = builder.enumType("Role", {
  description: "A user's role: ADMIN configures, SUPERVISOR oversees its queues, AGENT works conversations.",
  values: ROLES,
});
export const PermissionEnum = builder.enumType("Permission", {
  description: "An action a role may be allowed (SPEC §1), checked on the server.",
  values: PERMISSIONS,
});
export const PresenceEnum = builder.enumType("Presence", {
  description: "An agent's presence; queues decide which presences receive work.",
  values: PRESENCES,
});

export type UserRow = typeof user.$inferSelect;
export type TenantRow = typeof tenant.$inferSelect;

export const UserRef = builder.objectRef<UserRow>("User");
export const TenantRef = builder.objectRef<TenantRow>("Tenant");

builder.node(UserRef, {
  description: "A person who uses Switchboard: admin, supervisor or agent.",
  id: { resolve: (u) => u.id, description: "Global ID (opaque)." },
  // Same visibility as the `user` query: agents load only themselves.
  loadOne: loadVisible(UserRef, getUser),
  fields: (t) => ({
    email: t.exposeString("email", { description: "Login and contact address; unique per tenant." }),
    name: t.exposeString("name", { description: "Full name shown to colleagues." }),
    alias: t.exposeString("alias", {
      nullable: true,
      description: "Name shown to customers, if not the real name.",
    }),
    role: t.field({ type: RoleEnum, description: "The user's one role.", resolve: (u) => u.role }),
    presence: t.field({ type: PresenceEnum, description: "Current presence.", resolve: (u) => u.presence }),
    presenceReason: t.exposeString("presenceReason", {
      nullable: true,
      description: "Why the agent is away or busy, as they said.",
    }),
    loggedIn: t.exposeBoolean("loggedIn", { description: "Whether the agent is logged in to a desktop." }),
    inboxLimit: t.field({
      type: InboxLimit,
      description: "The agent's own inbox limit; DEFAULT inherits the team's.",
      resolve: (u) => u,
    }),
    archivedAt: t.expose("archivedAt", {
      type: "DateTime",
      nullable: true,
      description: "Set once archived.",
    }),
    createdAt: t.expose("createdAt", { type: "DateTime", description: "When it was created." }),
  }),
});

TenantRef.implement({
  description: "The organisation: every object belongs to exactly one tenant.",
  fields: (t) => ({
    id: t.exposeID("id", { description: "The tenant's ID." }),
    name: t.exposeString("name", { description: "Display name." }),
    company: t.exposeString("company", {
      description: "Company name used in signatures and auto-reply tags.",
    }),
    timeZone: t.exposeString("timeZone", { description: "IANA time zone for dates, daily limits and tags." }),
  }),
});

export const ViewerRef = builder.objectRef<{ userId: string; tenantId: string }>("Viewer").implement({
  description: "The caller, as identified by its API key.",
  fields: (t) => ({
    user: t.field({
      type: UserRef,
      description: "The calling user.",
      resolve: async (v, _a, ctx) => {
        const [row] = await ctx.engine.db.select().from(user).where(eq(user.id, v.userId));
        return row!;
      },
    }),
    tenant: t.field({
      type: TenantRef,
      description: "The caller's tenant.",
      resolve: async (v, _a, ctx) => {
        const [row] = await ctx.engine.db.select().from(tenant).where(eq(tenant.id, v.tenantId));
        return row!;
      },
    }),
    role: t.field({
      type: RoleEnum,
      description: "The caller's role.",
      resolve: (_v, _a, ctx) => ctx.viewer!.role,
    }),
    permissions: t.field({
      type: [PermissionEnum],
      description: "What the caller's role may do.",
      resolve: (_v, _a, ctx) => [...ctx.viewer!.permissions],
    }),
  }),
});

builder.queryField("viewer", (t) =>
  t.withAuth({ authenticated: true }).field({
    type: ViewerRef,
    description: "Who the API key belongs to. Fails with UNAUTHENTICATED without a valid key.",
    resolve: (_root, _args, ctx) => ({ userId: ctx.viewer.userId, tenantId: ctx.viewer.tenantId }),
  }),
);
