// Rules on pod workloads (Pod, Deployment, StatefulSet, DaemonSet, ReplicaSet, ReplicationController, Job, CronJob,
// PodTemplate): every container kind (init, regular, ephemeral), with pod-level settings inherited.
import type { RuleDefinition } from "../model.ts";
import { rule } from "./define.ts";

export const KUBERNETES_POD_RULES: readonly RuleDefinition[] = [
  rule(
    "K8S-SA-TOKEN-AUTOMOUNT", "high",
    "Service account token is mounted into the pod",
    "A mounted token lets anything running in the pod (a prompt-injected shell command, a compromised tool) call the Kubernetes API as the pod's ServiceAccount. The gateway needs no Kubernetes access at all: \"gateway 不掛 Kubernetes service account token\".",
    "Set automountServiceAccountToken: false on the pod, or on its ServiceAccount and leave the pod unset. A pod-level true overrides the ServiceAccount.",
    `
spec:
  template:
    spec:
      serviceAccountName: hermes
      automountServiceAccountToken: false
`,
  ),
  rule(
    "K8S-HOSTPATH", "high",
    "Pod mounts a hostPath volume",
    "A hostPath volume gives the pod the node's filesystem: a prompt-injected command can read other pods' data, kubelet credentials or write persistence onto the node. \"不要掛 hostPath\".",
    "Use a PersistentVolumeClaim for state and emptyDir for scratch space.",
    `
volumes:
  - name: data
    persistentVolumeClaim:
      claimName: hermes-data
  - name: tmp
    emptyDir: {}
`,
  ),
  rule(
    "K8S-HOST-NAMESPACES", "high",
    "Pod shares the node's network, PID or IPC namespace",
    "hostNetwork puts the pod on the node's interfaces (every NetworkPolicy is bypassed and node-local services become reachable); hostPID/hostIPC expose other processes on the node. \"不要 hostNetwork\".",
    "Remove hostNetwork, hostPID and hostIPC (or set them to false).",
    `
spec:
  hostNetwork: false
  hostPID: false
  hostIPC: false
`,
  ),
  rule(
    "K8S-PRIVILEGED", "critical",
    "Container runs privileged",
    "A privileged container is root on the node: every device, every capability, no seccomp. One prompt-injected command is a node compromise. \"不要 privileged\".",
    "Remove privileged: true; add the single capability the workload really needs instead.",
    `
securityContext:
  privileged: false
  allowPrivilegeEscalation: false
`,
  ),
  rule(
    "K8S-PRIV-ESCALATION", "high",
    "Container does not set allowPrivilegeEscalation: false",
    "Without it a process can gain more privileges than its parent through setuid binaries or file capabilities, turning a foothold from a prompt-injected command into root in the container. \"不要允許 privilege escalation\". Seed 003 keeps it false even for the Hermes image.",
    "Set securityContext.allowPrivilegeEscalation: false on every container (init and ephemeral ones too).",
    `
securityContext:
  allowPrivilegeEscalation: false
`,
  ),
  rule(
    "K8S-CAPABILITIES-ADDED", "high",
    "Container adds Linux capabilities",
    "Added capabilities (NET_ADMIN, SYS_ADMIN, SYS_PTRACE, ...) widen what an attacker who runs code in the container can do to the node and its neighbours. Only NET_BIND_SERVICE is allowed by the restricted Pod Security profile.",
    "Remove capabilities.add, or keep only NET_BIND_SERVICE.",
    `
securityContext:
  capabilities:
    drop: ["ALL"]
`,
  ),
  rule(
    "K8S-CAPABILITIES-NOT-DROPPED", "medium",
    "Container does not drop capabilities",
    "Default container capabilities include NET_RAW (raw sockets for spoofing and scanning) and CHOWN/SETUID/SETGID. Ordinary workloads should drop ALL. The Hermes image is the documented exception (its s6 init needs CHOWN/SETUID/SETGID to drop to UID 10000, seed 003), so the agent container must drop at least NET_RAW: \"block raw sockets / ping-style scanning\".",
    "Add capabilities.drop: [\"ALL\"] (the agent container: drop: [\"NET_RAW\"], or ALL once the image inits rootless).",
    `
securityContext:
  capabilities:
    drop: ["ALL"]        # the Hermes agent container: drop: ["NET_RAW"]
`,
  ),
  rule(
    "K8S-SECCOMP", "medium",
    "Container runs without a seccomp profile",
    "Without RuntimeDefault seccomp every system call is open to code the agent was tricked into running, including the ones container escapes use. Seed 000 and seed 003 both set seccompProfile RuntimeDefault at the pod level.",
    "Set securityContext.seccompProfile.type: RuntimeDefault on the pod (containers inherit it) and do not override it with Unconfined.",
    `
spec:
  securityContext:
    seccompProfile:
      type: RuntimeDefault
`,
  ),
  rule(
    "K8S-RUN-AS-ROOT", "medium",
    "Container may run as root",
    "A process running as UID 0 turns any container escape or writable host mount into root on the node. The Hermes image is exempt (its s6 init starts as root and drops the gateway to UID 10000; runAsNonRoot breaks it, seed 003); every other container should run as non-root.",
    "Set runAsNonRoot: true (pod or container level; a container setting overrides the pod's) and, if the image has no numeric USER, runAsUser.",
    `
spec:
  securityContext:
    runAsNonRoot: true
    runAsUser: 10000
`,
  ),
  rule(
    "K8S-ROOT-GROUP", "medium",
    "Container runs with group 0 (root)",
    "runAsGroup: 0, fsGroup: 0 or a 0 in supplementalGroups puts the processes in the root group: they read and write every file group-owned by root in the image and on mounted volumes (images built for arbitrary UIDs make their directories root-group writable), and fsGroup: 0 makes every volume of the pod root-group owned. Nothing needs it, the agent included: seed 003 runs Hermes with fsGroup 10000.",
    "Set runAsGroup and fsGroup to the program's own non-zero group and keep 0 out of supplementalGroups (pod level; a container's runAsGroup overrides the pod's).",
    `
spec:
  securityContext:
    runAsGroup: 10000
    fsGroup: 10000
`,
  ),
  rule(
    "K8S-READONLY-ROOTFS", "low",
    "Container root filesystem is writable",
    "A writable root filesystem lets an attacker drop tools and persistence into the container. Seed 000 sets readOnlyRootFilesystem: true with emptyDir for /tmp. The Hermes agent container is exempt: a self-improving agent installs dependencies for the skills it writes, which a read-only root breaks (seed 003).",
    "Set readOnlyRootFilesystem: true and mount an emptyDir where the program writes.",
    `
securityContext:
  readOnlyRootFilesystem: true
volumeMounts:
  - { name: tmp, mountPath: /tmp }
`,
  ),
  rule(
    "K8S-RESOURCES", "medium",
    "Container has no CPU or memory limits/requests",
    "An agent told to run a fork bomb or a runaway build can starve the node and every other workload on it. \"CPU / memory / disk / pids 全部限制\".",
    "Set resources.requests and resources.limits for cpu and memory.",
    `
resources:
  requests: { cpu: 250m, memory: 512Mi }
  limits: { cpu: "2", memory: 2Gi }
`,
  ),
  rule(
    "K8S-IMAGE-TAG", "medium",
    "Image is untagged or uses :latest",
    "A floating tag changes what runs on the next pull without review; Hermes' security defaults move between releases, so an unpinned agent silently changes behaviour.",
    "Pin a version tag or an @sha256 digest.",
    `
image: nousresearch/hermes-agent:v2026.11.1
imagePullPolicy: IfNotPresent
`,
  ),
  rule(
    "K8S-DOCKER-SOCKET", "critical",
    "Pod mounts the container runtime socket",
    "The Docker (or containerd/CRI-O) socket is root on the node: whoever can talk to it can start a privileged container that mounts the host. \"Docker socket 等同於高權限控制 host/container runtime\".",
    "Remove the socket mount. Run tool commands in sandbox Jobs instead.",
    `
# no hostPath to /var/run/docker.sock; tasks run as sandbox Jobs in <name>-sandbox
`,
  ),
  rule(
    "K8S-AGENT-DATA-SHARED", "critical",
    "The agent's data volume is mounted by another workload",
    "/opt/data holds the agent's config, API keys, sessions, skills and memories: \"PVC / Secrets = crown jewels\". Another workload mounting it can read every secret or plant a skill the agent will run. \"不要讓 sandbox pod 掛同一份 /opt/data\".",
    "Mount the agent's PersistentVolumeClaim in the agent's pod only. Give other workloads their own volumes.",
    `
# only the agent Deployment references claimName: hermes-data
`,
  ),
  rule(
    "K8S-AGENT-REPLICAS", "high",
    "More than one replica writes the agent's ReadWriteOnce volume",
    "Two gateways on one data directory corrupt state.db (SQLite) and double-answer chats. \"不要多個 gateway replicas 同時寫同一份 PVC\".",
    "Set replicas: 1.",
    `
spec:
  replicas: 1
`,
  ),
  rule(
    "K8S-AGENT-STRATEGY", "medium",
    "The agent's Deployment does not use the Recreate strategy",
    "A rolling update starts the new gateway before the old one stops, so for a moment two pods write the same ReadWriteOnce volume (or the new pod hangs waiting for it). Seed 003: \"single ReadWriteOnce PVC — no overlapping pods\".",
    "Set strategy.type: Recreate.",
    `
spec:
  strategy:
    type: Recreate
`,
  ),
  rule(
    "K8S-PROVIDER-KEY-IN-AGENT", "high",
    "An LLM provider key is in the agent's environment",
    "Secrets in the agent's environment are readable by every child process (/proc/<pid>/environ): a prompt-injected command prints them. Provider keys belong to llm-proxy; the agent gets a virtual key.",
    "Move the provider key to llm-proxy's Secret and give the agent only its virtual key.",
    `
# the agent's config.yaml: model calls go to llm-proxy with a virtual key
model:
  provider: custom
  base_url: http://llm-proxy.hermes-tools.svc.cluster.local:8702/v1
  api_key: ${"${HERMES_LLM_KEY}"}
# the pod's env: the virtual key only
env:
  - name: HERMES_LLM_KEY
    valueFrom: { secretKeyRef: { name: hermes-gateway, key: HERMES_LLM_KEY } }
`,
  ),
  rule(
    "K8S-UNKNOWN-KEY", "medium",
    "Unknown key in a security-relevant place",
    "A misspelled security field (securityContex, automountServiceAcountToken) is silently dropped by lenient validation, so the protection you wrote is not there.",
    "Fix the spelling; the finding names the closest known key.",
    `
automountServiceAccountToken: false
securityContext:
  allowPrivilegeEscalation: false
`,
  ),
];
