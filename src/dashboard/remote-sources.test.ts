// `perimeter serve dashboard` over remote sources (dashboard.sources[].url), as on Kubernetes and Compose where each
// component keeps its own audit database: the dashboard copies each service's feed (a real mcp-guard's admin
// listener, and a second log served by the same feed) and verifies each chain itself.
// Requirements: both sources' records are shown and each chain is verified; a log changed in place after it was
// copied turns that source red (and only that one); a log served already broken is red; a service refusing the token
// is shown as such, the token never in the page.
import assert from "node:assert/strict";
import { mkdtempSync, writeFileSync } from "node:fs";
import { createServer } from "node:http";
import type { Server } from "node:http";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { DatabaseSync } from "node:sqlite";
import { PassThrough, Writable } from "node:stream";
import { after, before, describe, test } from "node:test";
import { createAuditFeed, openAuditLog } from "../audit-log/index.ts";
import type { AuditLog } from "../audit-log/index.ts";
import { eventually, startGuard, startRecordingServer } from "../mcp-guard/testing.ts";
import type { RecordingServer, StartedGuard } from "../mcp-guard/testing.ts";
import { serveDashboard } from "./cli.ts";
import { ENV, HttpSession, guardYaml } from "./testing.ts";

interface FeedService {
  url: string;
  path: string;
  log: AuditLog;
  close(): Promise<void>;
}

