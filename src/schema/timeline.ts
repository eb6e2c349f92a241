import { and, eq, inArray } from "drizzle-orm";
import { user } from "../db/schema/index.js";
import { builder } from "./builder.js";
import { EventRef } from "./event.js";
import { UserRef, type UserRow } from "./viewer.js";

builder.objectField(EventRef, "actor", (t) =>
  t.loadable({
    type: UserRef,
    nullable: true,
    description:
      "The user who acted (an agent changing status, an admin importing mail); null for the system and for customers " +
      "(see actorType). Users of another tenant are never returned.",
    load: async (ids: string[], ctx) => {
      if (!ctx.viewer) return ids.map(() => null);
      const rows = await ctx.engine.db
        .select()
        .from(user)
        .where(and(eq(user.tenantId, ctx.viewer.tenantId), inArray(user.id, ids)));
      const byId = new Map<string, UserRow>(rows.map((r) => [r.id, r]));
      return ids.map((id) => byId.get(id) ?? null);
    },
    resolve: (e) => (e.actorType === "USER" && e.actorId ? e.actorId : null),
  }),
);
