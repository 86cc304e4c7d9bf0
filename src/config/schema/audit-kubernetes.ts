// audit and kubernetes: where the hash-chained audit log lives and how it is signed and served; the cluster settings
// the Kubernetes render needs (CNI, runtime class, secret store, fixed Service addresses).
import { z } from "zod";
import { imageReference, secretName, serviceIP } from "./scalars.ts";

export const auditSection = z
  .strictObject({
    store: z.enum(["sqlite"]).default("sqlite"),
    path: z.string().default("/var/lib/perimeter/audit.db"),
    signingKeyFile: z.string().optional().describe("Ed25519 private key (PEM) for checkpoints; created on first start when absent. Unset, perimeter up writes unsigned checkpoints; a rendered deployment always signs, each component with /var/lib/perimeter/audit-signing.pem in its own state volume."),
    checkpointEvery: z.number().int().min(1).default(1000),
    feedTokenSecret: secretName
      .optional()
      .describe("Environment variable holding a read-only token for the audit feed (GET /v1/audit/head, /v1/audit/records): with it set, egress-proxy and the sandbox runner serve their records on their metrics listener, llm-proxy on its listener and mcp-guard on its admin listener, so the dashboard can copy and verify every component's chain without holding the admin token anywhere but in mcp-guard. Unset, only mcp-guard serves its records (to the admin token)."),
  });

export const kubernetesSection = z
  .strictObject({
    cni: z.enum(["default", "cilium"]).default("default"),
    sandboxRuntimeClass: z.string().nullable().default(null),
    externalSecrets: z.strictObject({ storeName: z.string(), storeKind: z.enum(["SecretStore", "ClusterSecretStore"]).default("ClusterSecretStore") }).optional(),
    ingressNamespace: z.string().optional().describe("Namespace of the ingress controller, when the API server or dashboard is published."),
    observability: z.strictObject({ enabled: z.boolean().default(false), namespace: z.string().default("observability") }).prefault({}),
    perimeterImage: imageReference.default("ghcr.io/perimeter-dev/perimeter:0.1.0"),
    apiServerCidr: z.string().optional().describe("Address range of the Kubernetes API server, for the runner's and k8s MCP's egress."),
    serviceIPs: z
      .strictObject({
        "mcp-guard": serviceIP,
        "llm-proxy": serviceIP,
        "egress-proxy": serviceIP,
        "egress-proxy-sandbox": serviceIP.optional().describe("Needed when sandbox.network.allow is set."),
      })
      .optional()
      .describe(
        "Fixed ClusterIPs for the Services the agent and sandbox tasks reach, free addresses in the cluster's Service CIDR. With them those pods get no DNS at all (the names are in their /etc/hosts); required unless cni is cilium, because a NetworkPolicy cannot limit DNS to some names.",
      ),
  });
