// Paths, unit names and small unit-text helpers every part of the VPS render shares.
import { AGENT_WORKLOAD, EGRESS_PROXY, LLM_PROXY, MCP_GUARD } from "../plan.ts";
import type { PerimeterService, SecretSpec } from "../plan.ts";
import type { UnitEntry } from "./units.ts";

export const UNIT_DIRECTORY = "/etc/systemd/system";
export const ENV_DIRECTORY = "/etc/perimeter/env";
export const NFTABLES_PATH = "/etc/perimeter/nftables.nft";
/** The .env Hermes sees, bind-mounted read-only over <data>/.env in its unit (see agentUnits). */
export const HERMES_ENV_SOURCE = "/etc/perimeter/hermes.env";
export const HERMES_CONFIG_NAME = "config.yaml";
export const AGENT_UNIT = `${AGENT_WORKLOAD}.service`;
export const FIREWALL_UNIT = "perimeter-firewall.service";

export const SERVICE_UNITS: Record<PerimeterService, string> = {
  "egress-proxy": `perimeter-${EGRESS_PROXY}`,
  "llm-proxy": `perimeter-${LLM_PROXY}`,
  "mcp-guard": `perimeter-${MCP_GUARD}`,
  sandbox: "perimeter-sandbox",
  dashboard: "perimeter-dashboard",
};

export function local(port: number): string {
  return `127.0.0.1:${port}`;
}

/** A systemd Environment= assignment, quoted; `%` would start a specifier and `\` / `"` an escape. */
export function environmentLine(name: string, value: string): UnitEntry {
  return ["Environment", `"${`${name}=${value}`.replace(/\\/g, "\\\\").replace(/"/g, '\\"').replace(/%/g, "%%")}"`];
}

export function envPath(secret: SecretSpec): string {
  return `${ENV_DIRECTORY}/${secret.name}.env`;
}

export function memoryMax(quantity: string): string {
  const match = /^(\d+(?:\.\d+)?)(Ki|Mi|Gi|Ti|k|M|G|T)?$/.exec(quantity);
  if (match === null) return quantity;
  const factor = { Ki: 1024, Mi: 1024 ** 2, Gi: 1024 ** 3, Ti: 1024 ** 4, k: 1000, M: 1000 ** 2, G: 1000 ** 3, T: 1000 ** 4, "": 1 }[match[2] ?? ""] ?? 1;
  return String(Math.round(Number(match[1]) * factor));
}

export function cpuQuota(quantity: string): string {
  const cores = quantity.endsWith("m") ? Number(quantity.slice(0, -1)) / 1000 : Number(quantity);
  return `${Math.round(cores * 100)}%`;
}

export const SOCKET_PROXYD = "/usr/lib/systemd/systemd-socket-proxyd";
