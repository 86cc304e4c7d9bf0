// The Job every sandboxed task runs as (seed 000 §7, hardened). The sandbox runner reads this template from a
// ConfigMap, then sets only the name, command/args/env and an `inputs` ConfigMap volume: everything that makes the
// pod safe is decided here, at render time, where `perimeter check` can see it.
import type { IJob } from "kubernetes-models/batch/v1/Job";
import type { IPodSpec } from "kubernetes-models/v1/PodSpec";
import type { PerimeterConfig } from "../../config/index.ts";
import { DEFAULT_SANDBOX_IMAGE, SANDBOX_EGRESS_PROXY } from "../plan.ts";
import { NO_RESOLVER, hostsOnly } from "./dns.ts";
import { namespaces, serviceHost, standardLabels } from "./names.ts";

export const SANDBOX_TASK_SERVICE_ACCOUNT = "sandbox-task";
export const SANDBOX_TASK_CONTAINER = "task";
/** Where the runner finds the template (ConfigMap key `job.yaml`). */
export const SANDBOX_JOB_TEMPLATE_PATH = "/etc/perimeter/sandbox/job.yaml";
export const SANDBOX_JOB_TEMPLATE_KEY = "job.yaml";
/** Finished Jobs (and their pods and logs) disappear after five minutes: enough for the runner to collect output. */
export const SANDBOX_TTL_SECONDS_AFTER_FINISHED = 300;
/** /tmp is scratch for interpreters (pip caches, tempfiles); the workspace carries the real disk budget. */
export const SANDBOX_TMP_SIZE = "256Mi";
/** The distroless "nonroot" uid: not root, not the agent's 10000, owns nothing on the node. */
export const SANDBOX_UID = 65532;

/** Labels on the Job and its pod; the NetworkPolicies of the sandbox namespace select pods by them. */
export function sandboxTaskLabels(config: PerimeterConfig): Record<string, string> {
  return {
    ...standardLabels(config, "perimeter-sandbox-task", "sandbox"),
    "perimeter.dev/role": "sandbox-task",
  };
}

/**
 * With `sandbox.network.allow`, tasks reach the internet only through their own egress proxy (which holds only the
 * sandbox allowlist); these variables point every HTTP client at it. Without an allowlist there is no proxy, no DNS,
 * no route: the NetworkPolicy of the sandbox namespace allows nothing.
 */
export function sandboxProxyEnvironment(config: PerimeterConfig): Array<{ name: string; value: string }> {
  if (config.sandbox.network === "none") return [];
  const port = /:(\d+)$/.exec(config.egress.listen)?.[1] ?? "3128";
  const proxy = `http://${serviceHost(SANDBOX_EGRESS_PROXY, namespaces(config).tools)}:${port}`;
  const noProxy = "localhost,127.0.0.1,::1";
  return [
    ...["HTTPS_PROXY", "HTTP_PROXY", "https_proxy", "http_proxy"].map((name) => ({ name, value: proxy })),
    { name: "NO_PROXY", value: noProxy },
    { name: "no_proxy", value: noProxy },
  ];
}

/**
 * How a task resolves names (kubernetes/dns.ts says why). Without network: no resolver at all. With an allowlist:
 * only its proxy's name, from /etc/hosts at the pinned ClusterIP, or (Cilium, no fixed addresses) from kube-dns
 * behind a policy that answers that one name. Never throws: render refuses a config with neither before writing
 * the template, and a template made without an address gets no resolver, so its tasks reach nothing.
 */
export function sandboxTaskNameResolution(config: PerimeterConfig): Pick<IPodSpec, "dnsPolicy" | "dnsConfig" | "hostAliases"> {
  if (config.sandbox.network === "none") return NO_RESOLVER;
  const pinned = config.kubernetes.serviceIPs;
  if (pinned === undefined && config.kubernetes.cni === "cilium") return {};
  const address = pinned?.[SANDBOX_EGRESS_PROXY];
  return address === undefined ? NO_RESOLVER : hostsOnly({ [SANDBOX_EGRESS_PROXY]: address }, [SANDBOX_EGRESS_PROXY], namespaces(config).tools);
}

/**
 * The hardened Job. The runner adds a name, command/args, an `inputs` ConfigMap volume and its own environment
 * entries; it appends to `env` (present only with a sandbox allowlist: the proxy settings) rather than replacing it.
 */
export function sandboxJobTemplate(config: PerimeterConfig): IJob {
  const limits = config.sandbox.limits;
  const proxyEnvironment = sandboxProxyEnvironment(config);
  const labels = sandboxTaskLabels(config);
  const runtimeClassName = config.kubernetes.sandboxRuntimeClass ?? config.sandbox.runtimeClassName;
  const resources = { cpu: limits.cpu, memory: limits.memory, "ephemeral-storage": limits.disk };
  return {
    apiVersion: "batch/v1",
    kind: "Job",
    metadata: { namespace: namespaces(config).sandbox, labels },
    spec: {
      // A task that fails is reported, never retried: a retry would re-run side effects the human did not ask for twice.
      backoffLimit: 0,
      activeDeadlineSeconds: limits.timeoutSeconds,
      ttlSecondsAfterFinished: SANDBOX_TTL_SECONDS_AFTER_FINISHED,
      template: {
        metadata: { labels },
        spec: {
          restartPolicy: "Never",
          // No identity in the cluster: the task cannot talk to the API server even if a NetworkPolicy let it.
          serviceAccountName: SANDBOX_TASK_SERVICE_ACCOUNT,
          automountServiceAccountToken: false,
          // Service links would inject every Service's address in the namespace as environment variables.
          enableServiceLinks: false,
          ...sandboxTaskNameResolution(config),
          ...(runtimeClassName === undefined || runtimeClassName === null ? {} : { runtimeClassName }),
          securityContext: {
            runAsNonRoot: true,
            runAsUser: SANDBOX_UID,
            runAsGroup: SANDBOX_UID,
            fsGroup: SANDBOX_UID,
            seccompProfile: { type: "RuntimeDefault" },
          },
          containers: [
            {
              name: SANDBOX_TASK_CONTAINER,
              image: config.sandbox.image ?? DEFAULT_SANDBOX_IMAGE,
              workingDir: "/workspace",
              ...(proxyEnvironment.length === 0 ? {} : { env: proxyEnvironment }),
              securityContext: {
                allowPrivilegeEscalation: false,
                readOnlyRootFilesystem: true,
                runAsNonRoot: true,
                capabilities: { drop: ["ALL"] },
              },
              resources: { requests: { ...resources }, limits: { ...resources } },
              volumeMounts: [
                { name: "workspace", mountPath: "/workspace" },
                { name: "tmp", mountPath: "/tmp" },
              ],
            },
          ],
          // Only disposable volumes: no data PVC, no Secret, no hostPath. The workspace dies with the pod.
          volumes: [
            { name: "workspace", emptyDir: { sizeLimit: limits.disk } },
            { name: "tmp", emptyDir: { sizeLimit: SANDBOX_TMP_SIZE } },
          ],
        },
      },
    },
  };
}
