import { execFileSync } from "node:child_process";
import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";

/**
 * scripts/patch-deps.mjs (npm postinstall) patches dependencies — among them a fix for a
 * postgres.js bug that kills the process. An install that skipped scripts would run
 * unpatched without a word; `--check` is the guard, and these tests keep it honest.
 */
const repo = join(dirname(fileURLToPath(import.meta.url)), "..", "..");
const script = join(repo, "scripts", "patch-deps.mjs");

function run(args: string[], env: NodeJS.ProcessEnv = {}): { code: number; out: string } {
  try {
    const out = execFileSync(process.execPath, [script, ...args], {
      env: { ...process.env, ...env },
      encoding: "utf8",
      stdio: ["ignore", "pipe", "pipe"],
    });
    return { code: 0, out };
  } catch (err) {
    const e = err as { status: number; stdout: string; stderr: string };
    return { code: e.status, out: `${e.stdout}${e.stderr}` };
  }
}

describe("patch-deps --check", () => {
  it("finds every patch applied in the installed node_modules", () => {
    const r = run(["--check"]);
    expect(r.out).toMatch(/^patch-deps: all \d+ patches applied/);
    expect(r.code).toBe(0);
  });

  it("fails naming a file whose patch is missing, and a patched package that is not installed", () => {
    const root = mkdtempSync(join(tmpdir(), "sb-patch-deps-"));
    try {
      // A copy of the installed node_modules' patched query.js with its patch mark gone.
      const rel = join("postgres", "src", "query.js");
      mkdirSync(join(root, "postgres", "src"), { recursive: true });
      copyFileSync(join(repo, "node_modules", rel), join(root, rel));
      const src = readFileSync(join(root, rel), "utf8");
      writeFileSync(join(root, rel), src.replace("/* switchboard: species as data */", ""));
      const r = run(["--check"], { PATCH_DEPS_ROOT: root });
      expect(r.code).toBe(1);
      expect(r.out).toContain("postgres/src/query.js: the postgres.js Query species patch not applied");
      expect(r.out).toContain(
        "smtp-server/dist/esm/smtp-stream.js / smtp-server/dist/cjs/smtp-stream.js: not installed",
      );
      // Without --check the script refuses a file that no longer looks like upstream.
      const apply = run([], { PATCH_DEPS_ROOT: root });
      expect(apply.code).not.toBe(0);
      expect(apply.out).toContain(
        "postgres/src/query.js changed upstream; review the postgres.js Query species patch",
      );
    } finally {
      rmSync(root, { recursive: true, force: true });
    }
  });
});
