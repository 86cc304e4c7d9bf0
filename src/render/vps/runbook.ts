// RUNBOOK.md of the VPS render: day 1 and day 2 on one host, over the document pieces every target's runbook shares
// (../runbook.ts; its header says how the blocks are written and tested).
import type { PerimeterConfig } from "../../config/index.ts";
import { dashboardPort } from "../dashboard.ts";
import { AGENT_WORKLOAD, MCP_GUARD, secretPlan, sharedSecretNotes } from "../plan.ts";
import type { SecretSpec } from "../plan.ts";
import { Document, SIGNED_CHECKPOINTS, firstStartText, revocations, rotationRows, variablesBlock } from "../runbook.ts";
import { FIREWALL_TABLE } from "./firewall.ts";
import type { VpsRender } from "./render.ts";

export function vpsRunbook(config: PerimeterConfig, render: VpsRender): string {
  const { manifest } = render;
  const host = config.host;
  const home = host?.agent.home ?? "/var/lib/hermes";
  const perimeterUnits = manifest.units.filter((unit) => unit.startsWith("perimeter-") && !["perimeter-firewall.service", "perimeter-backup.timer"].includes(unit) && !unit.endsWith(".socket"));
  const services = perimeterUnits.map((unit) => unit.replace(/\.service$/, ""));
  const agentUnits = manifest.units.filter((unit) => !unit.startsWith("perimeter-"));
  const mcpGuardEnv = manifest.envFiles.find((file) => file.path.endsWith(`/${MCP_GUARD}.env`))?.path ?? `/etc/perimeter/env/${MCP_GUARD}.env`;
  const approvals = (args: string) => `perimeter approvals ${args} -c /etc/perimeter/perimeter.yaml`;
  // rsync as the first admin user lands the render in that user's home.
  const copied = `~${host?.ssh.adminUsers[0] ?? "admin"}/perimeter-render`;
  const document = new Document();
  document.heading(1, `Runbook: perimeter "${config.name}" on one VPS`).text(
    "Rendered by `perimeter render -t vps` for this declaration; re-rendering rewrites it. [host] blocks run on the VPS as root (perimeter and Node 24 installed); [here] blocks on your workstation. Keep one SSH session open while you change the host.",
  );
  variablesBlock(document, "vps", ["export VPS=admin@vps.example.com                # your SSH login on the host"]);
  document.heading(2, "Day 1");
  // The render's own directories are 0755 (a staging copy); modes are the host's, checked there after apply.
  const checkHere = `perimeter check "$RENDER_DIR/files/etc" "$RENDER_DIR/files${home}/.hermes/${"config.yaml"}"`;
  document.heading(3, "1. Check and copy the render").text("Check the files here; modes and owners are checked on the host after apply (host apply sets them).");
  document.commands("here", checkHere);
  document.commands("host", '# from your workstation: rsync -a --delete "$RENDER_DIR"/ "$VPS:perimeter-render/"', `perimeter host apply ${copied} --dry-run`, `perimeter host apply ${copied}`, `perimeter check /etc/perimeter ${home}/.hermes`);
  document.heading(3, "2. Secrets: one env file per service").text("host apply created them empty (root, 0600) and never overwrites them. Fill each in (tokens: `openssl rand -hex 32`):");
  document.table(["file", "variables"], manifest.envFiles.map((file) => [file.path, file.keys.join(", ")]));
  document.text("Values that must match:", ...sharedSecretNotes(config).map((note) => `- ${note}`));
  document.heading(3, "3. Start and check");
  document.commands("host", `systemctl restart ${[...perimeterUnits, ...agentUnits.filter((unit) => unit.endsWith(".service"))].join(" ")}`, `systemctl --no-pager status ${[...perimeterUnits, ...agentUnits.filter((unit) => unit.endsWith(".service"))].join(" ")}`);
  document.heading(3, "4. Review the tool definitions of the first start").text(
    firstStartText(config),
    `In a browser: perimeter-dashboard listens on the host's 127.0.0.1:${dashboardPort(config)} only; from your workstation \`ssh -L ${dashboardPort(config)}:127.0.0.1:${dashboardPort(config)} HOST\`, then log in with the admin token.`,
    `From the terminal: the admin token is in ${mcpGuardEnv}; load it into the shell (\`APPROVAL_ID\`: an ID from the list):`,
  );
  document.commands("host", `set -a; . ${mcpGuardEnv}; set +a`, approvals("list --kind tool-definition"), approvals('show "$APPROVAL_ID"'), approvals('approve "$APPROVAL_ID" --reason "definition reviewed"'));
  document.heading(3, "5. Approve or deny a held call");
  document.commands("host", approvals("list --kind tool-call"), approvals('deny "$APPROVAL_ID" --reason "not expected"'));
  document.heading(3, "6. Read and verify the audit logs").text("Each service writes its own log under its state directory:");
  document.commands("host", ...services.map((service) => `perimeter audit-log verify --db /var/lib/${service}/audit.db`), `perimeter audit-log tail -n 20 --db /var/lib/perimeter-${MCP_GUARD}/audit.db`, `journalctl -u perimeter-${MCP_GUARD} --since today --no-pager | tail -n 50`);
  document.text(SIGNED_CHECKPOINTS, "Print each here and copy the output off the host:");
  document.commands("host", ...services.map((service) => `perimeter audit-log public-key --key /var/lib/${service}/audit-signing.pem`));

  document.heading(2, "Day 2");
  document.heading(3, "7. Change the declaration and apply it").text(
    "Re-render (the render holds nothing of yours: env files and the agent's config.yaml live on the host and apply never overwrites them), copy, apply. host apply installs only changed files and restarts exactly the units whose files changed; mcp-guard and egress-proxy also reload a changed perimeter.yaml themselves, and refuse an invalid one loudly, keeping the old policy.",
  );
  document.commands("here", 'perimeter render -c "$PERIMETER_DECLARATION" -t vps -o "$RENDER_DIR" --force', checkHere);
  document.commands("host", '# from your workstation: rsync -a --delete "$RENDER_DIR"/ "$VPS:perimeter-render/"', `perimeter host apply ${copied} --dry-run`, `perimeter host apply ${copied}`);
  document.heading(3, "8. Add an egress host or an MCP server").text("Add the host to `egress.allow` (a host name, no URL) or the server to `mcp.servers` (its credential as `${VARIABLE}`; the vps target runs no server images: run it on 127.0.0.1 yourself), then section 7; fill the new env file, restart perimeter-mcp-guard, and review the new tools (section 4).");
  document.yaml("egress:", "  allow: [api.telegram.org, api.example.com]");
  document.heading(3, "9. Rotate a secret").text("Edit the value in every env file that holds it, then restart the units that read them (each reads its env file at start). Re-running is safe.");
  const secrets = secretPlan(config);
  const unitOf = (secret: SecretSpec) => (secret.workload === AGENT_WORKLOAD ? agentUnits.filter((unit) => unit.endsWith(".service")).join(" ") : `perimeter-${secret.workload === "sandbox-runner" ? "sandbox" : secret.workload}`);
  document.table(
    ["variable", "env files", "command"],
    rotationRows(secrets.filter((secret) => manifest.envFiles.some((file) => file.path.endsWith(`/${secret.name}.env`)))).map(({ key, secrets: holders }) => [
      key,
      holders.map((secret) => `/etc/perimeter/env/${secret.name}.env`).join(", "),
      `\`systemctl restart ${[...new Set(holders.map(unitOf))].join(" ")}\``,
    ]),
  );
  document.heading(3, "10. Upgrade Hermes (and the perimeter)").text(
    host?.agent.mode === "container"
      ? "Set `agent.image` to the new tag, then section 7 (the unit's command changes, so apply restarts it)."
      : `Native mode: upgrade Hermes in ${host?.agent.installDir ?? "its install directory"} as its docs say, then \`systemctl restart ${agentUnits.filter((unit) => unit.endsWith(".service")).join(" ")}\`. Perimeter: install the new version at ${host?.perimeterExecutable ?? "/usr/local/bin/perimeter"} and restart its units.`,
    `The agent's \`${home}/.hermes/config.yaml\` was seeded once and is **not** replaced by apply. To re-seed, move it aside and apply again; the old file stays beside it. **What is lost:** every change made to config.yaml since it was seeded (re-apply what you need from the copy); nothing else in ${home}/.hermes is touched.`,
  );
  document.commands("host", `mv ${home}/.hermes/config.yaml ${home}/.hermes/config.yaml.before-reseed`, `perimeter host apply ${copied}`, `diff ${home}/.hermes/config.yaml.before-reseed ${home}/.hermes/config.yaml || true`);
  document.heading(3, "11. Back up the agent's data and every audit log");
  if (config.backup !== undefined) {
    document.text(`perimeter-backup.timer archives ${config.backup.dataDirectory} and mcp-guard's audit log daily into ${config.backup.directory}, encrypted to backup.recipients. Run it now and copy the archives off the host; snapshot the other services' logs beside them:`);
    document.commands("host", "systemctl start perimeter-backup.service", `perimeter backup list -c /etc/perimeter/perimeter.yaml`);
  } else {
    document.text("Add a `backup:` section (docs/backup.md) for the daily encrypted timer. Until then, by hand:");
    document.commands("host", `tar -C ${home}/.hermes -cf - . | age -r "$AGE_RECIPIENT" > /root/hermes-data-$(date -u +%Y%m%dT%H%M%SZ).tar.age`);
  }
  document.commands("host", ...services.map((service) => `sqlite3 /var/lib/${service}/audit.db ".backup '/root/${service}-audit.db'" && perimeter audit-log verify --db /root/${service}-audit.db`));
  document.text("Copy the snapshots and archives to your workstation and verify them there:");
  document.commands("here", ...services.map((service) => `perimeter audit-log verify --db "$BACKUP_DIR/${service}-audit.db"`));
  document.heading(3, "12. Tear down").text("Back up first (section 11). This stops and disables every unit and removes the firewall table; the agent's data and the state directories stay until you delete them.");
  document.commands(
    "host",
    `systemctl disable --now ${manifest.units.join(" ")}`,
    `nft delete table inet ${FIREWALL_TABLE} 2>/dev/null || true`,
    `rm -rf ${home}/.hermes ${services.map((service) => `/var/lib/${service}`).join(" ")} /etc/perimeter`,
  );
  document.text("Then revoke what outlives the host:", ...revocations(config));
  return document.toString();
}
