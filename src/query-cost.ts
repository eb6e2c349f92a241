import { costLimitRule } from "@escape.tech/graphql-armor-cost-limit";
import {
  type ArgumentNode,
  type DocumentNode,
  type FieldNode,
  GraphQLError,
  type GraphQLSchema,
  getNamedType,
  Kind,
  TypeInfo,
  validate,
  valueFromASTUntyped,
  visit,
  visitWithTypeInfo,
} from "graphql";
import type { Plugin } from "graphql-yoga";

/**
 * The query cost limit again, at execution, with the page sizes the server will serve.
 * graphql-armor's rule runs at validation, which has no variables: it multiplies a list's
 * cost by `first`/`last` only when they are literals, counts `first: $n` as 1, and counts a
 * connection asked for without `first`/`last` as 1 too, though the server serves its
 * default page (50 conversations, 100 messages or events). Thirty aliases of
 * `conversations(first: $n) { … timeline(first: $m) }` with n = 200 and m = 500 then passed
 * a limit the same query with literals fails, and cost the server ~12,000 statements; the
 * same aliases without any `first` passed for 30 × 50 × 200 rows. Here the document is
 * checked once more by the same rule (same options), with each `first`/`last` variable
 * written in as the integer it holds, and each connection without either given its default
 * page size (`DEFAULT_PAGE`). Nothing is done when neither applies: the validation saw all.
 */
export function useVariableCostLimit(maxCost: number): Plugin {
  const rule = costLimitRule({ maxCost });
  return {
    onExecute({ args, setResultAndStopExecution }) {
      const document = withPageSizes(args.schema, args.document, args.variableValues ?? {});
      if (document === args.document) return;
      const errors = costErrors(args.schema, document, rule);
      if (errors.length > 0) setResultAndStopExecution({ errors });
    },
  };
}

/**
 * What the cost limit says of an operation with these variables, as the server checks it:
 * at validation and at execution (for the docs' examples test and for the plugin above).
 */
export function queryCostErrors(
  schema: GraphQLSchema,
  document: DocumentNode,
  variables: Record<string, unknown>,
  maxCost: number,
): GraphQLError[] {
  return costErrors(schema, withPageSizes(schema, document, variables), costLimitRule({ maxCost }));
}

function costErrors(schema: GraphQLSchema, document: DocumentNode, rule: ReturnType<typeof costLimitRule>) {
  let errors: readonly GraphQLError[];
  try {
    errors = validate(schema, document, [rule]);
  } catch (e) {
    // The rule throws its error rather than reporting it.
    errors = [e instanceof GraphQLError ? e : new GraphQLError(String(e))];
  }
  return errors.map(
    (e) =>
      new GraphQLError(e.message.replace(/^Syntax Error: /, ""), { extensions: { code: "BAD_USER_INPUT" } }),
  );
}

/**
 * The page a connection serves when asked without `first`/`last` (docs/api.md "Paging"):
 * Pothos's offset lists serve 20, the others as their resolvers say.
 */
const DEFAULT_PAGE: Record<string, number> = {
  "Query.conversations": 50,
  "Conversation.messages": 100,
  "Conversation.timeline": 100,
};
const OFFSET_LIST_PAGE = 20;

/**
 * `document` with every `first:`/`last:` variable that holds an integer written in, and a
 * `first:` of its default page size on every connection field asked for without either;
 * the same object when nothing changed.
 */
function withPageSizes(
  schema: GraphQLSchema,
  document: DocumentNode,
  vars: Record<string, unknown>,
): DocumentNode {
  let changed = false;
  // A variable the request leaves out takes its default from the operation, if any.
  const defaults = new Map<string, unknown>();
  for (const d of document.definitions) {
    if (d.kind !== Kind.OPERATION_DEFINITION) continue;
    for (const v of d.variableDefinitions ?? []) {
      if (v.defaultValue) defaults.set(v.variable.name.value, valueFromASTUntyped(v.defaultValue));
    }
  }
  const variable = (name: string) => (vars[name] === undefined ? defaults.get(name) : vars[name]);
  // What a page size argument holds: a null literal, or a variable that is null or left out
  // without a default, is no size (the server serves its default page).
  const given = (a: ArgumentNode) =>
    a.value.kind === Kind.VARIABLE ? variable(a.value.name.value) != null : a.value.kind !== Kind.NULL;
  const typeInfo = new TypeInfo(schema);
  const out = visit(
    document,
    visitWithTypeInfo(typeInfo, {
      Field(node: FieldNode) {
        const type = typeInfo.getType();
        const parent = typeInfo.getParentType();
        if (!type || !parent || !getNamedType(type).name.endsWith("Connection")) return undefined;
        const sizes = (node.arguments ?? []).filter(
          (a) => a.name.value === "first" || a.name.value === "last",
        );
        if (sizes.some(given)) return undefined;
        // No size given: counted at the default page, as served (until the re-probe of
        // session 16 `first: $n` with $n null or left out counted as 1 and was served 50).
        changed = true;
        const size = DEFAULT_PAGE[`${parent.name}.${node.name.value}`] ?? OFFSET_LIST_PAGE;
        const first: ArgumentNode = {
          kind: Kind.ARGUMENT,
          name: { kind: Kind.NAME, value: "first" },
          value: { kind: Kind.INT, value: String(size) },
        };
        const rest = (node.arguments ?? []).filter((a) => !sizes.includes(a));
        return { ...node, arguments: [...rest, first] };
      },
      Argument(node: ArgumentNode) {
        if (node.name.value !== "first" && node.name.value !== "last") return undefined;
        if (node.value.kind !== Kind.VARIABLE) return undefined;
        const value = variable(node.value.name.value);
        if (typeof value !== "number" || !Number.isInteger(value)) return undefined;
        changed = true;
        return { ...node, value: { kind: Kind.INT, value: String(value) } };
      },
    }),
  );
  return changed ? out : document;
}
