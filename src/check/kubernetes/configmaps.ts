// What a ConfigMap holds: a credential written into one (any key, or a variable of a .env key such as the hermes.env
// Perimeter mounts as Hermes' .env), and the Hermes environment such a .env key gives the agent. Which keys are .env
// files and which the agent mounts is decided here; reading a key's text with its positions is the engine's
// (embedded.ts), which calls back into checkConfigMapEnv.
import { secretShapeIn } from "../../config/index.ts";
import type { Collector } from "../collector.ts";
import { checkHermesEnvironment, isCredentialName } from "../hermes-facts.ts";
import type { EnvEntry } from "../hermes-facts.ts";
import { asArray, asRecord, asString } from "../yaml-source.ts";
import type { KubeObject } from "./objects.ts";
import type { Workload } from "./workload.ts";

/** Where Hermes reads its .env (hermes_cli/env_loader.py:238 loads it over the environment). */
const HERMES_ENV_PATH = "/opt/data/.env";
/** Key names that hold a .env file, as check recognises .env files on disk; templates are not read. */
const ENV_KEY = /^(\.env(\..+)?|.+\.env)$/;
const EXAMPLE_KEY = /\.(example|sample|template|dist)$/;
const HERMES_CONFIG_KEY = /^config\.ya?ml$/;

export interface ConfigMapKey {
  readonly object: KubeObject;
  readonly key: string;
  readonly text: string;
  /**
   * hermes-config: a config.yaml (Hermes' rules read it); env: a .env file by its name, or whatever key an agent
   * container mounts where Hermes reads its .env; other: any other value.
   */
  readonly holds: "hermes-config" | "env" | "other";
  /** An agent workload mounts this ConfigMap (its files are in the agent's hands). */
  readonly mountedByAgent: boolean;
}

/** Every string data key of every ConfigMap, with what it holds and whether an agent workload mounts it. */
export function configMapKeys(objects: readonly KubeObject[], workloads: readonly Workload[]): ConfigMapKey[] {
  const mounted = agentConfigMaps(workloads);
  const keys: ConfigMapKey[] = [];
  for (const object of objects) {
    if (object.kind !== "ConfigMap") continue;
    const mountedByAgent = mounted.names.has(`${object.namespace}/${object.objectName}`);
    for (const [key, text] of Object.entries(asRecord(object.value.data) ?? {})) {
      if (typeof text !== "string") continue;
      const env = (ENV_KEY.test(key) && !EXAMPLE_KEY.test(key)) || mounted.envKeys.has(`${object.namespace}/${object.objectName}/${key}`);
      keys.push({ object, key, text, holds: HERMES_CONFIG_KEY.test(key) ? "hermes-config" : env ? "env" : "other", mountedByAgent });
    }
  }
  return keys;
}

/** ConfigMaps an agent workload mounts (directly or projected), and the keys it mounts at Hermes' .env path. */
function agentConfigMaps(workloads: readonly Workload[]): { names: Set<string>; envKeys: Set<string> } {
  const names = new Set<string>();
  const envKeys = new Set<string>();
  for (const workload of workloads) {
    if (!workload.isAgent) continue;
    const namespace = workload.object.namespace;
    const volumes = new Map<string, string[]>();
    for (const item of asArray(workload.spec.volumes)) {
      const volume = asRecord(item);
      const sources = [asString(asRecord(volume?.configMap)?.name), ...asArray(asRecord(volume?.projected)?.sources).map((source) => asString(asRecord(asRecord(source)?.configMap)?.name))];
      const found = sources.filter((name): name is string => name !== undefined);
      for (const name of found) names.add(`${namespace}/${name}`);
      const volumeName = asString(volume?.name);
      if (volumeName !== undefined) volumes.set(volumeName, found);
    }
    for (const container of workload.containers) {
      for (const item of asArray(container.value.volumeMounts)) {
        const mount = asRecord(item);
        const subPath = asString(mount?.subPath);
        if (asString(mount?.mountPath) !== HERMES_ENV_PATH || subPath === undefined) continue;
        for (const name of volumes.get(asString(mount?.name) ?? "") ?? []) envKeys.add(`${namespace}/${name}/${subPath}`);
      }
    }
  }
  return { names, envKeys };
}

/** A value that only names other variables (`${GITHUB_TOKEN}`, `$TOKEN`) holds no secret itself. */
function onlyReferences(value: string): boolean {
  return value.replace(/\$\{[A-Za-z_][A-Za-z0-9_]*\}|\$[A-Za-z_][A-Za-z0-9_]*/g, "").trim() === "";
}

/** Why a variable's value is a credential (never the value itself), or undefined. */
function credentialIn(name: string, value: string): string | undefined {
  const shape = secretShapeIn(value);
  if (shape !== undefined) return `what looks like a ${shape}`;
  if (isCredentialName(name) && value.trim() !== "" && !onlyReferences(value)) return "a credential (by its name)";
  return undefined;
}

/** A key that is neither a .env file nor Hermes' config.yaml (those are read variable by variable, key by key). */
export function checkConfigMapValue(entry: ConfigMapKey, collector: Collector): void {
  // A key is also a variable name when the ConfigMap is imported with envFrom, so its name counts as in a .env.
  const what = credentialIn(entry.key, entry.text);
  if (what === undefined) return;
  collector.add("K8S-CONFIGMAP-SECRET", entry.object, ["data", entry.key], `key "${entry.key}" of ConfigMap ${entry.object.name} holds ${what}: move it into a Secret`);
}

/**
 * The variables of a .env key: Hermes' environment rules (not complete: the container's own env adds to it), the
 * agent's provider keys when an agent mounts it, and credentials written into the ConfigMap.
 */
export function checkConfigMapEnv(entry: ConfigMapKey, entries: readonly EnvEntry[], collector: Collector): void {
  checkHermesEnvironment(entries, { complete: false, providerKeyRule: entry.mountedByAgent ? "K8S-PROVIDER-KEY-IN-AGENT" : undefined }, collector);
  for (const variable of entries) {
    if (typeof variable.value !== "string") continue;
    const what = credentialIn(variable.name, variable.value);
    if (what !== undefined) {
      collector.add("K8S-CONFIGMAP-SECRET", variable.subject, variable.path, `${variable.name} in key "${entry.key}" of ConfigMap ${entry.object.name} holds ${what}: move it into a Secret`);
    }
  }
}
