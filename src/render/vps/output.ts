// What `perimeter render -t vps` writes and tells the operator next.
import type { PerimeterConfig } from "../../config/index.ts";
import type { RenderOutput } from "../render.ts";
import { firstStartReviewNote, sharedSecretNotes } from "../plan.ts";
import { renderVps } from "./render.ts";
import { dashboardPort } from "../dashboard.ts";
import { RUNBOOK_PATH } from "../runbook.ts";
import { vpsRunbook } from "./runbook.ts";

export function vpsOutput(config: PerimeterConfig): RenderOutput {
  const render = renderVps(config);
  const { manifest } = render;
  return {
    target: "vps",
    files: [...render.files, { path: RUNBOOK_PATH, content: vpsRunbook(config, render) }].map((file) => ({ path: file.path, content: file.content, mode: file.mode ?? 0o644 })),
    warnings: render.warnings,
    instructions: (directory) => {
      const lines = [
        `Rendered perimeter "${config.name}" for one Debian 12/13 or Ubuntu 24.04 host into ${directory} (${render.files.length} files).`,
        "",
        "On the host (as root; perimeter and Node 24 installed at the unit's path, apt install nftables fail2ban unattended-upgrades):",
        `  1. perimeter host apply ${directory} --dry-run      shows every change and checks every file (sshd -t, nft -c, ...)`,
        `  2. perimeter host apply ${directory}                installs; refuses when your SSH session would be locked out`,
        "  3. fill in the env files it created (root, 0600; values never appear in the render), then",
        `     systemctl restart ${manifest.units.filter((unit) => unit !== "perimeter-firewall.service").join(" ")}`,
        "  4. keep this SSH session open and log in again from a second terminal before closing it (seed 004).",
        "",
        "Env files, one per service (each unit reads only its own):",
        ...manifest.envFiles.map((file) => `  ${file.path}: ${file.keys.join(", ")}`),
        "",
        "Values that must match:",
        ...sharedSecretNotes(config).map((note) => `  ${note}`),
        "",
        "Approvals: perimeter approvals list -c /etc/perimeter/perimeter.yaml (with the admin token exported),",
        `  or the dashboard on the host's loopback: ssh -L ${dashboardPort(config)}:127.0.0.1:${dashboardPort(config)} HOST, then http://127.0.0.1:${dashboardPort(config)}/ (log in with the admin token).`,
        ...firstStartReviewNote(config, "perimeter approvals"),
        `Day 1 and day 2 (changes, rotation, upgrades, backups, teardown): ${directory}/${RUNBOOK_PATH}`,
      ];
      return `${lines.join("\n")}\n`;
    },
  };
}
