import { builder } from "./builder.js";

export const InboxLimitMode = builder.enumType("InboxLimitMode", {
  description: "How an inbox limit is set.",
  values: {
    DEFAULT: { description: "Inherit: an agent takes the team's limit, a team the system default." },
    LIMIT: { description: "At most `value` conversations assigned or parked at once." },
    OFF: { description: "No automatic delivery (agents still pick conversations themselves)." },
  } as const,
});

export interface InboxLimitShape {
  inboxLimit: number | null;
  inboxLimitOff: boolean;
}

export const InboxLimit = builder.objectRef<InboxLimitShape>("InboxLimit").implement({
  description: "An inbox limit: the most conversations parked or assigned to an agent at once.",
  fields: (t) => ({
    mode: t.field({
      type: InboxLimitMode,
      description: "DEFAULT, LIMIT or OFF.",
      resolve: (l) => (l.inboxLimitOff ? "OFF" : l.inboxLimit === null ? "DEFAULT" : "LIMIT"),
    }),
    value: t.int({
      nullable: true,
      description: "The limit when mode is LIMIT.",
      resolve: (l) => (l.inboxLimitOff ? null : l.inboxLimit),
    }),
  }),
});

export const InboxLimitInput = builder.inputType("InboxLimitInput", {
  description: "Sets an inbox limit. LIMIT requires `value` (0–1,000).",
  fields: (t) => ({
    mode: t.field({ type: InboxLimitMode, required: true, description: "DEFAULT, LIMIT or OFF." }),
    value: t.int({ description: "The limit, required with LIMIT." }),
  }),
});

/** Input → engine value: null (inherit), "OFF" or a number; a LIMIT without value is caught by validation. */
export function inboxLimitFromInput(
  input: { mode: "DEFAULT" | "LIMIT" | "OFF"; value?: number | null } | null | undefined,
): number | "OFF" | null | undefined {
  if (input === undefined) return undefined;
  if (input === null || input.mode === "DEFAULT") return null;
  if (input.mode === "OFF") return "OFF";
  return input.value ?? Number.NaN;
}

export const ListFilterArgs = {
  search: { description: "Case-insensitive substring of the name." },
  includeArchived: { description: "Include archived objects (default false)." },
} as const;
