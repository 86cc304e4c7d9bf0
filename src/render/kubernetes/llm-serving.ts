// Local model servers in <name>-llm (vLLM or Ollama): restricted, reachable from llm-proxy only, with no egress at
// all (weights are loaded into their volume beforehand, so a prompt-injected URL cannot make them fetch anything).
import { defaultDeny, networkPolicy, tcp } from "./network.ts";
import type { KubernetesOutput, KubernetesPlan } from "./context.ts";
import { selectorLabels } from "./names.ts";
import { serviceAccount } from "./objects.ts";
import { TMP_MOUNT, clusterService, persistentVolumeClaim, restrictedContainerSecurity, restrictedPodSecurity, scratchVolume, singletonDeployment } from "./workloads.ts";

export function llmServingObjects(plan: KubernetesPlan, out: KubernetesOutput): void {
  const { config, ns, served } = plan;
  const llmProxyPeer = plan.peers.llmProxy;
  const llmObjects = out.llmObjects;
  const policyObjects = out.policyObjects;
  if (served.length > 0) {
    policyObjects.push(defaultDeny(config, ns.llm));
    for (const model of served) {
      const claim = `${model.provider}-models`;
      const isVllm = model.engine === "vllm";
      const gpuLimits: Record<string, string> = model.gpus > 0 ? { "nvidia.com/gpu": String(model.gpus) } : {};
      llmObjects.push(
        serviceAccount(config, model.provider, ns.llm, "llm-serving", false),
        persistentVolumeClaim(config, claim, ns.llm, "llm-serving", "50Gi"),
        singletonDeployment(config, {
          name: model.provider,
          namespace: ns.llm,
          component: "llm-serving",
          serviceAccountName: model.provider,
          automountServiceAccountToken: false,
          container: {
            name: model.engine,
            image: model.image,
            imagePullPolicy: "IfNotPresent",
            ...(isVllm
              ? { args: ["--model", model.model, "--served-model-name", ...model.servedNames, "--host", "0.0.0.0", "--port", String(model.port), "--download-dir", "/models"] }
              : {}),
            env: isVllm
              ? [
                  { name: "HOME", value: "/tmp" },
                  { name: "HF_HOME", value: "/models/huggingface" },
                  { name: "HF_HUB_OFFLINE", value: "1" },
                  { name: "XDG_CACHE_HOME", value: "/tmp/.cache" },
                ]
              : [
                  { name: "HOME", value: "/tmp" },
                  { name: "OLLAMA_HOST", value: `0.0.0.0:${model.port}` },
                  { name: "OLLAMA_MODELS", value: "/models" },
                ],
            ports: [{ name: "http", containerPort: model.port, protocol: "TCP" }],
            readinessProbe: { tcpSocket: { port: "http" }, periodSeconds: 10, failureThreshold: 60 },
            resources: {
              requests: { cpu: model.resources.cpu, memory: model.resources.memory, ...gpuLimits },
              limits: { cpu: model.resources.cpu, memory: model.resources.memory, ...gpuLimits },
            },
            securityContext: restrictedContainerSecurity(),
            volumeMounts: [{ name: "models", mountPath: "/models" }, TMP_MOUNT, ...(isVllm ? [{ name: "shm", mountPath: "/dev/shm" }] : [])],
          },
          volumes: [
            { name: "models", persistentVolumeClaim: { claimName: claim } },
            scratchVolume("2Gi"),
            ...(isVllm ? [{ name: "shm", emptyDir: { medium: "Memory", sizeLimit: "2Gi" } }] : []),
          ],
          podSecurityContext: restrictedPodSecurity(),
        }),
        clusterService(config, model.provider, ns.llm, "llm-serving", [{ name: "http", port: model.port }]),
      );
      policyObjects.push(
        networkPolicy(config, {
          name: model.provider,
          namespace: ns.llm,
          podLabels: selectorLabels(config, model.provider),
          ingress: [{ from: [llmProxyPeer], ports: tcp([model.port]) }],
        }),
      );
    }
  }
}
