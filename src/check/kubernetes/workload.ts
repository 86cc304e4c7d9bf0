// A workload is an object that carries a pod spec, with its containers and whether it is the agent: the one model every
// pod rule and cross-object rule reads.
import { commandWords, hasAgentLabels, isAgentImage, runsGateway } from "../hermes-facts.ts";
import { asArray, asRecord, asString } from "../yaml-source.ts";
import type { Path } from "../yaml-source.ts";
import { getAt, podSpecPath } from "./objects.ts";
import type { KubeObject } from "./objects.ts";

export type ContainerKind = "initContainers" | "containers" | "ephemeralContainers";

export interface Container {
  readonly kind: ContainerKind;
  readonly index: number;
  readonly value: Record<string, unknown>;
  readonly path: Path;
  readonly name: string;
  readonly isAgent: boolean;
}

export interface Workload {
  readonly object: KubeObject;
  readonly specPath: Path;
  readonly spec: Record<string, unknown>;
  readonly labels: Record<string, unknown>;
  readonly labelsPath: Path;
  readonly containers: readonly Container[];
  readonly isAgent: boolean;
  /** How many pods run at once: replicas, or many for a DaemonSet. */
  readonly replicas: number;
}

export function workloadOf(object: KubeObject): Workload | undefined {
  const specPath = podSpecPath(object.kind);
  if (specPath === undefined) return undefined;
  const spec = asRecord(getAt(object.value, specPath));
  if (spec === undefined) return undefined;
  const labelsPath = object.kind === "Pod" ? ["metadata", "labels"] : [...specPath.slice(0, -1), "metadata", "labels"];
  const labels = asRecord(getAt(object.value, labelsPath)) ?? {};
  const raw: Array<Omit<Container, "isAgent"> & { matches: boolean }> = [];
  for (const kind of ["initContainers", "containers", "ephemeralContainers"] as const) {
    asArray(spec[kind]).forEach((item, index) => {
      const value = asRecord(item);
      if (value === undefined) return;
      const words = [...commandWords(value.command), ...commandWords(value.args)];
      // Only regular containers run the gateway under s6: an init container with the agent's image runs a command
      // instead of /init, so it gets no exemption.
      const matches = kind === "containers" && (isAgentImage(asString(value.image)) || runsGateway(words));
      raw.push({ kind, index, value, path: [...specPath, kind, index], name: asString(value.name) ?? `${kind}[${index}]`, matches });
    });
  }
  const byContainer = raw.some((container) => container.matches);
  const usesAgentImage = raw.some((container) => isAgentImage(asString(container.value.image)));
  const byLabel = hasAgentLabels(labels) || hasAgentLabels(asRecord(asRecord(object.value.metadata)?.labels));
  const isAgent = byContainer || byLabel || usesAgentImage;
  // Recognised by label alone: every regular container is the agent's.
  const containers = raw.map(({ matches, ...container }) => ({ ...container, isAgent: byContainer ? matches : byLabel && container.kind === "containers" }));
  const replicasValue = getAt(object.value, ["spec", "replicas"]);
  const replicas = object.kind === "DaemonSet" ? Infinity : object.kind === "Pod" || object.kind === "Job" || object.kind === "CronJob" || object.kind === "PodTemplate" ? 1 : typeof replicasValue === "number" ? replicasValue : 1;
  return { object, specPath, spec, labels, labelsPath, containers, isAgent, replicas };
}
