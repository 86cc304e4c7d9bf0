// Argument constraints as an attacker reads them (issue 12, item 4): every constraint fails closed. A value of the
// wrong shape is a violation, null is a value like any other, glob wildcards stay inside one path segment and never
// match control or invisible characters, a path-like value cannot climb out of its root by any spelling (dot
// segments, percent-encoding, backslashes, fullwidth look-alikes, empty segments), a pattern cannot be made to
// backtrack for minutes, and the value the guard checks is the value the upstream receives. The pure decision is
// attacked first; the last tests go through a real guard on loopback.
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import type { Client } from "@modelcontextprotocol/client";
import { Client as McpClient, StreamableHTTPClientTransport } from "@modelcontextprotocol/client";
import { ConfigError, parseConfig } from "../config/index.ts";
import { checkArguments, compileConstraints } from "./arguments.ts";
import type { CompiledConstraint } from "./arguments.ts";
import { resultText, startGuard, startRecordingServer } from "./testing.ts";
import type { RecordingServer, StartedGuard } from "./testing.ts";

function constraintsOf(argumentsYaml: string): CompiledConstraint[] {
  const config = parseConfig(`
version: 1
name: t
mcp:
  servers:
    github:
      url: https://api.example.invalid/mcp
      tools: { allow: ["*"] }
      arguments:
${argumentsYaml}
`);
  return compileConstraints(config.mcp.servers.github!.arguments);
}

/** The config's refusal, or a failure naming what was accepted. */
function refusalOf(argumentsYaml: string): string {
  try {
    constraintsOf(argumentsYaml);
  } catch (error) {
    assert.ok(error instanceof ConfigError, `expected a ConfigError, got ${String(error)}`);
    return error.message;
  }
  assert.fail(`the config was accepted:\n${argumentsYaml}`);
}

const ISSUES = `
        "*": { owner: { enum: [my-org] } }
        create_issue:
          repo: { pattern: "[a-z0-9-]+" }
          count: { min: 1, max: 5 }
          level: { enum: [1, 2, 3] }
          channel: { enum: ["123456789012345678"] }
          "labels[*]": { glob: [bug, "area/*"] }
          "options.depth": { max: 3 }
          "files[*].name": { glob: ["*.md"] }
          segment: { pattern: "[^/]+" }
          home: { pattern: "/home/[a-z]+/.*" }
          link: { glob: ["https://github.com/my-org/*"] }
          docs: { glob: ["docs/**"] }
`;

const PATHS = `
        read_file:
          path: { path: { under: /work } }
          "files[*]": { path: { under: [/work, /tmp/scratch] } }
          relative: { path: { under: "." } }
`;

function denied(constraints: readonly CompiledConstraint[], tool: string, args: unknown, reason: RegExp): void {
  const decision = checkArguments(constraints, tool, args);
  assert.equal(decision.allow, false, `allowed: ${JSON.stringify(args).slice(0, 200)}`);
  assert.match((decision as { reason: string }).reason, reason);
}

