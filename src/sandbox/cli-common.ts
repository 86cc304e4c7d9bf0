// What `perimeter sandbox exec` (cli.ts) and `perimeter serve sandbox` (serve-cli.ts) share: reading the config
// (loaded only when a command reads one: zod and yaml are most of a short command's start-up), the Kubernetes backend
// (loaded only on that path) and the mapping of a refused task to a usage error.
import type { PerimeterConfig } from "../config/index.ts";
import { UsageError } from "../cli/index.ts";
import type { Logger } from "../shared/index.ts";
import { SandboxTaskError } from "./task.ts";
import type { SandboxBackend, SandboxLimits } from "./task.ts";

export async function configFrom(file: string | undefined): Promise<PerimeterConfig> {
  const { loadConfig, parseConfig } = await import("../config/index.ts");
  return file === undefined ? parseConfig("version: 1\nname: perimeter\n", "(defaults)") : loadConfig(file);
}

export async function kubernetesBackend(limits: SandboxLimits, templatePath: string | undefined, logger: Logger): Promise<SandboxBackend> {
  const { createKubernetesBackend, loadJobTemplate } = await import("./kubernetes.ts");
  const { KubeConfig } = await import("@kubernetes/client-node");
  const kubeConfig = new KubeConfig();
  kubeConfig.loadFromDefault();
  // render owns the path; loaded here only, so the bubblewrap path never pays for the renderers.
  const { SANDBOX_JOB_TEMPLATE_PATH } = await import("../render/index.ts");
  const template = loadJobTemplate(templatePath ?? SANDBOX_JOB_TEMPLATE_PATH);
  return createKubernetesBackend({ kubeConfig, template, defaults: limits, logger });
}

/** A task or flag the sandbox refuses is a usage error (exit 2) with its reason. */
export async function asUsage(command: string, work: () => Promise<number>): Promise<number> {
  try {
    return await work();
  } catch (error) {
    if (error instanceof SandboxTaskError) throw new UsageError(`${command}: ${error.message}`);
    throw error;
  }
}
