// What puts the agent in front of the world: a NodePort or LoadBalancer Service, externalIPs, or an Ingress without
// authentication routing to it.
import type { Collector } from "../collector.ts";
import { asArray, asRecord, asString } from "../yaml-source.ts";
import type { Path } from "../yaml-source.ts";
import { getAt } from "./objects.ts";
import type { KubeObject } from "./objects.ts";
import type { Workload } from "./workload.ts";

const AUTH_ANNOTATION = /(^|[./-])(auth-url|auth-type|auth-signin|auth-secret|auth-tls-verify-client|basic-auth|forward-auth|oauth|router\.middlewares|auth\.middleware|authentik|authelia|pomerium|cognito|oidc)/i;

export function checkExposure(objects: readonly KubeObject[], workloads: readonly Workload[], collector: Collector): void {
  const agents = workloads.filter((workload) => workload.isAgent);
  if (agents.length === 0) return;
  const agentServices = new Map<string, KubeObject>();
  for (const object of objects) {
    if (object.kind !== "Service") continue;
    const selector = asRecord(getAt(object.value, ["spec", "selector"]));
    if (selector === undefined || Object.keys(selector).length === 0) continue;
    const selected = agents.find((agent) => agent.object.namespace === object.namespace && Object.entries(selector).every(([key, value]) => String(agent.labels[key]) === String(value)));
    if (selected === undefined) continue;
    agentServices.set(`${object.namespace}/${object.objectName}`, object);
    const type = asString(getAt(object.value, ["spec", "type"])) ?? "ClusterIP";
    if (type === "NodePort" || type === "LoadBalancer") {
      collector.add("K8S-AGENT-EXPOSED", object, ["spec", "type"], `Service type ${type} exposes the agent (${selected.object.name}) outside the cluster`);
    }
    if (asArray(getAt(object.value, ["spec", "externalIPs"])).length > 0) collector.add("K8S-AGENT-EXPOSED", object, ["spec", "externalIPs"], `externalIPs expose the agent (${selected.object.name})`);
  }
  for (const object of objects) {
    if (object.kind !== "Ingress") continue;
    const annotations = asRecord(asRecord(object.value.metadata)?.annotations) ?? {};
    if (Object.keys(annotations).some((key) => AUTH_ANNOTATION.test(key))) continue;
    const backends: Array<{ service: string; path: Path }> = [];
    const defaultBackend = asString(getAt(object.value, ["spec", "defaultBackend", "service", "name"])) ?? asString(getAt(object.value, ["spec", "backend", "serviceName"]));
    if (defaultBackend !== undefined) backends.push({ service: defaultBackend, path: ["spec", "defaultBackend"] });
    asArray(getAt(object.value, ["spec", "rules"])).forEach((ruleItem, ruleIndex) => {
      asArray(getAt(ruleItem, ["http", "paths"])).forEach((pathItem, pathIndex) => {
        const service = asString(getAt(pathItem, ["backend", "service", "name"])) ?? asString(getAt(pathItem, ["backend", "serviceName"]));
        if (service !== undefined) backends.push({ service, path: ["spec", "rules", ruleIndex, "http", "paths", pathIndex, "backend"] });
      });
    });
    for (const backend of backends) {
      if (agentServices.has(`${object.namespace}/${backend.service}`)) {
        collector.add("K8S-AGENT-EXPOSED", object, backend.path, `Ingress routes to the agent's Service "${backend.service}" with no authentication annotation`);
      }
    }
  }
}
