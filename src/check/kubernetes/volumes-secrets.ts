// What the agent shares with other workloads: its data volume (and how many pods write it), the Secrets it consumes,
// and provider keys that reach its environment.
import type { Collector } from "../collector.ts";
import { isProviderKey } from "../hermes-facts.ts";
import { asArray, asRecord, asString } from "../yaml-source.ts";
import type { Path } from "../yaml-source.ts";
import { getAt } from "./objects.ts";
import type { KubeObject } from "./objects.ts";
import type { Workload } from "./workload.ts";

function claimsOf(workload: Workload): Array<{ claim: string; volumeIndex: number; volumeName: string }> {
  const found: Array<{ claim: string; volumeIndex: number; volumeName: string }> = [];
  asArray(workload.spec.volumes).forEach((item, index) => {
    const volume = asRecord(item);
    const claim = asString(asRecord(volume?.persistentVolumeClaim)?.claimName);
    if (claim !== undefined) found.push({ claim, volumeIndex: index, volumeName: asString(volume?.name) ?? "" });
  });
  return found;
}

/** The agent's data volume: the claim mounted at /opt/data in an agent container (any claim of the agent pod otherwise). */
function agentDataClaims(workload: Workload): Set<string> {
  const claims = claimsOf(workload);
  const atData = new Set<string>();
  for (const container of workload.containers) {
    if (!container.isAgent) continue;
    for (const item of asArray(container.value.volumeMounts)) {
      const mount = asRecord(item);
      if (asString(mount?.mountPath)?.replace(/\/+$/, "") !== "/opt/data") continue;
      const claim = claims.find((entry) => entry.volumeName === asString(mount?.name));
      if (claim !== undefined) atData.add(claim.claim);
    }
  }
  return atData.size > 0 ? atData : new Set(claims.map((entry) => entry.claim));
}

export function checkAgentVolumes(workloads: readonly Workload[], claims: ReadonlyMap<string, KubeObject>, collector: Collector): void {
  const agentClaims = new Map<string, Workload>();
  for (const workload of workloads) {
    if (!workload.isAgent) continue;
    for (const claim of agentDataClaims(workload)) agentClaims.set(`${workload.object.namespace}/${claim}`, workload);
  }
  for (const workload of workloads) {
    const { object } = workload;
    for (const { claim, volumeIndex } of claimsOf(workload)) {
      const key = `${object.namespace}/${claim}`;
      const owner = agentClaims.get(key);
      const volumePath = [...workload.specPath, "volumes", volumeIndex, "persistentVolumeClaim", "claimName"];
      if (owner !== undefined && owner.object.name !== object.name) {
        collector.add("K8S-AGENT-DATA-SHARED", object, volumePath, `mounts the agent's data volume "${claim}" (used by ${owner.object.name})`);
      }
      const pvc = claims.get(key);
      const modes = asArray(getAt(pvc?.value, ["spec", "accessModes"])).map(String);
      const readWriteOnce = pvc === undefined ? owner !== undefined : modes.some((mode) => mode === "ReadWriteOnce" || mode === "ReadWriteOncePod");
      if (readWriteOnce && workload.replicas > 1 && (owner?.object.name === object.name || pvc !== undefined)) {
        collector.add(
          "K8S-AGENT-REPLICAS",
          object,
          object.kind === "DaemonSet" ? ["kind"] : ["spec", "replicas"],
          `${object.kind === "DaemonSet" ? "a DaemonSet runs one pod per node" : `replicas: ${workload.replicas}`} and every pod writes the ReadWriteOnce volume "${claim}"`,
        );
      }
    }
    if (workload.isAgent && object.kind === "Deployment" && claimsOf(workload).length > 0) {
      const strategy = asString(getAt(object.value, ["spec", "strategy", "type"]));
      if (strategy !== "Recreate") {
        collector.add("K8S-AGENT-STRATEGY", object, strategy === undefined ? ["spec"] : ["spec", "strategy", "type"], `strategy ${strategy ?? "RollingUpdate (the default)"} overlaps the old and new agent pods on one data volume`);
      }
    }
  }
}

