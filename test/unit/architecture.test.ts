import { readdirSync, readFileSync, statSync } from "node:fs";
import { join, relative } from "node:path";
import { describe, expect, it } from "vitest";

const root = new URL("../../", import.meta.url).pathname;

function files(dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    const p = join(dir, name);
    return statSync(p).isDirectory() ? files(p) : p.endsWith(".ts") ? [p] : [];
  });
}

function imports(file: string): string[] {
  return importsOf(readFileSync(file, "utf8"));
}

function importsOf(src: string): string[] {
  return [
    ...src.matchAll(/(?:import|export)[^'"]*?from\s+["']([^"']+)["']|import\(\s*["']([^"']+)["']\s*\)/g),
  ].map((m) => m[1] ?? m[2] ?? "");
}

// ARCHITECTURE.md: schema → engine → db; connectors/jobs → engine. The engine never
// depends on the outside-world libraries, so its rules stay testable without them.
const FORBIDDEN_IN_ENGINE = [
  /^graphql/,
  /^@pothos\//,
  /^pg-boss/,
  /^imapflow/,
  /^nodemailer/,
  /^mailparser/,
  /^smtp-server/,
  /^ws$/,
  // src/schema (GraphQL), not src/db/schema (tables), which the engine needs.
  /^(?:\.\.?\/)+schema\//,
  /\/connectors\//,
  /\/jobs\//,
  /\/server\.js$/,
  /\/app\.js$/,
];

describe("import direction", () => {
  it("keeps src/engine free of schema, connectors, jobs and their libraries", () => {
    const offenders: string[] = [];
    for (const f of files(join(root, "src/engine"))) {
      for (const spec of imports(f)) {
        if (FORBIDDEN_IN_ENGINE.some((re) => re.test(spec))) offenders.push(`${relative(root, f)} → ${spec}`);
      }
    }
    expect(offenders).toEqual([]);
  });

  it("keeps src/db free of everything above it", () => {
    const offenders = files(join(root, "src/db")).flatMap((f) =>
      imports(f)
        .filter((s) => /\/(schema\/(?!index)|connectors|jobs)\//.test(s) && !s.startsWith("./"))
        .map((s) => `${relative(root, f)} → ${s}`),
    );
    expect(offenders).toEqual([]);
  });

  it("detects a forbidden import (the check itself can fail)", () => {
    expect(FORBIDDEN_IN_ENGINE.some((re) => re.test("../schema/builder.js"))).toBe(true);
    expect(FORBIDDEN_IN_ENGINE.some((re) => re.test("../../db/schema/index.js"))).toBe(false);
    expect(importsOf('import { x } from "graphql";\nexport * from "./a.js";')).toEqual(["graphql", "./a.js"]);
  });
});
