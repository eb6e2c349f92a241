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
import { MAX_NODES } from "./schema/builder.js";
import { PAGE_SIZES } from "./schema/paging.js";

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
 * page size (`PAGE_SIZES`). Nothing is done when neither applies: the validation saw all.
 */
export function useVariableCostLimit(maxCost: number): Plugin {
  const rule = costLimitRule({ maxCost });
  const check = (args: {
    schema: GraphQLSchema;
    document: DocumentNode;
    variableValues?: Record<string, unknown> | null;
    operationName?: string | null;
  }) => {
    const document = withPageSizes(
      args.schema,
      args.document,
      args.variableValues ?? {},
      args.operationName ?? null,
    );
    return document === args.document ? [] : costErrors(args.schema, document, rule);
  };
  return {
    onExecute({ args, setResultAndStopExecution }) {
      const errors = check(args);
      if (errors.length > 0) setResultAndStopExecution({ errors });
    },
    // Subscriptions over HTTP (server-sent events) go through `subscribe`, not `execute`:
    // the third re-probe of session 16 streamed 46 MB in 8 s from one that graphql-ws
    // refuses. (graphql-ws subscriptions are checked in server.ts before they start.)
    onSubscribe({ args, setResultAndStopExecution }) {
      const errors = check(args);
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
  operationName: string | null = null,
): GraphQLError[] {
  return costErrors(
    schema,
    withPageSizes(schema, document, variables, operationName),
    costLimitRule({ maxCost }),
  );
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
 * `document` as the server will run it, for the cost rule: only the operation that runs
 * (`operationName`, or the only one) with the fragments; each `first:`/`last:` that holds
 * an integer (a literal, or a variable the request gives or the operation defaults) written
 * in as a literal, the others (null, a variable left out) dropped; and a `first:` of its
 * default page size on every connection left without a size. The same object when nothing
 * changed. The re-probes of session 16 found three ways past the first version: a variable
 * named like an Object.prototype member (`$constructor`) read as given; a default taken
 * from another operation of the document; `first: null, last: 500` counted as 1 (the rule
 * reads only the first size argument it meets).
 */
/** The page a connection serves when asked without `first`/`last` (`PAGE_SIZES`). */
function defaultPage(field: string): number {
  const sizes = PAGE_SIZES as Record<string, { default: number } | undefined>;
  return (sizes[field] ?? PAGE_SIZES.offset).default;
}

function withPageSizes(
  schema: GraphQLSchema,
  document: DocumentNode,
  vars: Record<string, unknown>,
  operationName: string | null,
): DocumentNode {
  let changed = false;
  const operations = document.definitions.filter((d) => d.kind === Kind.OPERATION_DEFINITION);
  const selected =
    operations.length === 1 ? operations[0] : operations.find((o) => o.name?.value === operationName);
  if (operations.length > 1 && selected) {
    changed = true;
    document = {
      ...document,
      definitions: document.definitions.filter((d) => d.kind !== Kind.OPERATION_DEFINITION || d === selected),
    };
  }
  // A variable the request leaves out takes its default from the operation, if any.
  const defaults = new Map<string, unknown>();
  for (const v of selected?.variableDefinitions ?? []) {
    if (v.defaultValue) defaults.set(v.variable.name.value, valueFromASTUntyped(v.defaultValue));
  }
  const variable = (name: string) => (Object.hasOwn(vars, name) ? vars[name] : defaults.get(name));
  // The size an argument holds: an integer, or null for none (null, a variable that is
  // null or left out without a default).
  const size = (a: ArgumentNode): number | null => {
    const v = a.value.kind === Kind.VARIABLE ? variable(a.value.name.value) : valueFromASTUntyped(a.value);
    return typeof v === "number" && Number.isInteger(v) ? v : null;
  };
  const literal = (name: string, n: number): ArgumentNode => ({
    kind: Kind.ARGUMENT,
    name: { kind: Kind.NAME, value: name },
    value: { kind: Kind.INT, value: String(n) },
  });
  const typeInfo = new TypeInfo(schema);
  const out = visit(
    document,
    visitWithTypeInfo(typeInfo, {
      Field(node: FieldNode) {
        const type = typeInfo.getType();
        const parent = typeInfo.getParentType();
        if (parent?.name === "Query" && node.name.value === "nodes") {
          // A list of up to 100 objects counted as one (third re-probe: 100 copies of one
          // conversation with two messages(first: 500) served 100,000 rows, 103 MB): counted
          // as a page of as many as the IDs given.
          const ids = node.arguments?.find((a) => a.name.value === "ids");
          const given =
            ids?.value.kind === Kind.LIST
              ? ids.value.values.length
              : ids?.value.kind === Kind.VARIABLE
                ? (variable(ids.value.name.value) as unknown[] | undefined)?.length
                : undefined;
          changed = true;
          return { ...node, arguments: [...(node.arguments ?? []), literal("first", given ?? MAX_NODES)] };
        }
        if (!type || !parent || !getNamedType(type).name.endsWith("Connection")) return undefined;
        const sizes = (node.arguments ?? []).filter(
          (a) => a.name.value === "first" || a.name.value === "last",
        );
        const rest = (node.arguments ?? []).filter((a) => !sizes.includes(a));
        const given = sizes.flatMap((a) => {
          const n = size(a);
          return n === null ? [] : [literal(a.name.value, n)];
        });
        const same =
          sizes.length > 0 && given.length === sizes.length && sizes.every((a) => a.value.kind === Kind.INT);
        if (same) return undefined;
        changed = true;
        // No size: counted at the default page, as served.
        const sized =
          given.length > 0 ? given : [literal("first", defaultPage(`${parent.name}.${node.name.value}`))];
        return { ...node, arguments: [...rest, ...sized] };
      },
    }),
  );
  return changed ? out : document;
}