interface SecretUse {
  readonly secret: string;
  readonly path: Path;
}

function secretUses(workload: Workload): SecretUse[] {
  const uses: SecretUse[] = [];
  const { spec, specPath } = workload;
  asArray(spec.volumes).forEach((item, index) => {
    const volume = asRecord(item);
    const name = asString(asRecord(volume?.secret)?.secretName);
    if (name !== undefined) uses.push({ secret: name, path: [...specPath, "volumes", index, "secret", "secretName"] });
    asArray(asRecord(volume?.projected)?.sources).forEach((source, sourceIndex) => {
      const projected = asString(asRecord(asRecord(source)?.secret)?.name);
      if (projected !== undefined) uses.push({ secret: projected, path: [...specPath, "volumes", index, "projected", "sources", sourceIndex, "secret", "name"] });
    });
  });
  for (const container of workload.containers) {
    asArray(container.value.envFrom).forEach((item, index) => {
      const name = asString(asRecord(asRecord(item)?.secretRef)?.name);
      if (name !== undefined) uses.push({ secret: name, path: [...container.path, "envFrom", index, "secretRef", "name"] });
    });
    asArray(container.value.env).forEach((item, index) => {
      const name = asString(getAt(item, ["valueFrom", "secretKeyRef", "name"]));
      if (name !== undefined) uses.push({ secret: name, path: [...container.path, "env", index, "valueFrom", "secretKeyRef", "name"] });
    });
  }
  return uses;
}

export function checkSharedSecrets(workloads: readonly Workload[], objects: readonly KubeObject[], collector: Collector): void {
  const agentSecrets = new Map<string, Workload>();
  for (const workload of workloads) {
    if (!workload.isAgent) continue;
    for (const use of secretUses(workload)) agentSecrets.set(`${workload.object.namespace}/${use.secret}`, workload);
  }
  for (const workload of workloads) {
    if (workload.isAgent) continue;
    for (const use of secretUses(workload)) {
      const agent = agentSecrets.get(`${workload.object.namespace}/${use.secret}`);
      if (agent !== undefined) collector.add("K8S-SECRET-SHARED", workload.object, use.path, `Secret "${use.secret}" is also consumed by the agent (${agent.object.name}): split it so each component holds only its own keys`);
    }
  }
  // Provider keys visible in the agent's pod: literal env names, or keys of a Secret or ConfigMap in the inputs it
  // imports whole.
  const sources = new Map<string, KubeObject>();
  for (const object of objects) if (object.kind === "Secret" || object.kind === "ConfigMap") sources.set(`${object.kind}/${object.namespace}/${object.objectName}`, object);
  for (const workload of workloads) {
    for (const container of workload.containers) {
      if (!container.isAgent) continue;
      asArray(container.value.env).forEach((item, index) => {
        const name = asString(asRecord(item)?.name);
        if (name !== undefined && isProviderKey(name)) collector.add("K8S-PROVIDER-KEY-IN-AGENT", workload.object, [...container.path, "env", index, "name"], `${name} is in the agent's environment; give it to llm-proxy and the agent a virtual key`);
      });
      asArray(container.value.envFrom).forEach((item, index) => {
        for (const [reference, kind] of [["secretRef", "Secret"], ["configMapRef", "ConfigMap"]] as const) {
          const name = asString(asRecord(asRecord(item)?.[reference])?.name);
          const source = name === undefined ? undefined : sources.get(`${kind}/${workload.object.namespace}/${name}`);
          if (source === undefined) continue;
          const keys = [...Object.keys(asRecord(source.value.data) ?? {}), ...Object.keys(asRecord(source.value.stringData) ?? {})].filter(isProviderKey);
          if (keys.length > 0) collector.add("K8S-PROVIDER-KEY-IN-AGENT", workload.object, [...container.path, "envFrom", index], `envFrom ${kind} "${name}" puts ${keys.join(", ")} in the agent's environment`);
        }
      });
    }
  }
}