describe("argument constraints fail closed: the attack table", () => {
  const issues = () => constraintsOf(ISSUES);
  const attacks: Array<[string, Record<string, unknown>, RegExp]> = [
    // A value of the wrong shape is a violation, not a reason to skip the constraint.
    ["[*] over an object instead of an array", { labels: { name: "security-hole" } }, /labels .*is not an array.*\(shape\)/],
    ["[*] over a string instead of an array", { labels: "security-hole" }, /labels .*is not an array.*\(shape\)/],
    ["[*].name over an object of objects", { files: { a: { name: "x.sh" } } }, /files .*is not an array.*\(shape\)/],
    ["a dotted path over a string", { options: "depth=100" }, /options .*is not an object.*\(shape\)/],
    ["a dotted path over an array", { options: [{ depth: 100 }] }, /options .*is not an object.*\(shape\)/],
    ["a dotted path over null", { options: null }, /options .*is not an object.*\(shape\)/],
    // null is a value like any other.
    ["null against enum", { owner: null }, /owner = null is not one of \["my-org"\] \(enum\)/],
    ["null against pattern", { repo: null }, /repo .*must be a string.*\(pattern\)/],
    ["null against glob", { labels: [null] }, /labels\[0\] .*must be a string.*\(glob\)/],
    ["null against min/max", { count: null }, /count .*must be a number/],
    // Glob wildcards stay within one segment, never produce a dot or empty segment, never match control characters.
    ["glob * across a slash", { labels: ["area/ui/../../admin"] }, /labels\[0\].*\(glob\)/],
    ["glob * matching a .. segment", { labels: ["area/.."] }, /labels\[0\].*\(glob\)/],
    ["glob * matching a . segment", { labels: ["area/."] }, /labels\[0\].*\(glob\)/],
    ["glob * matching an empty segment", { labels: ["area/"] }, /labels\[0\].*\(glob\)/],
    ["glob * matching a newline", { labels: ["area/ui\nadmin"] }, /labels\[0\].*U\+000A.*\(glob\)/],
    ["glob * matching a right-to-left override", { labels: ["area/ui\u202Egpj.exe"] }, /labels\[0\].*U\+202E.*\(glob\)/],
    ["glob * matching a zero-width space", { labels: ["area/ui\u200B"] }, /labels\[0\].*U\+200B.*\(glob\)/],
    ["glob * matching an unpaired surrogate", { labels: ["area/\uD800"] }, /labels\[0\].*unpaired surrogate.*\(glob\)/],
    ["glob * matching fullwidth slashes and dots (NFKC)", { labels: ["area/ui\uFF0F\uFF0E\uFF0E\uFF0Fadmin"] }, /labels\[0\].*NFKC.*\(glob\)/],
    ["glob * matching percent-encoded dots", { labels: ["area/%2e%2e"] }, /labels\[0\].*\(glob\)/],
    ["glob * matching a backslash", { labels: ["area/..\\admin"] }, /labels\[0\].*\(glob\)/],
    ["glob *.md matching a percent-encoded slash", { files: [{ name: "..%2f..%2fetc%2fpasswd.md" }] }, /files\[0\]\.name.*\(glob\)/],
    ["glob ** matching a .. segment", { docs: "docs/a/../../etc/passwd" }, /docs.*\(glob\)/],
    ["glob ** matching an empty segment", { docs: "docs//etc/passwd" }, /docs.*\(glob\)/],
    ["glob URL matching a .. segment", { link: "https://github.com/my-org/.." }, /link.*\(glob\)/],
    ["glob URL matching percent-encoded traversal", { link: "https://github.com/my-org/%2E%2E" }, /link.*\(glob\)/],
    // Patterns: anchored, linear, and blind to neither invisible characters nor look-alikes.
    ["pattern: a trailing newline", { repo: "app\n" }, /repo.*\(pattern\)/],
    ["pattern [^/]+ matching fullwidth slashes (NFKC)", { segment: "a\uFF0F..\uFF0Fb" }, /segment.*NFKC.*\(pattern\)/],
    ["pattern [^/]+ matching a right-to-left override", { segment: "invoice\u202Efdp.exe" }, /segment.*U\+202E.*\(pattern\)/],
    ["pattern [^/]+ matching a newline", { segment: "a\nb" }, /segment.*U\+000A.*\(pattern\)/],
    ["a pattern with a slash is path-like: no .. segment", { home: "/home/alice/../../etc/shadow" }, /home.*"\.\." segment.*\(pattern\)/],
    ["a pattern with a slash is path-like: no percent-encoding", { home: "/home/alice/%2e%2e/%2e%2e/etc/shadow" }, /home.*percent-encoded.*\(pattern\)/],
    ["a pattern with a slash is path-like: no backslash", { home: "/home/alice/..\\..\\etc" }, /home.*backslash.*\(pattern\)/],
    // Types are never coerced; a path given as an array of segments is not a string.
    ["a number given as a string (enum of numbers)", { level: "1" }, /level.*\(enum\)/],
    ["a string given as a number (enum of strings)", { channel: 123456789012345678 }, /channel.*\(enum\)/],
    ["a number given as a string (min/max)", { count: "3" }, /count .*must be a number/],
    ["a path given as an array of segments", { segment: ["a", "..", "b"] }, /segment .*must be a string.*\(pattern\)/],
    ["enum: a zero-width space after the allowed value", { owner: "my-org\u200B" }, /owner.*\(enum\)/],
    ["enum: the fullwidth spelling of the allowed value", { owner: "\uFF4D\uFF59-org" }, /owner.*\(enum\)/],
  ];
  for (const [name, args, reason] of attacks) {
    test(`denied: ${name}`, () => denied(issues(), "create_issue", args, reason));
  }

  test("allowed: values within every constraint still pass (the fixes do not deny everything)", () => {
    const constraints = issues();
    const ok = [
      {},
      { owner: "my-org", repo: "app", count: 2, level: 1, channel: "123456789012345678" },
      { labels: ["bug", "area/ui", "area/.hidden"], options: { depth: 3 }, files: [{ name: "README.md" }, { name: ".notes.md" }] },
      { segment: "caf\u00E9", home: "/home/alice/notes.txt", link: "https://github.com/my-org/app", docs: "docs/guide/intro.md" },
      { docs: "docs/x", labels: [], files: [] },
    ];
    for (const args of ok) assert.deepEqual(checkArguments(constraints, "create_issue", args), { allow: true }, JSON.stringify(args));
  });

  test("a key named __proto__ in the call is not taken for the object's prototype", () => {
    const constraints = constraintsOf(`        "*": { owner: { enum: [my-org], required: true } }`);
    denied(constraints, "t", JSON.parse('{"__proto__": {"owner": "my-org"}}'), /owner is required \(required\)/);
    denied(constraints, "t", JSON.parse('{"__proto__": {"owner": "my-org"}, "owner": "evil"}'), /owner = "evil".*\(enum\)/);
  });
});

