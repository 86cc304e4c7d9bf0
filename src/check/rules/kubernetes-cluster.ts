// Kubernetes rules that look across objects: volumes and Secrets shared with the agent, NetworkPolicies, Pod Security
// labels, RBAC grants and what exposes the agent.
import type { RuleDefinition } from "../model.ts";
import { rule } from "./define.ts";

export const KUBERNETES_CLUSTER_RULES: readonly RuleDefinition[] = [
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
  rule(
    "K8S-CONFIGMAP-SECRET", "high",
    "A credential is written in a ConfigMap",
    "A ConfigMap is not a Secret: the built-in view role and many tools read ConfigMaps but not Secrets, they are not encrypted at rest, kubectl describe prints them, and they are committed with the manifests. A bot token or provider key there (often in the hermes.env key Perimeter mounts as Hermes' .env) is readable far beyond the component that needs it, and a provider key in the agent's .env is in the agent's hands.",
    "Move the value into a Secret and reference it (env valueFrom.secretKeyRef); give provider keys to llm-proxy and the agent a virtual key. Leave only non-secret settings (proxies, allowlists, switches) in the ConfigMap.",
    `
# ConfigMap hermes-config-seed, key hermes.env: settings only
data:
  hermes.env: |
    TELEGRAM_ALLOWED_USERS=987654321
    HTTPS_PROXY=http://egress-proxy.hermes-tools.svc.cluster.local:3128
# the token comes from the agent's own Secret
env:
  - name: TELEGRAM_BOT_TOKEN
    valueFrom: { secretKeyRef: { name: hermes-gateway, key: TELEGRAM_BOT_TOKEN } }
`,
  ),
];
