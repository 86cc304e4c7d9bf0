// The rule registry. Ids are stable: baselines, suppressions and SARIF history refer to them. Wording of rationales
// follows the seeds (../shared/seeds) where they say it best. Fix snippets are YAML fragments in the shape
// `perimeter render` writes.
import type { RuleDefinition, RuleFamily, Severity } from "./model.ts";

function rule(id: string, severity: Severity, title: string, rationale: string, remediation: string, fix: string): RuleDefinition {
  return { id, family: id.slice(0, id.indexOf("-")) as RuleFamily, severity, title, rationale, remediation, fix: fix.replace(/^\n/, "") };
}

export const RULES: readonly RuleDefinition[] = [
  // ------------------------------------------------------------------------------------------------------------
  // Kubernetes: pod workloads (Pod, Deployment, StatefulSet, DaemonSet, ReplicaSet, ReplicationController, Job,
  // CronJob, PodTemplate), every container kind (init, regular, ephemeral), pod-level settings inherited.
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

  // ------------------------------------------------------------------------------------------------------------
  // Kubernetes: across objects
  rule(
    "K8S-NETPOL-NO-DEFAULT-DENY", "high",
    "Namespace with workloads has no default-deny NetworkPolicy",
    "Without a default deny, any pod added later (or any pod a policy does not select) talks to anything: \"default deny NetworkPolicy\" is on seed 000's must-do list. (NetworkPolicies only work where the CNI enforces them.)",
    "Add a policy with an empty podSelector that denies Ingress and Egress, then allow what each workload needs.",
    `
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata:
  name: default-deny
  namespace: hermes-system
spec:
  podSelector: {}
  policyTypes: [Ingress, Egress]
`,
  ),
  rule(
    "K8S-NETPOL-AGENT-UNSELECTED", "high",
    "No NetworkPolicy restricts the agent's egress",
    "The agent's own egress policy is what stops a prompt-injected curl from reaching the LAN or exfiltrating data: \"NetworkPolicy = boundary\". A policy whose selector misses the agent's labels protects nothing.",
    "Add an Egress policy whose podSelector matches the agent pod's labels.",
    `
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: { name: hermes-gateway, namespace: hermes-system }
spec:
  podSelector:
    matchLabels: { app.kubernetes.io/instance: hermes, app.kubernetes.io/name: hermes-gateway }
  policyTypes: [Ingress, Egress]
  egress:
    - to:
        - namespaceSelector:
            matchLabels: { kubernetes.io/metadata.name: hermes-tools }
          podSelector:
            matchLabels: { app.kubernetes.io/instance: hermes, app.kubernetes.io/name: egress-proxy }
      ports: [{ protocol: TCP, port: 3128 }]
`,
  ),
  rule(
    "K8S-NETPOL-SELECTS-NOTHING", "medium",
    "NetworkPolicy selects no pod",
    "A policy whose podSelector matches none of the workloads in its namespace looks like protection and is none, usually a label typo (app: hermes-gateway vs app: hermes).",
    "Make podSelector match the labels of the pods you mean to isolate.",
    `
spec:
  podSelector:
    matchLabels: { app: hermes }   # the pod template's labels
`,
  ),
  rule(
    "K8S-NETPOL-EGRESS-ANYWHERE", "high",
    "Egress to 0.0.0.0/0 without excepting private ranges",
    "An allow-all ipBlock reaches the LAN, the cluster and the node: \"allow DNS and outbound 443, and block the entire LAN\" (seed 003) needs the private ranges excepted.",
    "Except 10.0.0.0/8, 172.16.0.0/12, 192.168.0.0/16 (and 169.254.0.0/16, 100.64.0.0/10), or better, send egress through the egress proxy.",
    `
egress:
  - to:
      - ipBlock:
          cidr: 0.0.0.0/0
          except: [10.0.0.0/8, 172.16.0.0/12, 192.168.0.0/16, 169.254.0.0/16, 100.64.0.0/10]
    ports: [{ protocol: TCP, port: 443 }]
`,
  ),
  rule(
    "K8S-NETPOL-METADATA-REACHABLE", "medium",
    "Egress to 0.0.0.0/0 leaves link-local (cloud metadata) and carrier-grade NAT reachable",
    "169.254.169.254 serves cloud credentials to any pod that can reach it; 100.64.0.0/10 is where Tailscale and many cloud internal ranges live. Excepting RFC 1918 alone leaves both open to a prompt-injected request.",
    "Add 169.254.0.0/16 and 100.64.0.0/10 to the except list.",
    `
ipBlock:
  cidr: 0.0.0.0/0
  except: [10.0.0.0/8, 172.16.0.0/12, 192.168.0.0/16, 169.254.0.0/16, 100.64.0.0/10]
`,
  ),
  rule(
    "K8S-NETPOL-DNS-UNSCOPED", "low",
    "DNS egress is allowed to any destination",
    "An egress rule with ports 53 and no `to` lets the pod talk to any host on port 53, on the LAN too, and makes DNS tunnelling to an attacker's resolver easy. Seed 003: \"scope the DNS rule to the kube-system namespace\".",
    "Add a `to` selecting the cluster DNS pods.",
    `
- to:
    - namespaceSelector:
        matchLabels: { kubernetes.io/metadata.name: kube-system }
      podSelector:
        matchLabels: { k8s-app: kube-dns }
  ports: [{ protocol: UDP, port: 53 }, { protocol: TCP, port: 53 }]
`,
  ),
  rule(
    "K8S-NETPOL-IPBLOCK-IN-CLUSTER", "medium",
    "ipBlock rule aimed at a private (in-cluster or node) address",
    "NetworkPolicy is evaluated after DNAT: an ipBlock for a node IP, a NodePort/LoadBalancer or ingress address, or a Service ClusterIP never matches the real destination (a pod IP on another port), so the rule silently fails; and an ipBlock for pod IPs breaks when pods move. Seed 003: \"Why an ipBlock rule for the ingress IP does not work\".",
    "Select the backing pods with namespaceSelector + podSelector in one `to` element.",
    `
- to:
    - namespaceSelector:
        matchLabels: { kubernetes.io/metadata.name: colony-app }
      podSelector:
        matchLabels: { app.kubernetes.io/component: mcp }
  ports: [{ protocol: TCP, port: 8002 }]
`,
  ),
  rule(
    "K8S-PSA-LABELS", "medium",
    "Namespace lacks Pod Security admission labels",
    "Without pod-security.kubernetes.io/enforce nothing stops a privileged pod in the namespace. Seed 000: restricted everywhere; seed 003: baseline enforce for the agent (its s6 init needs root) with restricted warn/audit.",
    "Label the namespace enforce: restricted (or baseline with warn/audit: restricted for the agent's namespace).",
    `
metadata:
  labels:
    pod-security.kubernetes.io/enforce: baseline      # restricted outside the agent's namespace
    pod-security.kubernetes.io/warn: restricted
    pod-security.kubernetes.io/audit: restricted
`,
  ),
  rule(
    "K8S-RBAC-WILDCARD", "high",
    "RBAC rule uses a wildcard",
    "\"*\" in verbs, resources, apiGroups or nonResourceURLs grants everything now and everything added later, secrets and pods/exec included: \"避免 wildcard 權限\". What a wildcard reaches is also reported under the rule for that power (K8S-RBAC-EXEC, K8S-RBAC-SECRETS, ...).",
    "List the exact apiGroups, resources and verbs.",
    `
rules:
  - apiGroups: [""]
    resources: ["pods", "pods/log", "services", "events"]
    verbs: ["get", "list", "watch"]
`,
  ),
  rule(
    "K8S-RBAC-SECRETS", "high",
    "RBAC grants access to Secrets",
    "get/list/watch on secrets reveals their contents: \"list/watch secrets 實際上會讓使用者看到 Secret 內容\". patch does too (the answer is the whole patched Secret). An agent that can read Secrets can read every token in the namespace. Judged on what the rule grants: \"*\" verbs or resources count, delete and update do not, and a binding to a role that grants it (the built-in edit and admin do) is reported on the binding.",
    "Remove secrets from the rule; give each component only its own Secret through its pod spec.",
    `
rules:
  - apiGroups: [""]
    resources: ["pods", "services", "events"]   # no secrets
    verbs: ["get", "list", "watch"]
`,
  ),
  rule(
    "K8S-RBAC-EXEC", "critical",
    "RBAC grants pods/exec, pods/attach or pods/portforward",
    "exec into a pod is running arbitrary commands with that pod's identity and secrets; an agent with it escapes every boundary you built. Exec and attach are create (SPDY) or get (the WebSocket upgrade kubectl uses since 1.30; before 1.35, or with AuthorizePodWebsocketUpgradeCreatePermission off, get alone is enough). port-forward reaches every port of the pod past any NetworkPolicy; patch on pods/ephemeralcontainers adds a debug container to a running pod. list and watch on these subresources grant nothing and are not reported.",
    "Remove create, get and \"*\" on pods/exec, pods/attach and pods/portforward (and update/patch on pods/ephemeralcontainers), including through \"*\" resources or \"*/exec\".",
    `
rules:
  - apiGroups: [""]
    resources: ["pods", "pods/log"]
    verbs: ["get", "list", "watch"]
`,
  ),
  rule(
    "K8S-RBAC-TOKEN", "high",
    "RBAC can mint ServiceAccount tokens",
    "create on serviceaccounts/token issues credentials for any ServiceAccount in scope, including more privileged ones; create on secrets does too, through a Secret of type kubernetes.io/service-account-token that the token controller fills in.",
    "Remove create on serviceaccounts/token and on secrets.",
    `
# no serviceaccounts/token in any rule bound to the agent or a tool server
`,
  ),
  rule(
    "K8S-RBAC-NODES-PROXY", "critical",
    "RBAC grants nodes/proxy",
    "nodes/proxy reaches the kubelet API directly, which can exec into any pod on the node and bypasses admission and audit; get alone is enough (the kubelet's exec is a WebSocket, a GET). Nodes are cluster-scoped: only a ClusterRole bound by a ClusterRoleBinding grants it, so a Role or a RoleBinding naming it is not reported.",
    "Remove nodes/proxy.",
    `
# no nodes/proxy in any rule
`,
  ),
  rule(
    "K8S-RBAC-CREATE-PODS", "high",
    "RBAC can create pods or workloads",
    "Whoever can create workloads can mount any Secret, ConfigMap or ServiceAccount of the namespace into a pod they control: \"能建立 workload 的權限也可能間接取得 namespace 內的 Secret\".",
    "Remove create/update/patch on pods and workload kinds (update or patch on a pod swaps a running container's image). Where a component must create Jobs (a sandbox runner), scope its Role to a namespace that holds no Secret and no PVC, and suppress this finding there with the reason.",
    `
rules:
  - apiGroups: ["apps"]
    resources: ["deployments"]
    verbs: ["get", "list", "watch"]
`,
  ),
  rule(
    "K8S-RBAC-ESCALATE", "critical",
    "RBAC grants escalate, bind or impersonate",
    "escalate and bind on roles or clusterroles let the holder grant itself any permission; impersonate (and the constrained impersonate:* verbs) on users, groups or ServiceAccounts lets it act as them. The built-in edit and admin impersonate every ServiceAccount of their namespace.",
    "Remove escalate, bind and impersonate.",
    `
# no escalate, bind or impersonate verbs
`,
  ),
  rule(
    "K8S-RBAC-CLUSTER-ADMIN", "critical",
    "A binding grants cluster-admin",
    "cluster-admin is everything, everywhere. \"不要給 cluster-admin\". A role among the inputs with \"*\" verbs on \"*\" resources in \"*\" apiGroups is the same thing under another name, and its bindings are reported as such (everything in the namespace for a RoleBinding).",
    "Bind a namespaced Role with the verbs the subject needs.",
    `
kind: RoleBinding
roleRef:
  apiGroup: rbac.authorization.k8s.io
  kind: Role
  name: k8s-readonly
`,
  ),
  rule(
    "K8S-AGENT-EXPOSED", "high",
    "The agent's API or dashboard is exposed outside the cluster",
    "The API server (8642) drives the agent and the dashboard (9119) administers it: \"Dashboard 不要直接公開\". A NodePort, LoadBalancer, hostPort or an Ingress without authentication puts them on the network.",
    "Use a ClusterIP Service; reach the dashboard through kubectl port-forward, a VPN, or an Ingress with an auth annotation (oauth2-proxy, basic auth).",
    `
kind: Service
spec:
  type: ClusterIP
---
kind: Ingress
metadata:
  annotations:
    nginx.ingress.kubernetes.io/auth-url: https://oauth2.example.com/oauth2/auth
`,
  ),
  rule(
    "K8S-SECRET-SHARED", "high",
    "One Secret is consumed by the agent and by another workload",
    "Split tokens: \"不要把所有 token 都塞進同一個 Hermes pod\". A Secret shared by the agent and a tool server hands the agent the tool's credentials (or the tool the agent's), so a prompt injection reaches both.",
    "Give each component its own Secret holding only its own keys.",
    `
# the agent's pod reads only its own Secret (bot tokens, its virtual LLM key, its mcp-guard token)
env:
  - name: TELEGRAM_BOT_TOKEN
    valueFrom: { secretKeyRef: { name: hermes-gateway, key: TELEGRAM_BOT_TOKEN } }
# a tool's credential lives in the Secret of the component that uses it (mcp-guard injects it upstream)
`,
  ),

  // ------------------------------------------------------------------------------------------------------------
  // Docker Compose
  rule(
    "COMPOSE-HOST-NETWORK", "high",
    "Service uses the host's network (or PID/IPC) namespace",
    "\"the default network_mode: host gives the agent process unrestricted outbound network access\" (seed 002): any command it runs reaches any endpoint, LAN and host services included.",
    "Remove network_mode: host and attach the service to an internal network.",
    `
services:
  hermes-gateway:
    networks: [agent]
networks:
  agent: { internal: true }
`,
  ),
  rule(
    "COMPOSE-DOCKER-SOCKET", "critical",
    "Service mounts the Docker socket",
    "\"Anyone who can control /var/run/docker.sock can often get root-equivalent access to the host\" (seed 004).",
    "Remove the socket mount.",
    `
volumes:
  - ./data:/opt/data          # no /var/run/docker.sock
`,
  ),
  rule(
    "COMPOSE-PRIVILEGED", "critical",
    "Service runs privileged",
    "A privileged container is root on the host.",
    "Remove privileged: true.",
    `
privileged: false
security_opt: ["no-new-privileges:true"]
`,
  ),
  rule(
    "COMPOSE-CAP-ADD", "high",
    "Service adds Linux capabilities",
    "Added capabilities (NET_ADMIN, SYS_ADMIN, ...) give code running in the container power over the host's network or kernel.",
    "Remove cap_add (keep NET_BIND_SERVICE at most) and drop what is not needed.",
    `
cap_drop: [NET_RAW]
`,
  ),
  rule(
    "COMPOSE-SECURITY-OPT-UNCONFINED", "high",
    "Service disables seccomp, AppArmor, SELinux or no-new-privileges",
    "seccomp:unconfined and apparmor:unconfined remove the kernel filters that stop container escapes; label:disable turns SELinux off.",
    "Remove those security_opt entries and add no-new-privileges:true.",
    `
security_opt: ["no-new-privileges:true"]
`,
  ),
  rule(
    "COMPOSE-PORT-ALL-INTERFACES", "high",
    "Port published on all interfaces",
    "\"8642:8642\" listens on 0.0.0.0 (and Docker bypasses ufw): the API server or dashboard is on the internet. Seed 004: \"Prefer loopback or Tailscale-only bindings\".",
    "Publish on loopback: \"127.0.0.1:9119:9119\", or not at all.",
    `
ports:
  - "127.0.0.1:9119:9119"
`,
  ),
  rule(
    "COMPOSE-AGENT-NETWORK-NOT-INTERNAL", "high",
    "The agent is attached to a network that is not internal",
    "Seed 002: \"internal — no default route, no internet access. The agent ... run[s] here.\" On a network with a default route, a proxy setting is only advice: a prompt-injected command ignores HTTPS_PROXY and connects directly.",
    "Attach the agent only to internal: true networks; let the egress proxy alone sit on the egress network.",
    `
services:
  hermes-gateway:
    networks: [agent]
  egress-proxy:
    networks: [agent, egress]
networks:
  agent: { internal: true }
  egress: {}
`,
  ),
  rule(
    "COMPOSE-PROVIDER-KEY-IN-AGENT", "high",
    "An LLM provider key is in the agent's environment",
    "\"Values passed with -e, environment:, or env_file: can be visible through docker inspect\" and through /proc/<pid>/environ to the agent's child processes (seed 004). Provider keys belong to llm-proxy.",
    "Give the provider key to llm-proxy only; the agent gets a virtual key and llm-proxy's URL.",
    `
services:
  hermes-gateway:
    env_file: [env/hermes-gateway.env]   # bot tokens and HERMES_LLM_KEY (a virtual key) only
  llm-proxy:
    env_file: [env/llm-proxy.env]        # MINIMAX_API_KEY lives here
`,
  ),
  rule(
    "COMPOSE-NO-EGRESS-PROXY", "medium",
    "The agent has no egress proxy configured",
    "Seed 002: \"route all outbound traffic through an HTTP proxy with an explicit allowlist\". Without HTTPS_PROXY the agent's platform and model calls have no allowlisted path out of an internal network.",
    "Set HTTPS_PROXY/HTTP_PROXY to the egress proxy and NO_PROXY to the internal services.",
    `
environment:
  HTTPS_PROXY: http://egress-proxy:3128
  HTTP_PROXY: http://egress-proxy:3128
  NO_PROXY: mcp-guard,llm-proxy,localhost,127.0.0.1,::1
`,
  ),
  rule(
    "COMPOSE-UNKNOWN-KEY", "medium",
    "Unknown key in a compose service",
    "A misspelled key (privilegd, cap_drp, security_opts) is ignored or rejected depending on the Compose version, so the protection you wrote may not be there.",
    "Fix the spelling; the finding names the closest known key.",
    `
cap_drop: [NET_RAW]
security_opt: ["no-new-privileges:true"]
`,
  ),

  // ------------------------------------------------------------------------------------------------------------
  // Hermes config.yaml and environment
  rule(
    "HERMES-APPROVALS-OFF", "critical",
    "Hermes approvals are off (yolo)",
    "With approvals off a prompt-injected message runs any command unasked. Seed 004: \"Production VPS deployments should not use approvals.mode: off, --yolo, /yolo, or HERMES_YOLO_MODE=1\".",
    "Set approvals.mode: manual (or smart) and remove HERMES_YOLO_MODE.",
    `
approvals:
  mode: manual
  cron_mode: deny
`,
  ),
  rule(
    "HERMES-CRON-APPROVALS", "medium",
    "Cron jobs run dangerous commands without approval",
    "approvals.cron_mode: approve lets scheduled jobs (which nobody watches) run flagged commands; a job planted by a prompt injection runs on its own. Seed 004 sets cron_mode: deny.",
    "Set approvals.cron_mode: deny.",
    `
approvals:
  cron_mode: deny
`,
  ),
  rule(
    "HERMES-ALLOW-ALL-USERS", "critical",
    "Every chat user may drive the agent",
    "\"a bot token is effectively public, and without an allowlist anyone who finds your bot can drive a shell-executing agent\" (seed 003). Seed 004: \"avoid GATEWAY_ALLOW_ALL_USERS=true\".",
    "Remove *_ALLOW_ALL_USERS and list user ids in <PLATFORM>_ALLOWED_USERS.",
    `
TELEGRAM_ALLOWED_USERS=987654321
`,
  ),
  rule(
    "HERMES-PLATFORM-NO-ALLOWLIST", "high",
    "A chat platform is configured without a user allowlist",
    "\"TELEGRAM_ALLOWED_USERS restricts who the bot will respond to. Never leave it empty\" (seed 003).",
    "Set <PLATFORM>_ALLOWED_USERS to the ids allowed to talk to the agent.",
    `
TELEGRAM_BOT_TOKEN=...            # in the Secret, not here
TELEGRAM_ALLOWED_USERS=987654321
`,
  ),
  rule(
    "HERMES-API-SERVER-KEY", "critical",
    "The API server is enabled with an empty or short key",
    "An empty API_SERVER_KEY accepts every request: anyone who reaches port 8642 drives the agent. A short key is guessable.",
    "Set API_SERVER_KEY to a random value of at least 32 characters (openssl rand -hex 32), or disable the API server.",
    `
API_SERVER_ENABLED=true
API_SERVER_KEY=${"${HERMES_API_SERVER_KEY}"}   # 32+ random characters, from a Secret
`,
  ),
  rule(
    "HERMES-API-SERVER-EXPOSED", "high",
    "The API server binds beyond loopback",
    "Seed 004: \"The Hermes API server and dashboard are powerful interfaces. Do not expose either directly to the internet.\"",
    "Bind API_SERVER_HOST to 127.0.0.1 and reach it over a VPN or an SSH tunnel, or put authentication in front.",
    `
API_SERVER_HOST=127.0.0.1
`,
  ),
  rule(
    "HERMES-DASHBOARD-EXPOSED", "high",
    "The dashboard binds beyond loopback without authentication",
    "The dashboard administers the agent: \"Treat the dashboard as private unless you have intentionally placed authentication in front of it\" (seed 004).",
    "Bind the dashboard to 127.0.0.1 (HERMES_DASHBOARD_HOST or --host; HERMES_DASHBOARD=1 alone binds 0.0.0.0:9119), or give it an auth provider (HERMES_DASHBOARD_OAUTH_CLIENT_ID, or HERMES_DASHBOARD_BASIC_AUTH_USERNAME with _PASSWORD_HASH) and never HERMES_DASHBOARD_INSECURE.",
    `
command: ["dashboard", "--host", "127.0.0.1"]
`,
  ),
  rule(
    "HERMES-PRIVATE-URLS", "high",
    "allow_private_urls is on",
    "\"Do not set security.allow_private_urls: true on an internet-facing gateway unless you explicitly accept the risk of prompt-injected URLs reaching private network services\" (seed 004).",
    "Set security.allow_private_urls: false; reach internal services through mcp-guard.",
    `
security:
  allow_private_urls: false
`,
  ),
  rule(
    "HERMES-REDACT-OFF", "high",
    "Secret redaction is off",
    "With redact_secrets: false, tokens that appear in tool output go to the model provider and into logs and sessions.",
    "Set security.redact_secrets: true.",
    `
security:
  redact_secrets: true
`,
  ),
  rule(
    "HERMES-DOCKER-EXTRA-ARGS", "critical",
    "docker_extra_args undo the Docker backend's hardening",
    "The Docker terminal backend drops capabilities and sets no-new-privileges; --privileged, --network host, --cap-add or a socket mount in docker_extra_args give the sandbox back everything it took away.",
    "Remove those arguments from terminal.docker_extra_args.",
    `
terminal:
  backend: docker
  docker_extra_args: []
`,
  ),
  rule(
    "HERMES-FORWARD-PROVIDER-KEYS", "high",
    "Credentials are forwarded into the terminal sandbox",
    "Seed 004: \"Only forward environment variables that the agent truly needs.\" A provider key or bot token forwarded with docker_forward_env is readable by every command the model runs.",
    "Remove credentials from terminal.docker_forward_env.",
    `
terminal:
  docker_forward_env: []
`,
  ),
  rule(
    "HERMES-MCP-LITERAL-TOKEN", "critical",
    "A credential is pasted literally into mcp_servers",
    "Seed 003: \"MCP tokens are ${VAR} references to the Secret — not pasted into config.yaml\". config.yaml is readable by the agent and copied into backups and ConfigMaps.",
    "Write the header as \"Bearer ${VAR}\" and put the value in the environment (Secret or .env); with Perimeter, mcp-guard injects it instead.",
    `
mcp_servers:
  perimeter:
    url: http://mcp-guard.hermes-tools.svc.cluster.local:8700/mcp
    headers:
      Authorization: Bearer ${"${PERIMETER_AGENT_TOKEN}"}
`,
  ),
  rule(
    "HERMES-LOCAL-TERMINAL-PUBLIC-CHAT", "high",
    "Local terminal backend on a gateway that serves chat platforms",
    "With the local backend the agent \"直接擁有與使用者帳號相同的 filesystem access\" (seed 000): a message from a chat platform can become a shell command next to the agent's keys and memories. Seed 000: \"不要: Hermes gateway 裡面直接 shell command\".",
    "Disable Hermes' terminal and code_execution toolsets (agent.disabled_toolsets) and run commands in Perimeter's sandbox through mcp-guard, or use a sandboxed backend (terminal.backend: docker with no extra args).",
    `
# what perimeter render writes: shell and code run only in sandboxes behind mcp-guard
terminal:
  backend: local
agent:
  disabled_toolsets: [code_execution, file, terminal]
# or, without Perimeter's sandbox: terminal: { backend: docker, docker_forward_env: [] }
`,
  ),
  rule(
    "HERMES-PROVIDER-KEY-IN-ENV", "medium",
    "An LLM provider key is in the agent's .env",
    "Secrets in the agent's environment are readable by its child processes (/proc/<pid>/environ). With Perimeter the provider key lives in llm-proxy and the agent holds a revocable virtual key.",
    "Move the key to llm-proxy's environment and point the agent's model.base_url at llm-proxy.",
    `
model:
  provider: custom
  base_url: http://llm-proxy:8702/v1
  api_key: ${"${HERMES_LLM_KEY}"}
`,
  ),
  rule(
    "HERMES-DM-PAIRING", "high",
    "Strangers' DMs are answered with pairing codes",
    "With unauthorized_dm_behavior: pair an unknown user gets a pairing code, and a pairing approved once is admitted past <PLATFORM>_ALLOWED_USERS from then on: the allowlist is no longer the list of who drives the agent (gateway/config.py, gateway/authz_mixin.py).",
    "Set unauthorized_dm_behavior: ignore (globally and in any platforms.<name> block) and add users to the allowlist instead.",
    `
unauthorized_dm_behavior: ignore
`,
  ),
  rule(
    "HERMES-ALLOW-BOTS", "high",
    "Other bots may drive the agent past the user allowlist",
    "DISCORD_ALLOW_BOTS (or FEISHU_ALLOW_BOTS) set to all or mentions admits messages from other bots before the user allowlist is consulted: anyone who can run a bot in a shared server can drive the agent.",
    "Leave DISCORD_ALLOW_BOTS unset (none).",
    `
DISCORD_ALLOW_BOTS=none
`,
  ),
  rule(
    "HERMES-PROXY-BYPASS", "high",
    "The agent's environment sends traffic around the egress proxy",
    "Hermes loads /opt/data/.env over its environment (override=True), so an empty HTTPS_PROXY or NO_PROXY=* there undoes the proxy the container was given: the agent's HTTP clients go direct, and only the network wall is left.",
    "Remove the proxy variables from the .env (Perimeter mounts its own .env read-only) or set them to the egress proxy; list only the perimeter's own services in NO_PROXY.",
    `
HTTPS_PROXY=http://egress-proxy:3128
NO_PROXY=mcp-guard,llm-proxy,localhost,127.0.0.1,::1
`,
  ),
  rule(
    "HERMES-PERIMETER-BYPASS", "high",
    "A feature outside the perimeter stays on while shell and code run in the sandbox",
    "Turning off terminal and code_execution moves commands into Perimeter's sandbox, but Hermes has other ways out on by default: a local Chromium without proxy handling, web, vision, image and TTS tools, cron jobs run by a plain subprocess, cross-platform messaging, kanban workers, PyPI installs at run time, local stdio MCP servers and MCP sampling.",
    "Disable those toolsets in agent.disabled_toolsets, set security.allow_lazy_installs: false and kanban.dispatch_in_gateway: false, give every MCP server sampling: { enabled: false } and reach tools through mcp-guard only.",
    `
agent:
  disabled_toolsets: [browser, code_execution, computer_use, cronjob, file, image_gen, kanban, messaging, terminal, tts, vision, web]
security:
  allow_lazy_installs: false
kanban:
  dispatch_in_gateway: false
mcp_servers:
  perimeter:
    url: http://mcp-guard:8700/mcp
    sampling: { enabled: false }
`,
  ),
  rule(
    "HERMES-UNKNOWN-KEY", "medium",
    "Unknown key in a security section of config.yaml",
    "Hermes ignores keys it does not know, so security.redact_secret: true or approval: { mode: manual } silently leaves the default in force.",
    "Fix the spelling; the finding names the closest known key.",
    `
approvals:
  mode: manual
security:
  redact_secrets: true
`,
  ),

  // ------------------------------------------------------------------------------------------------------------
  // Files on disk
  rule(
    "FILE-ENV-MODE", "high",
    ".env file is readable or writable by others",
    "The .env holds the bot token and API keys: \"chmod 600 ~/.hermes/.env\" (seed 004). Group or world access hands them to every local account and process.",
    "chmod 600 .env",
    `
chmod 600 /opt/data/.env
`,
  ),
  rule(
    "FILE-DATA-DIR-MODE", "high",
    "The agent's data directory is open to other users",
    "The data directory holds config, sessions, memories, skills and secrets: \"chmod 700 ~/.hermes\" (seed 004).",
    "chmod 700 on the data directory.",
    `
chmod 700 /opt/data
`,
  ),
  rule(
    "FILE-WRITABLE-BY-OTHERS", "high",
    "A file in the agent's data directory is writable by group or others",
    "Whoever can write config.yaml, SOUL.md, skills or cron jobs changes what the agent does next, a persistent prompt injection.",
    "chmod go-w on the file; keep the data directory 0700.",
    `
chmod -R go-w /opt/data
`,
  ),
  rule(
    "FILE-OWNER", "medium",
    "A file in the agent's data directory has a different owner than the directory",
    "A file owned by another account can be rewritten by that account (or by root processes you did not mean to trust), and the agent may be unable to rotate it.",
    "chown the data directory's contents to the agent's user (uid 10000 in the official image).",
    `
chown -R 10000:10000 /opt/data
`,
  ),

  // ------------------------------------------------------------------------------------------------------------
  // Dockerfiles
  rule(
    "DOCKER-IMAGE-TAG", "medium",
    "Base image is untagged or uses :latest",
    "A floating base changes what you ship on the next build without review.",
    "Pin FROM to a version tag or @sha256 digest.",
    `
FROM node:24.11-bookworm-slim
`,
  ),
  rule(
    "DOCKER-ROOT-USER", "medium",
    "The image runs as root",
    "Without a USER instruction the process runs as UID 0, so any escape or writable mount is root. (Images built FROM the Hermes image are exempt: its s6 init drops to UID 10000 itself.)",
    "Add USER with a numeric non-root uid in the final stage.",
    `
USER 10000:10000
`,
  ),
  rule(
    "DOCKER-SECRET-IN-IMAGE", "high",
    "A secret is baked into the image",
    "ENV and ARG values are stored in the image's layers and history: everyone who can pull the image reads them.",
    "Pass secrets at run time (a Secret, an env file with mode 0600) or with BuildKit secret mounts.",
    `
RUN --mount=type=secret,id=npm_token NPM_TOKEN=$(cat /run/secrets/npm_token) npm ci
`,
  ),
  rule(
    "DOCKER-CURL-PIPE-SHELL", "medium",
    "A downloaded script is piped into a shell",
    "curl | sh runs whatever the server (or anyone in the middle) sends at build time, unreviewed and unpinned.",
    "Download to a file, verify its checksum, then run it.",
    `
RUN curl -fsSLo /tmp/install.sh https://example.com/install.sh \\
 && echo "<sha256>  /tmp/install.sh" | sha256sum -c - && sh /tmp/install.sh
`,
  ),

  // ------------------------------------------------------------------------------------------------------------
  // Suppressions themselves
  rule(
    "CHECK-SUPPRESSION-INVALID", "medium",
    "A suppression has no reason, a bad date, or names an unknown rule",
    "A suppression without a reason cannot be reviewed, and one with a typo in the rule id hides nothing while looking like it does.",
    "Write `perimeter.dev/ignore: RULE=reason` or `# perimeter:ignore RULE reason until=YYYY-MM-DD` with a known rule id.",
    `
metadata:
  annotations:
    perimeter.dev/ignore: "K8S-READONLY-ROOTFS=writes pip caches to /usr/local until=2026-12-31"
`,
  ),
];

const BY_ID = new Map(RULES.map((definition) => [definition.id, definition]));

export function ruleById(id: string): RuleDefinition | undefined {
  return BY_ID.get(id);
}

export function ruleIds(): string[] {
  return RULES.map((definition) => definition.id);
}