describe("path constraints: path-like arguments stay under their root", () => {
  const paths = () => constraintsOf(PATHS);
  const attacks: Array<[string, Record<string, unknown>, RegExp]> = [
    ["a .. segment", { path: "/work/../etc/passwd" }, /path = .*"\.\." segment.*\(path\)/],
    ["a .. segment that would stay under the root", { path: "/work/a/../b" }, /"\.\." segment.*\(path\)/],
    ["a . segment", { path: "/work/./x" }, /"\." segment.*\(path\)/],
    ["an empty segment", { path: "/work//x" }, /empty segment.*\(path\)/],
    ["a backslash", { path: "/work/..\\..\\etc\\passwd" }, /backslash.*\(path\)/],
    ["percent-encoded dots", { path: "/work/%2e%2e/etc/passwd" }, /percent-encoded.*\(path\)/],
    ["percent-encoded slash", { path: "/work/..%2f..%2fetc" }, /percent-encoded.*\(path\)/],
    ["fullwidth slashes and dots (NFKC)", { path: "/work/\uFF0E\uFF0E\uFF0Fetc" }, /NFKC.*\(path\)/],
    ["a NUL byte", { path: "/work/x\u0000.txt" }, /U\+0000.*\(path\)/],
    ["a newline", { path: "/work/x\n/etc/passwd" }, /U\+000A.*\(path\)/],
    ["a right-to-left override", { path: "/work/\u202Etxt.sh" }, /U\+202E.*\(path\)/],
    ["a sibling sharing the root's prefix", { path: "/workshop/x" }, /not under \/work \(path\)/],
    ["a path outside the root", { path: "/etc/passwd" }, /not under \/work \(path\)/],
    ["a relative path where the root is absolute", { path: "work/x" }, /not under \/work \(path\)/],
    ["a home-relative path", { path: "~/x" }, /not under \/work \(path\)/],
    ["an empty string", { path: "" }, /empty.*\(path\)/],
    ["null", { path: null }, /must be a string.*\(path\)/],
    ["an array of segments", { path: ["/work", "..", "etc"] }, /must be a string.*\(path\)/],
    ["every element of a [*] path is checked", { files: ["/tmp/scratch/a", "/tmp/scratchpad/b"] }, /files\[1\].*not under \/work or \/tmp\/scratch \(path\)/],
    ["an absolute path where a relative one is meant", { relative: "/etc/passwd" }, /relative.*must be relative.*\(path\)/],
    ["a .. segment in a relative path", { relative: "../secrets" }, /"\.\." segment.*\(path\)/],
    ["a home directory in a relative path", { relative: "~root/.ssh/id_rsa" }, /must be relative.*\(path\)/],
    ["a Windows drive in a relative path", { relative: "C:/Windows/win.ini" }, /must be relative.*\(path\)/],
    ["a UNC path in a relative path", { relative: "//server/share" }, /empty segment \(\/\/\) \(path\)/],
  ];
  for (const [name, args, reason] of attacks) {
    test(`denied: ${name}`, () => denied(paths(), "read_file", args, reason));
  }
  test("allowed: the root itself, paths below it, dot files, a trailing slash, NFC text", () => {
    const constraints = paths();
    for (const args of [
      { path: "/work" },
      { path: "/work/src/a.ts" },
      { path: "/work/.config/x" },
      { path: "/work/dir/" },
      { path: "/work/caf\u00E9/r\u00E9sum\u00E9.txt" },
      { files: ["/tmp/scratch/a", "/work/b"] },
      { relative: "src/a.ts" },
      { relative: "..hidden/file" },
    ]) {
      assert.deepEqual(checkArguments(constraints, "read_file", args), { allow: true }, JSON.stringify(args));
    }
  });
});

