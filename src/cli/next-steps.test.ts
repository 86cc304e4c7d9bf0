// Issue 14, item 4: the commands printed in "Next steps" work as printed. `perimeter help serve` prints help (it was
// a usage error), a service missing several secrets names all of them in one error (it named one per attempt), and
// the image tells `perimeter approvals` where the rendered config is mounted, so it runs in a container without -c.
import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { PassThrough, Writable } from "node:stream";
import { test } from "node:test";
import { runCli } from "./main.ts";

async function cli(argv: string[], env: Record<string, string | undefined> = { PATH: process.env.PATH }, cwd = process.cwd()): Promise<{ code: number; stdout: string; stderr: string }> {
  let stdout = "";
  let stderr = "";
  const code = await runCli(argv, {
    stdout: new Writable({ write: (chunk: Buffer, _encoding, done) => ((stdout += chunk.toString("utf8")), done()) }),
    stderr: new Writable({ write: (chunk: Buffer, _encoding, done) => ((stderr += chunk.toString("utf8")), done()) }),
    stdin: new PassThrough(),
    env,
    cwd,
    signal: AbortSignal.timeout(60_000),
    onReload: () => undefined,
  });
  return { code, stdout, stderr };
}

test("perimeter help serve prints the services and how to get each one's flags (exit 0)", async () => {
  for (const argv of [["help", "serve"], ["serve", "--help"], ["serve"]]) {
    const { code, stdout } = await cli(argv);
    assert.equal(code, argv.length === 1 ? 2 : 0, argv.join(" "));
    for (const service of ["egress-proxy", "sandbox", "mcp-guard", "llm-proxy", "dashboard"]) assert.match(stdout, new RegExp(`perimeter serve ${service}`), argv.join(" "));
  }
  const mcpGuard = await cli(["help", "serve", "mcp-guard"]);
  assert.equal(mcpGuard.code, 0);
  assert.match(mcpGuard.stdout, /mcp-guard/);
  assert.match(mcpGuard.stdout, /Usage/i);
});

test("a service missing several secrets names every missing variable in one error, and no value", async () => {
  const directory = mkdtempSync(join(tmpdir(), "missing-secrets-"));
  try {
    const file = join(directory, "perimeter.yaml");
    writeFileSync(
      file,
      [
        "version: 1",
        "name: t",
        "mcp:",
        "  servers:",
        "    github:",
        "      url: http://127.0.0.1:9/mcp",
        '      headers: { Authorization: "Bearer ${GITHUB_TOKEN}", X-Other: "${OTHER_TOKEN}" }',
        `audit: { path: ${join(directory, "audit.db")} }`,
        "",
      ].join("\n"),
    );
    // PERIMETER_AGENT_TOKEN is set; the admin token and both upstream variables are not.
    const { code, stderr } = await cli(["serve", "mcp-guard", "-c", file, "--listen", "127.0.0.1:0", "--admin-listen", "127.0.0.1:0"], {
      PATH: process.env.PATH,
      PERIMETER_AGENT_TOKEN: "agent-token-value-0123456789",
    });
    assert.equal(code, 2, stderr);
    for (const name of ["PERIMETER_ADMIN_TOKEN", "GITHUB_TOKEN", "OTHER_TOKEN"]) assert.match(stderr, new RegExp(name), `names ${name}`);
    assert.doesNotMatch(stderr, /PERIMETER_AGENT_TOKEN/, "a variable that is set is not listed");
    assert.doesNotMatch(stderr, /agent-token-value/);
  } finally {
    rmSync(directory, { recursive: true, force: true });
  }
});

test("the image sets PERIMETER_CONFIG to the path every render mounts the config at", () => {
  const dockerfile = readFileSync(join(import.meta.dirname, "../../Dockerfile"), "utf8");
  assert.match(dockerfile, /PERIMETER_CONFIG=\/etc\/perimeter\/perimeter\.yaml/);
  const compose = readFileSync(join(import.meta.dirname, "../render/compose/render.ts"), "utf8");
  assert.match(compose, /\.\/config:\/etc\/perimeter:ro/, "compose mounts ./config at /etc/perimeter");
});

test("render's next steps say that with trust-on-first-use off the agent has no tools until reviewed, and how to review (kubernetes, compose, vps)", async () => {
  for (const target of ["kubernetes", "compose", "vps"]) {
    const directory = mkdtempSync(join(tmpdir(), `next-steps-${target}-`));
    try {
      const example = join(import.meta.dirname, "../../examples", target === "vps" ? "vps.yaml" : "compose-vps.yaml");
      const { code, stdout, stderr } = await cli(["render", "-c", example, "-t", target, "-o", join(directory, "out")]);
      assert.equal(code, 0, stderr);
      assert.match(stdout, /trustOnFirstUse is off: the agent has no tools until you review them/, target);
      assert.match(stdout, /perimeter approvals review/, target);
    } finally {
      rmSync(directory, { recursive: true, force: true });
    }
  }
});

test("llm-proxy and egress-proxy also name every missing variable at once", async () => {
  const directory = mkdtempSync(join(tmpdir(), "missing-secrets-"));
  try {
    const egress = join(directory, "egress.yaml");
    writeFileSync(
      egress,
      ["version: 1", "name: t", "egress:", "  clients:", "    - { name: hermes, tokenSecret: HERMES_PROXY_TOKEN }", "    - { name: bot, tokenSecret: BOT_PROXY_TOKEN }", ""].join("\n"),
    );
    const configs: Record<string, string> = { "llm-proxy": join(import.meta.dirname, "../../examples/kubernetes-full.yaml"), "egress-proxy": egress };
    for (const [service, file] of Object.entries(configs)) {
      const { code, stderr } = await cli(["serve", service, "-c", file, "--listen", "127.0.0.1:0"], { PATH: process.env.PATH });
      assert.equal(code, 2, `${service}: ${stderr}`);
      assert.match(stderr, /\d+ environment variables are missing/, `${service}: ${stderr}`);
      const listed = stderr.split("\n").filter((line) => /^\s+[A-Z_][A-Z0-9_]*: /.test(line));
      assert.ok(listed.length >= 2, `${service} lists each missing variable on its own line: ${stderr}`);
    }
  } finally {
    rmSync(directory, { recursive: true, force: true });
  }
});
