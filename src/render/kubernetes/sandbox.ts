// The sandbox runner and the sandbox namespace: the runner's workload and Role (Jobs in that namespace only), the
// namespace's quota and admission policies, and the policies that keep task pods off every network but their proxy.
import type { IVolume } from "kubernetes-models/v1/Volume";
import { RUNTIME_CONFIG_PATH, SANDBOX_EGRESS_PROXY, SANDBOX_METRICS_PORT, SANDBOX_RUNNER } from "../plan.ts";
import { toYaml } from "../yaml.ts";
import { sandboxAdmissionObjects } from "./admission.ts";
import { observabilityIngress, secretsOf } from "./context.ts";
import type { KubernetesOutput, KubernetesPlan } from "./context.ts";
import { dashboardIngress } from "./dashboard.ts";
import { dnsNamesPolicy } from "./dns.ts";
import { selectorLabels, serviceHost, standardLabels } from "./names.ts";
import { API_SERVER_IPBLOCK_NOTE, apiServer, defaultDeny, inNamespace, networkPolicy, tcp } from "./network.ts";
import { configMap, multiplyQuantity, serviceAccount } from "./objects.ts";
import type { KubernetesObject } from "./objects.ts";
import { perimeterService } from "./perimeter-service.ts";
import { SANDBOX_JOB_TEMPLATE_KEY, SANDBOX_TASK_SERVICE_ACCOUNT, sandboxJobTemplate } from "./sandbox-job.ts";

const SANDBOX_RUNNER_IGNORES = [
  "K8S-SA-TOKEN-AUTOMOUNT=the sandbox runner creates one Job per task; its Role is limited to Jobs, ConfigMaps and pod logs in the sandbox namespace",
  "K8S-RBAC-CREATE-PODS=the sandbox runner creates Jobs in the sandbox namespace only, which holds no Secret, no PVC and a token-less ServiceAccount; every Job is the rendered hardened template",
].join("\n");

/** Object counts the sandbox namespace may hold, per task slot: a finished task's Job, pod and inputs ConfigMap linger until garbage-collected, so twice the concurrency. */
const SANDBOX_OBJECTS_PER_SLOT = 2;

export function sandboxObjects(plan: KubernetesPlan, out: KubernetesOutput): void {
  const { config, ns, apiServerCidr } = plan;
  if (plan.sandboxServer === undefined || apiServerCidr === undefined) return;
  out.configObjects.push(configMap(config, "sandbox-job-template", ns.tools, "sandbox", { [SANDBOX_JOB_TEMPLATE_KEY]: toYaml(sandboxJobTemplate(config)) }));
  const runnerConfigVolume: IVolume = {
    name: "config",
    projected: {
      sources: [
        { configMap: { name: "perimeter-config", items: [{ key: "perimeter.yaml", path: "perimeter.yaml" }] } },
        { configMap: { name: "sandbox-job-template", items: [{ key: SANDBOX_JOB_TEMPLATE_KEY, path: `sandbox/${SANDBOX_JOB_TEMPLATE_KEY}` }] } },
      ],
    },
  };
  // The runner's own metrics listener (runs nothing) serves /healthz and the audit feed to the dashboard and /metrics to
  // Prometheus, never the MCP port that runs tasks.
  const metricsPort = SANDBOX_METRICS_PORT;
  out.serviceFiles.push({
    path: "sandbox-runner.yaml",
    objects: perimeterService(plan, {
      name: SANDBOX_RUNNER,
      service: "sandbox",
      port: plan.ports.sandbox,
      configPath: RUNTIME_CONFIG_PATH,
      secrets: secretsOf(plan, SANDBOX_RUNNER),
      resources: { requests: { cpu: "50m", memory: "128Mi" }, limits: { cpu: "500m", memory: "256Mi" } },
      tmpSize: "128Mi",
      automountServiceAccountToken: true,
      configVolume: runnerConfigVolume,
      annotations: { "perimeter.dev/ignore": SANDBOX_RUNNER_IGNORES },
      metricsPort: plan.observability === undefined ? undefined : metricsPort,
      extraPorts: [{ name: "metrics", port: metricsPort }],
      extraArguments: ["--metrics-listen", `0.0.0.0:${metricsPort}`],
    }),
  });
  out.rbacObjects.push(...runnerRbac(plan));
  out.sandboxObjects.push(sandboxQuota(plan), ...(sandboxAdmissionObjects(config) as KubernetesObject[]));
  out.policyObjects.push(
    networkPolicy(config, {
      name: SANDBOX_RUNNER,
      namespace: ns.tools,
      podLabels: selectorLabels(config, SANDBOX_RUNNER),
      ingress: [{ from: [plan.peers.guard], ports: tcp([plan.ports.sandbox]) }, dashboardIngress(config, metricsPort), ...observabilityIngress(plan, [metricsPort])],
      egress: [apiServer(apiServerCidr)],
      annotations: { "perimeter.dev/ignore": API_SERVER_IPBLOCK_NOTE },
    }),
  );
  out.policyObjects.push(defaultDeny(config, ns.sandbox));
  if (plan.sandboxAllow !== undefined) {
    const taskLabels = selectorLabels(config, "perimeter-sandbox-task");
    // No port-53 rule: tasks find their proxy in /etc/hosts, or (Cilium) ask kube-dns for that one name only.
    if (plan.resolution.kind === "cilium-names") {
      out.ciliumObjects.push(dnsNamesPolicy(config, { name: "sandbox-task-dns", namespace: ns.sandbox, podLabels: taskLabels, names: [serviceHost(SANDBOX_EGRESS_PROXY, ns.tools)] }));
    }
    out.policyObjects.push(
      networkPolicy(config, {
        name: "sandbox-task",
        namespace: ns.sandbox,
        podLabels: taskLabels,
        egress: [{ to: [inNamespace(ns.tools, selectorLabels(config, SANDBOX_EGRESS_PROXY))], ports: tcp([plan.ports.egress]) }],
      }),
    );
  }
}