describe("the constraint language itself fails closed at load", () => {
  test("an argument path or tool glob named __proto__ is refused, not silently dropped", () => {
    assert.match(refusalOf(`        "*": { "__proto__": { required: true } }`), /__proto__/);
    assert.match(refusalOf(`        "__proto__": { owner: { enum: [my-org] } }`), /__proto__/);
  });
  test("a pattern RE2 cannot run in linear time (backreferences, lookaround) is refused with the reason", () => {
    assert.match(refusalOf(`        "*": { x: { pattern: "(a)\\\\1" } }`), /linear time/);
    assert.match(refusalOf(`        "*": { x: { pattern: "(?<=a)b" } }`), /linear time/);
  });
  test("a path root must be '.' or a clean absolute path", () => {
    for (const root of ["work", "/work/../etc", "/work/", "/work//x", "C:\\\\work", "~/work"]) {
      assert.match(refusalOf(`        "*": { p: { path: { under: "${root}" } } }`), /under/, root);
    }
  });
  test("** spans zero or more whole segments, never part of one, and keeps an absolute glob's root", () => {
    const constraints = constraintsOf(`        "*": { a: { glob: ["a/**/b"] }, r: { glob: ["/**"] }, d: { glob: ["docs/**"] } }`);
    for (const args of [{ a: "a/b" }, { a: "a/x/y/b" }, { r: "/" }, { r: "/etc/x" }, { d: "docs" }, { d: "docs/x/y.md" }]) {
      assert.deepEqual(checkArguments(constraints, "t", args), { allow: true }, JSON.stringify(args));
    }
    for (const args of [{ a: "a/xb" }, { a: "ab/b" }, { r: "" }, { r: "etc/x" }, { d: "docsx" }, { d: "docs/" }]) denied(constraints, "t", args, /\(glob\)/);
  });
  test("** in a glob must be a whole path segment", () => {
    assert.match(refusalOf(`        "*": { p: { glob: ["docs/a**"] } }`), /\*\*/);
  });
});

describe("patterns cannot be made to backtrack (the operator writes them, the agent chooses the input)", () => {
  test("a nested quantifier answers in linear time, even for a long hostile input", () => {
    const constraints = constraintsOf(`        "*": { x: { pattern: "(a+)+" } }`);
    for (const length of [27, 100_000]) {
      const started = performance.now();
      const decision = checkArguments(constraints, "t", { x: `${"a".repeat(length)}!` });
      const milliseconds = performance.now() - started;
      assert.equal(decision.allow, false);
      assert.ok(milliseconds < 1000, `${length} characters took ${Math.round(milliseconds)} ms`);
    }
  });
  test("a [*] path over a huge array is refused instead of blocking the guard for every agent", () => {
    const constraints = constraintsOf(`        "*": { "names[*]": { pattern: "[a-z0-9]+" }, "pairs[*][*]": { glob: ["area/*"] } }`);
    // About 1 MiB of request body, the default mcp.limits.maxRequestBytes.
    const names = Array.from({ length: 150_000 }, (_, index) => `n${index}`);
    const started = performance.now();
    denied(constraints, "t", { names }, /names\[\*\] names more than 1000 values.*\(shape\)/);
    assert.ok(performance.now() - started < 200, `took ${Math.round(performance.now() - started)} ms`);
    denied(constraints, "t", { pairs: Array.from({ length: 40 }, () => Array.from({ length: 40 }, () => "area/x")) }, /pairs\[\*\]\[\*\] names more than 1000 values/);
    assert.deepEqual(checkArguments(constraints, "t", { names: names.slice(0, 1000) }), { allow: true });
  });
  test("anchoring holds whatever the pattern says: ^a against a\\nb, an inline multiline group, an alternation", () => {
    const constraints = constraintsOf(`        "*": { a: { pattern: "^a" }, m: { pattern: "(?m:^a$)" }, o: { pattern: "a|b" } }`);
    denied(constraints, "t", { a: "a\nb" }, /\(pattern\)/);
    denied(constraints, "t", { m: "a\nb" }, /\(pattern\)/);
    denied(constraints, "t", { o: "ab" }, /\(pattern\)/);
    assert.deepEqual(checkArguments(constraints, "t", { a: "a", m: "a", o: "b" }), { allow: true });
  });
});

