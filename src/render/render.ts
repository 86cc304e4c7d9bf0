// One entry point for both targets: the files to write, the warnings, and what the operator must do next (the
// Secrets to create and how to apply). Pure: nothing here touches the filesystem.
import type { PerimeterConfig } from "../config/index.ts";
import { renderCompose } from "./compose/render.ts";
import { renderKubernetes } from "./kubernetes/render.ts";
import { kubectlCreateSecret } from "./kubernetes/secret-objects.ts";
import { namespaces } from "./kubernetes/names.ts";
import { dashboardPortForward } from "./kubernetes/dashboard.ts";
import { dashboardPort } from "./dashboard.ts";
import { AGENT_WORKLOAD, MCP_GUARD, firstStartReviewNote, portOf, sharedSecretNotes } from "./plan.ts";
import type { Target } from "./plan.ts";
import type { OutputFile } from "./write.ts";
import { RUNBOOK_PATH, composeRunbook, kubernetesRunbook } from "./runbook.ts";
import { vpsOutput } from "./vps/output.ts";

export interface RenderOutput {
  readonly target: Target;
  readonly files: readonly OutputFile[];
  readonly warnings: readonly string[];
  /** Printed after writing: the secrets to create and the next steps. `DIR` stands for the output directory. */
  readonly instructions: (directory: string) => string;
}

export function renderTarget(config: PerimeterConfig, target: Target): RenderOutput {
  if (target === "vps") return vpsOutput(config);
  return target === "kubernetes" ? kubernetesOutput(config) : composeOutput(config);
}

function kubernetesOutput(config: PerimeterConfig): RenderOutput {
  const render = renderKubernetes(config);
  const ns = namespaces(config);
  const files = [...render.files, { path: RUNBOOK_PATH, content: kubernetesRunbook(config, render) }].map((file) => ({ path: file.path, content: file.content, mode: file.path.endsWith(".sh") ? 0o755 : 0o644 }));
  const external = config.kubernetes.externalSecrets;
  return {
    target: "kubernetes",
    files,
    warnings: render.warnings,
    instructions: (directory) => {
      const lines = [`Rendered perimeter "${config.name}" for Kubernetes into ${directory} (${files.length} files).`, ""];
      if (external === undefined) {
        lines.push("Secrets to create, one per component (values never appear in the rendered files).");
        lines.push("Export each variable first (read -rs NAME && export NAME; tokens: openssl rand -hex 32), then run:");
        lines.push("");
        for (const secret of render.secrets) {
          lines.push(`# ${secret.name}: ${secret.purpose}`);
          lines.push(...kubectlCreateSecret(secret, secret.namespace === "system" ? ns.system : ns.tools), "");
        }
        lines.push(`(the same commands are in ${directory}/create-secrets.sh)`);
      } else {
        lines.push(`Secrets come from ${external.storeKind} "${external.storeName}" through the ExternalSecret objects in external-secrets.yaml.`);
        lines.push("Store one remote key per variable, named like the variable:");
        for (const secret of render.secrets) lines.push(`  ${secret.name}: ${secret.keys.join(", ")}`);
      }
      lines.push("", "Values that must match:");
      for (const note of sharedSecretNotes(config)) lines.push(`  ${note}`);
      lines.push(
        "",
        "Next steps:",
        `  1. kubectl apply -f ${directory}/namespaces.yaml`,
        `  2. ${external === undefined ? `create the Secrets above (sh ${directory}/create-secrets.sh)` : "check that every ExternalSecret reports SecretSynced after step 3"}`,
        `  3. kubectl apply -k ${directory}`,
        `  4. kubectl -n ${ns.system} rollout status deployment/${AGENT_WORKLOAD} --timeout=10m   (Ready = "Gateway running with" in gateway.log)`,
        `  5. approvals: kubectl -n ${ns.tools} port-forward deployment/${MCP_GUARD} ${portOf(config.mcp.admin.listen)} and perimeter approvals list`,
        ...firstStartReviewNote(config, `kubectl -n ${ns.tools} exec -it deployment/${MCP_GUARD} -- perimeter approvals`),
        `  6. dashboard: ${dashboardPortForward(config)}, then open http://127.0.0.1:${dashboardPort(config)}/ and log in with the admin token`,
        `  7. perimeter check ${directory}`,
        `Day 1 and day 2 (changes, rotation, upgrades, backups, teardown): ${directory}/${RUNBOOK_PATH}`,
      );
      return `${lines.join("\n")}\n`;
    },
  };
}

function composeOutput(config: PerimeterConfig): RenderOutput {
  const render = renderCompose(config);
  const files = [...render.files, { path: RUNBOOK_PATH, content: composeRunbook(config, render) }].map((file) => ({ path: file.path, content: file.content, mode: 0o644 }));
  return {
    target: "compose",
    files,
    warnings: render.warnings,
    instructions: (directory) => {
      const lines = [`Rendered perimeter "${config.name}" for Docker Compose into ${directory} (${files.length} files).`, "", "Secrets, one env file per service (each container reads only its own):"];
      for (const envFile of render.envFiles) lines.push(`  ${envFile.file} (${envFile.service}): ${envFile.keys.join(", ")}`);
      lines.push("", "Values that must match:");
      for (const note of sharedSecretNotes(config)) lines.push(`  ${note}`);
      lines.push(
        "",
        "Next steps:",
        `  1. cd ${directory} && for f in env/*.env.example; do cp -n "$f" "\${f%.example}"; done && chmod 600 env/*.env`,
        "     and fill in each env/*.env (tokens: openssl rand -hex 32)",
        "  2. docker compose up -d && docker compose ps   (the gateway turns healthy once connected)",
        `  3. approvals: docker compose exec ${MCP_GUARD} perimeter approvals list`,
        ...firstStartReviewNote(config, `docker compose exec ${MCP_GUARD} perimeter approvals`),
        `  4. dashboard: http://127.0.0.1:${dashboardPort(config)}/ on the Docker host (from elsewhere: ssh -L ${dashboardPort(config)}:127.0.0.1:${dashboardPort(config)} HOST), log in with the admin token`,
        `  5. perimeter check ${directory}`,
        "  The sandbox runner's privileges on this target are explained in docs/render.md.",
        `Day 1 and day 2 (changes, rotation, upgrades, backups, teardown): ${directory}/${RUNBOOK_PATH}`,
      );
      return `${lines.join("\n")}\n`;
    },
  };
}