/** The task ServiceAccounts (no token) and the runner's Role: Jobs, their ConfigMaps and pod logs, in the sandbox namespace only. */
function runnerRbac(plan: KubernetesPlan): KubernetesObject[] {
  const { config, ns } = plan;
  return [
    serviceAccount(config, SANDBOX_TASK_SERVICE_ACCOUNT, ns.sandbox, "sandbox", false),
    // Every namespace gets a `default` ServiceAccount; a pod that names none would run as it, with a token.
    serviceAccount(config, "default", ns.sandbox, "sandbox", false),
    {
      apiVersion: "rbac.authorization.k8s.io/v1",
      kind: "Role",
      metadata: { name: SANDBOX_RUNNER, namespace: ns.sandbox, labels: standardLabels(config, SANDBOX_RUNNER, "sandbox"), annotations: { "perimeter.dev/ignore": SANDBOX_RUNNER_IGNORES.split("\n")[1] as string } },
      rules: [
        { apiGroups: ["batch"], resources: ["jobs"], verbs: ["create", "delete", "get", "list", "watch"] },
        { apiGroups: [""], resources: ["configmaps"], verbs: ["create", "delete", "get", "list"] },
        { apiGroups: [""], resources: ["pods"], verbs: ["get", "list", "watch"] },
        { apiGroups: [""], resources: ["pods/log"], verbs: ["get"] },
      ],
    } as KubernetesObject,
    {
      apiVersion: "rbac.authorization.k8s.io/v1",
      kind: "RoleBinding",
      metadata: { name: SANDBOX_RUNNER, namespace: ns.sandbox, labels: standardLabels(config, SANDBOX_RUNNER, "sandbox") },
      roleRef: { apiGroup: "rbac.authorization.k8s.io", kind: "Role", name: SANDBOX_RUNNER },
      subjects: [{ kind: "ServiceAccount", name: SANDBOX_RUNNER, namespace: ns.tools }],
    } as KubernetesObject,
  ];
}

/** At most sandbox.concurrency running tasks at their limits, and bounded object counts. */
function sandboxQuota(plan: KubernetesPlan): KubernetesObject {
  const { config, ns } = plan;
  const limits = config.sandbox.limits;
  const concurrency = config.sandbox.concurrency;
  return {
    apiVersion: "v1",
    kind: "ResourceQuota",
    metadata: { name: "sandbox-tasks", namespace: ns.sandbox, labels: standardLabels(config, "sandbox-tasks", "sandbox") },
    spec: {
      hard: {
        pods: String(concurrency),
        "requests.cpu": multiplyQuantity(limits.cpu, concurrency),
        "limits.cpu": multiplyQuantity(limits.cpu, concurrency),
        "requests.memory": multiplyQuantity(limits.memory, concurrency),
        "limits.memory": multiplyQuantity(limits.memory, concurrency),
        "requests.ephemeral-storage": multiplyQuantity(limits.disk, concurrency),
        "limits.ephemeral-storage": multiplyQuantity(limits.disk, concurrency),
        persistentvolumeclaims: "0",
        "services.loadbalancers": "0",
        "services.nodeports": "0",
        // Bounds on what the runner's token can pile up in etcd, whatever it is made to do.
        "count/jobs.batch": String(SANDBOX_OBJECTS_PER_SLOT * concurrency),
        "count/pods": String(SANDBOX_OBJECTS_PER_SLOT * concurrency),
        // +1: kube-root-ca.crt, which Kubernetes publishes into every namespace.
        "count/configmaps": String(SANDBOX_OBJECTS_PER_SLOT * concurrency + 1),
        "count/secrets": "0",
        "count/services": "0",
        "count/persistentvolumeclaims": "0",
      },
    },
  } as KubernetesObject;
}