/** A second service's audit log behind the real feed, as egress-proxy's would be on its own volume. */
async function startFeedService(directory: string, name: string, token: string): Promise<FeedService> {
  const path = join(directory, `${name}.db`);
  const log = openAuditLog({ path, checkpointEvery: 10 });
  const reader = new DatabaseSync(path, { readOnly: true });
  const feed = createAuditFeed({ database: reader, authenticate: (authorization) => (authorization === `Bearer ${token}` ? "admin" : undefined) });
  const server: Server = createServer((request, response) => {
    if (!feed(request, response)) {
      response.writeHead(404);
      response.end();
    }
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const address = server.address() as { port: number };
  return {
    url: `http://127.0.0.1:${address.port}`,
    path,
    log,
    async close() {
      await new Promise<void>((resolve) => server.close(() => resolve()));
      reader.close();
      log.close();
    },
  };
}

interface RunningDashboard {
  base: string;
  session: HttpSession;
  stop(): Promise<void>;
}

async function runDashboard(directory: string, sources: Array<{ name: string; url: string }>, extra: { auditYaml?: string; env?: Record<string, string> } = {}): Promise<RunningDashboard> {
  const configPath = join(directory, "perimeter.yaml");
  writeFileSync(
    configPath,
    `version: 1\nname: t\naudit: { path: ${join(directory, "own-audit.db")}${extra.auditYaml ?? ""} }\ndashboard:\n  statePath: ${join(directory, "state", "dashboard.db")}\n  sources:\n${sources.map((source) => `    - { name: ${source.name}, url: "${source.url}" }`).join("\n")}\n`,
  );
  const controller = new AbortController();
  let output = "";
  const stdout = new Writable({
    write(chunk: Buffer, _encoding, callback) {
      output += chunk.toString("utf8");
      callback();
    },
  });
  const io = { stdout, stderr: new PassThrough(), stdin: new PassThrough(), env: { ...ENV, ...extra.env }, cwd: directory, signal: controller.signal, onReload: () => {} };
  let failed: unknown;
  const done = serveDashboard(["-c", configPath, "--listen", "127.0.0.1:0", "--log-level", "error"], io).catch((error: unknown) => {
    failed = error;
    return 1;
  });
  const base = await eventually(() => {
    if (failed !== undefined) throw failed as Error;
    return /listening on (http:\/\/[^/]+)\//.exec(output)?.[1];
  }, 20_000, "the dashboard listening");
  const session = new HttpSession(base);
  assert.equal((await session.login(ENV.PERIMETER_ADMIN_TOKEN)).status, 303);
  return {
    base,
    session,
    async stop() {
      controller.abort();
      await done;
    },
  };
}

interface ChainJson {
  chain: Array<{ source: string; state: string; records?: number; firstBrokenSeq?: number; reason?: string }>;
  sources: Array<{ name: string; state: string; message?: string }>;
}

async function chainOf(session: HttpSession): Promise<ChainJson> {
  const answer = await session.request("/chain.json");
  assert.equal(answer.status, 200);
  return JSON.parse(answer.text) as ChainJson;
}

describe("serve dashboard with url sources", () => {
  let web: RecordingServer;
  let guard: StartedGuard;
  let egress: FeedService;
  let dashboard: RunningDashboard;
  let directory: string;

  before(async () => {
    directory = mkdtempSync(join(tmpdir(), "dashboard-remote-"));
    web = await startRecordingServer();
    guard = await startGuard(guardYaml(web.url), ENV);
    guard.audit.append({ component: "mcp-guard", type: "note-test", marker: "from-the-guard" });
    egress = await startFeedService(directory, "egress", ENV.PERIMETER_ADMIN_TOKEN);
    for (let index = 0; index < 25; index += 1) egress.log.append({ component: "egress-proxy", type: "egress-decision", client: "hermes", host: `remote${index}.example`, decision: "allow" });
    dashboard = await runDashboard(directory, [
      { name: "mcp-guard", url: guard.adminUrl },
      { name: "egress-proxy", url: egress.url },
    ]);
  });

  after(async () => {
    await dashboard.stop();
    await egress.close();
    await guard.close();
    await web.close();
  });

  test("shows both services' records and verifies each chain green", async () => {
    await eventually(async () => {
      const page = await dashboard.session.request("/audit?type=note-test");
      return page.text.includes("from-the-guard") || page.text.includes("note-test") ? true : undefined;
    }, 20_000, "the guard's record indexed");
    const egressPage = await eventually(async () => {
      const page = await dashboard.session.request("/audit?component=egress-proxy&host=remote24.example");
      return page.text.includes("remote24.example") ? page.text : undefined;
    }, 20_000, "the egress log's record indexed");
    assert.doesNotMatch(egressPage, new RegExp(ENV.PERIMETER_ADMIN_TOKEN));
    const chain = await eventually(async () => {
      const status = await chainOf(dashboard.session);
      return status.chain.every((source) => source.state === "verified" && (source.records ?? 0) > 0) ? status : undefined;
    }, 30_000, "both chains verified");
    assert.deepEqual(chain.chain.map((source) => source.source).sort(), ["egress-proxy", "mcp-guard"]);
    const egressChain = chain.chain.find((source) => source.source === "egress-proxy");
    assert.ok((egressChain?.records ?? 0) >= 25);
  });

  test("a log changed in place after it was copied turns that source red, and only that one", async () => {
    // An attacker with the volume edits record 2 and leaves its hash: the service's own file no longer verifies,
    // and the dashboard's copy still holds the original.
    const editor = new DatabaseSync(egress.path);
    editor.exec("DROP TRIGGER audit_log_records_no_update");
    editor.prepare("UPDATE audit_log_records SET data = ? WHERE seq = 2").run('{"client":"hermes","decision":"allow","host":"innocent.example"}');
    editor.close();
    const chain = await eventually(async () => {
      const status = await chainOf(dashboard.session);
      return status.chain.find((source) => source.source === "egress-proxy")?.state === "broken" ? status : undefined;
    }, 40_000, "the egress chain red");
    const broken = chain.chain.find((source) => source.source === "egress-proxy");
    assert.equal(broken?.firstBrokenSeq, 2);
    assert.match(broken?.reason ?? "", /changed after it was read/);
    assert.equal(chain.chain.find((source) => source.source === "mcp-guard")?.state, "verified");
    const banner = await dashboard.session.request("/chain-status");
    assert.match(banner.text, /CHAIN BROKEN at record 2/);
  });
});

describe("serve dashboard with a url source served broken or refusing the token", () => {
  test("a log already tampered with when first copied is red; a wrong token is shown, never echoed", async () => {
    const directory = mkdtempSync(join(tmpdir(), "dashboard-remote-bad-"));
    const tampered = await startFeedService(directory, "tampered", ENV.PERIMETER_ADMIN_TOKEN);
    const refusing = await startFeedService(directory, "refusing", "another-token-not-the-dashboards-0123");
    for (let index = 0; index < 5; index += 1) {
      tampered.log.append({ component: "sandbox", type: "sandbox-run", caller: "hermes", exitCode: index });
      refusing.log.append({ component: "sandbox", type: "sandbox-run", caller: "hermes", exitCode: index });
    }
    const editor = new DatabaseSync(tampered.path);
    editor.exec("DROP TRIGGER audit_log_records_no_update");
    editor.prepare("UPDATE audit_log_records SET data = ? WHERE seq = 3").run('{"caller":"hermes","exitCode":0}');
    editor.close();
    const dashboard = await runDashboard(directory, [
      { name: "sandbox", url: tampered.url },
      { name: "llm-proxy", url: refusing.url },
    ]);
    try {
      const chain = await eventually(async () => {
        const status = await chainOf(dashboard.session);
        const refused = status.sources.find((source) => source.name === "llm-proxy");
        return status.chain.find((source) => source.source === "sandbox")?.state === "broken" && refused?.state === "unreadable" ? status : undefined;
      }, 40_000, "the tampered source red and the refusing one shown");
      assert.equal(chain.chain.find((source) => source.source === "sandbox")?.firstBrokenSeq, 3, JSON.stringify(chain.chain));
      const refused = chain.sources.find((source) => source.name === "llm-proxy");
      assert.match(refused?.message ?? "", /refused the admin token \(401\)/);
      const page = await dashboard.session.request("/audit");
      assert.doesNotMatch(page.text, new RegExp(ENV.PERIMETER_ADMIN_TOKEN));
    } finally {
      await dashboard.stop();
      await tampered.close();
      await refusing.close();
    }
  });
});

describe("serve dashboard with audit.feedTokenSecret (issue 19: the admin token stays with mcp-guard)", () => {
  test("url sources are read with the read-only feed token, and a feed that wants the admin token says which token it refused", async () => {
    const directory = mkdtempSync(join(tmpdir(), "dashboard-remote-feed-"));
    const feedToken = "audit-feed-token-for-the-dashboard-42";
    const reading = await startFeedService(directory, "egress", feedToken);
    const adminOnly = await startFeedService(directory, "admin-only", ENV.PERIMETER_ADMIN_TOKEN);
    for (let index = 0; index < 3; index += 1) {
      reading.log.append({ component: "egress-proxy", type: "egress-decision", client: "hermes", host: `feed${index}.example`, decision: "deny" });
      adminOnly.log.append({ component: "sandbox", type: "sandbox-run", caller: "hermes", exitCode: index });
    }
    const dashboard = await runDashboard(
      directory,
      [
        { name: "egress-proxy", url: reading.url },
        { name: "sandbox", url: adminOnly.url },
      ],
      { auditYaml: ", feedTokenSecret: PERIMETER_AUDIT_FEED_TOKEN", env: { PERIMETER_AUDIT_FEED_TOKEN: feedToken } },
    );
    try {
      const status = await eventually(async () => {
        const chain = await chainOf(dashboard.session);
        const egressChain = chain.chain.find((source) => source.source === "egress-proxy");
        const refused = chain.sources.find((source) => source.name === "sandbox");
        return egressChain?.state === "verified" && (egressChain.records ?? 0) >= 3 && refused?.state === "unreadable" ? chain : undefined;
      }, 40_000, "the feed-token source verified and the admin-only one refused");
      const refused = status.sources.find((source) => source.name === "sandbox");
      assert.match(refused?.message ?? "", /refused the audit feed token \(audit\.feedTokenSecret\) \(401\)/);
      const page = await dashboard.session.request("/chain.json");
      assert.doesNotMatch(page.text, new RegExp(feedToken));
    } finally {
      await dashboard.stop();
      await reading.close();
      await adminOnly.close();
    }
  });
});
