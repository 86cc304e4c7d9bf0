// The approver bot's traffic goes through the perimeter's egress proxy (approvals.telegram.proxy) as a client of its
// own, with its token as Proxy-Authorization: a real egress proxy on loopback in front of the stand-in Bot API.
// Without the token the proxy refuses it: the bot reports itself unreachable and retries, never going around the proxy.
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { DatabaseSync } from "node:sqlite";
import { describe, test } from "node:test";
import { createApprovalStore } from "../approvals/index.ts";
import { openAuditLog, readAuditRecords } from "../audit-log/index.ts";
import { parseConfig } from "../config/index.ts";
import { createEgressProxy } from "../egress-proxy/index.ts";
import { createLogger, silentLogger } from "../shared/index.ts";
import { createTelegramApprover } from "./approver.ts";
import { createStandInBotApi } from "./stand-in.ts";

const ALICE = 111111111;
const PROXY_TOKEN = "egress-token-approvals-telegram-7f1c2b9d";

describe("stand-in Bot API behind the real egress proxy", () => {
  for (const withToken of [true, false]) {
    test(withToken ? "with its egress token the bot posts through the proxy, which records each request under the bot's client" : "without the token the proxy refuses the bot, which says why it waits and never goes around the proxy", async () => {
      const directory = mkdtempSync(join(tmpdir(), "telegram-proxy-"));
      const auditPath = join(directory, "audit.db");
      const audit = openAuditLog({ path: auditPath });
      const database = new DatabaseSync(auditPath);
      database.exec("PRAGMA busy_timeout = 5000");
      const store = createApprovalStore({ database, audit });
      const api = createStandInBotApi();
      await api.listen();
      api.start(ALICE);
      const apiPort = Number(new URL(api.apiRoot).port);
      const proxy = createEgressProxy(
        { unknownClients: "deny", clients: [{ name: "approvals-telegram", token: PROXY_TOKEN, allow: [{ host: "bot-api.test", ports: [apiPort], allowCidr: ["127.0.0.0/8"] }] }] },
        { audit, logger: silentLogger(), resolver: { lookup: async (host) => (host === "bot-api.test" ? ["127.0.0.1"] : []) } },
      );
      // Its own address would be refused as a loop, so the proxy listens on another loopback address than the stand-in.
      const address = await proxy.listen("127.0.0.2:0");
      const config = parseConfig(`version: 1
name: demo
approvals:
  telegram:
    tokenSecret: APPROVER_BOT_TOKEN
    approvers: [${ALICE}]
    apiRoot: "http://127.0.0.1:${apiPort}"
    proxy: "http://127.0.0.2:${(address as { port: number }).port}"
    ${withToken ? "proxyTokenSecret: APPROVER_EGRESS_TOKEN" : ""}
`);
      // A Bot API server with a name, as the proxy sees it; the schema's https rule for such names is tested elsewhere.
      config.approvals.telegram!.apiRoot = `http://bot-api.test:${apiPort}`;
      const approver = createTelegramApprover(config, { store, database, audit, env: { APPROVER_BOT_TOKEN: api.token, APPROVER_EGRESS_TOKEN: PROXY_TOKEN }, logger: process.env.DEBUG_TG ? createLogger("t", "debug") : silentLogger(), pollTimeoutSeconds: 1, sweepIntervalMs: 100 });
      try {
        approver.start();
        const request = store.open({ kind: "tool-call", agent: "hermes", server: "github", tool: "create_issue", definitionHash: "d".repeat(64), argumentsHash: "a".repeat(64), detail: { arguments: {} }, timeoutMs: 60_000 });
        if (withToken) {
          await api.waitFor(() => api.messagesIn(ALICE).find((message) => message.text.includes(request.id)), 10_000, "the message through the proxy");
          const egress = readAuditRecords(auditPath).filter((record) => record.component === "egress-proxy");
          assert.ok(egress.length > 0, "the proxy recorded the bot's requests");
          assert.ok(egress.every((record) => record.data.client === "approvals-telegram"), JSON.stringify(egress.map((record) => record.data.client)));
        } else {
          await api.waitFor(() => approver.state().state === "unreachable", 10_000, "the bot to report the refusal");
          assert.match(approver.state().error ?? "", /"perimeter "|407/, `the error shows the proxy answered, not the Bot API: ${approver.state().error}`);
          assert.equal(api.calls.length, 0, "nothing reached the Bot API around the proxy");
          assert.doesNotMatch(approver.state().error ?? "", new RegExp(api.token), "the bot token is not in the error");
        }
      } finally {
        await approver.close();
        await proxy.close();
        await api.close();
        store.close();
        database.close();
        audit.close();
        rmSync(directory, { recursive: true, force: true });
      }
    });
  }
});