describe("the checked value is the value the upstream receives (a real guard on loopback)", () => {
  const token = "agent-token-constraints-0123456789";
  let upstream: RecordingServer;
  let guard: StartedGuard;
  let rewrite: ((body: string) => string) | undefined;
  let client: Client;

  before(async () => {
    upstream = await startRecordingServer();
    guard = await startGuard(
      `
version: 1
name: t
mcp:
  pinning: { trustOnFirstUse: true }
  servers:
    web:
      url: ${upstream.url}
      tools: { allow: [create_issue] }
      arguments:
        create_issue: { owner: { enum: [my-org], required: true } }
audit: { path: AUDIT_PATH }
`,
      { PERIMETER_AGENT_TOKEN: token, PERIMETER_ADMIN_TOKEN: "admin-token-constraints-9876543210" },
    );
    // The official client, with its request bodies rewritten on the wire into JSON no client library would write.
    const rewritingFetch = (url: string | URL, init?: RequestInit) => {
      const body = typeof init?.body === "string" && rewrite !== undefined ? rewrite(init.body) : init?.body;
      return fetch(url, { ...init, body });
    };
    client = new McpClient({ name: "constraints-agent", version: "1.0.0" }, {});
    await client.connect(new StreamableHTTPClientTransport(new URL(guard.url), { fetch: rewritingFetch, requestInit: { headers: { Authorization: `Bearer ${token}` } } }));
  });
  after(async () => {
    await client?.close().catch(() => undefined);
    await guard?.close();
    await upstream?.close();
  });

  const callWithBody = async (from: string, to: string) => {
    rewrite = (body) => body.replace(from, to);
    try {
      return await client.callTool({ name: "web__create_issue", arguments: { owner: "PLACEHOLDER", repo: "app" } });
    } finally {
      rewrite = undefined;
    }
  };
  const forwarded = () => upstream.requests.filter((request) => request.body.includes('"create_issue"')).map((request) => request.body);

  test("duplicate keys: the last one is checked, and only it is forwarded", async () => {
    const before = forwarded().length;
    const allowed = await callWithBody('"owner":"PLACEHOLDER"', '"owner":"evil-org","owner":"my-org"');
    assert.match(resultText(allowed), /created issue in my-org\/app/);
    const sent = forwarded().slice(before);
    assert.equal(sent.length, 1);
    assert.doesNotMatch(sent[0]!, /evil-org/, "the upstream must not see the value the guard did not check");

    const refused = await callWithBody('"owner":"PLACEHOLDER"', '"owner":"my-org","owner":"evil-org"');
    assert.equal(refused.isError, true);
    assert.match(resultText(refused), /owner = "evil-org" is not one of \["my-org"\] \(enum\)/);
    assert.equal(forwarded().length, before + 1, "the refused call never reached the upstream");
  });

  test("__proto__: an owner hidden in the prototype is neither checked nor forwarded as an argument", async () => {
    const before = forwarded().length;
    const refused = await callWithBody('"owner":"PLACEHOLDER"', '"__proto__":{"owner":"my-org"}');
    assert.equal(refused.isError, true);
    assert.match(resultText(refused), /owner is required \(required\)/);
    assert.equal(forwarded().length, before);
  });
});
