import { GraphQLError, Kind, type ValueNode } from "graphql";
import { builder } from "./builder.js";

builder.scalarType("DateTime", {
  description: "An instant as an ISO 8601 string with time zone, e.g. 2026-11-21T09:30:00.000Z.",
  serialize: (value) => (value as Date).toISOString(),
  parseValue: (value) => {
    const d = typeof value === "string" ? new Date(value) : null;
    if (!d || Number.isNaN(d.getTime())) throw new GraphQLError("DateTime must be an ISO 8601 string");
    return d;
  },
});

function literal(node: ValueNode): unknown {
  switch (node.kind) {
    case Kind.STRING:
    case Kind.BOOLEAN:
      return node.value;
    case Kind.INT:
    case Kind.FLOAT:
      return Number(node.value);
    case Kind.LIST:
      return node.values.map(literal);
    case Kind.OBJECT:
      return Object.fromEntries(node.fields.map((f) => [f.name.value, literal(f.value)]));
    default:
      return null;
  }
}

builder.scalarType("JSON", {
  description: "Free-form JSON: event payloads and details whose shape depends on the event type.",
  serialize: (value) => value,
  parseValue: (value) => value,
  parseLiteral: literal,
});
