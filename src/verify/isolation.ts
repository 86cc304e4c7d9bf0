// `verify isolation`: what the agent can reach and hold, seen from its own side (seed 003's
// verify-hermes-isolation.sh and its security checklist). The probes are the same on every target; only where
// they run and which addresses are decisive differ. Decisions here are pure: a probe run in, results out.
import { createHash } from "node:crypto";
import type { PerimeterConfig } from "../config/index.ts";
import { parseHostRule, placeholdersIn } from "../config/index.ts";
import { fail, isBlocked, pass, skip } from "./model.ts";
import type { CheckResult, VerifyTarget } from "./model.ts";
import type { ProbeRequest } from "./probe.ts";
import type { ProbeRun } from "./runners.ts";

export interface Address {
  readonly host: string;
  readonly port: number;
}

export function formatAddress(address: Address): string {
  return address.host.includes(":") ? `[${address.host}]:${address.port}` : `${address.host}:${address.port}`;
}

/** HOST:PORT from the command line ([v6]:port too); undefined when it is not one. */
export function parseAddress(value: string): Address | undefined {
  const match = /^\[([^\]]+)\]:(\d{1,5})$/.exec(value) ?? /^([^:\s]+):(\d{1,5})$/.exec(value);
  if (match === null) return undefined;
  const port = Number(match[2]);
  return port >= 1 && port <= 65535 ? { host: match[1] as string, port } : undefined;
}

export interface IsolationPlan {
  readonly target: VerifyTarget;
  /** An allowlisted host:port the proxy must let through (CONNECT answered 200). */
  readonly allowed: Address | undefined;
  /** A name no allowlist holds: the proxy must refuse it with 403 and X-Perimeter-Denied. */
  readonly denied: Address;
  /** Addresses the agent must not reach without the proxy (the allowlisted host itself, or --direct). */
  readonly direct: readonly Address[];
  /** Always-listening addresses whose connect proves a leak: the API ClusterIP, or verify's own canary. */
  readonly decisive: readonly Address[];
  /** What `decisive` is, for the evidence line. */
  readonly decisiveWhat: string;
  /** --lan HOST:PORT. */
  readonly lan: readonly Address[];
  /** Names the agent must resolve itself (Kubernetes: in-cluster DNS); empty: nothing to resolve. */
  readonly dnsNames: readonly string[];
  /** Variables that must not be in the agent's environment, and sha256 of values that must not be either. */
  readonly forbiddenNames: readonly string[];
  readonly forbiddenDigests: readonly string[];
  readonly dockerSockets: readonly string[];
}

/** The first exact host of the allowlist and its first port: what "an allowlisted host is reachable" tries. */
export function firstAllowedHost(config: PerimeterConfig): Address | undefined {
  for (const entry of config.egress.allow) {
    const parsed = typeof entry === "string" ? parseHostRule(entry) : parseHostRule(entry.host, entry.ports);
    if (parsed.ok && parsed.rule.match === "exact") return { host: parsed.rule.host, port: parsed.rule.ports[0] ?? 443 };
  }
  return undefined;
}

/**
 * Credentials that belong to a perimeter service, never to the agent: provider keys (llm-proxy holds them), MCP
 * upstream credentials (mcp-guard injects them), the approvals/admin and sandbox tokens. The agent's own token and
 * virtual key are not here: it must hold those.
 */
export function serviceCredentialNames(config: PerimeterConfig): string[] {
  const names = new Set<string>();
  for (const provider of Object.values(config.llm.providers)) if (provider.apiKeySecret !== undefined) names.add(provider.apiKeySecret);
  for (const server of Object.values(config.mcp.servers)) {
    for (const value of [...Object.values(server.headers), ...Object.values(server.env)]) for (const name of placeholdersIn(value)) names.add(name);
    for (const name of server.secrets) names.add(name);
  }
  names.add(config.mcp.admin.tokenSecret);
  names.add(config.sandbox.tokenSecret);
  return [...names].sort();
}

/** sha256 of each known value (at least 8 characters, so a short common value cannot match by chance). */
export function valueDigests(values: Iterable<string>): string[] {
  const digests = new Set<string>();
  for (const value of values) if (value.length >= 8) digests.add(createHash("sha256").update(value).digest("hex"));
  return [...digests].sort();
}

export function isolationProbes(plan: IsolationPlan): ProbeRequest[] {
  const probes: ProbeRequest[] = [
    { id: "sa-token", kind: "file", path: "/var/run/secrets/kubernetes.io/serviceaccount/token" },
    { id: "docker-socket", kind: "access", paths: plan.dockerSockets },
    { id: "env", kind: "env", names: plan.forbiddenNames, digests: plan.forbiddenDigests, required: ["HTTPS_PROXY"] },
    { id: "proxy-denied", kind: "proxy", proxyVariables: ["HTTPS_PROXY", "HTTP_PROXY"], host: plan.denied.host, port: plan.denied.port },
  ];
  if (plan.allowed !== undefined) probes.push({ id: "proxy-allowed", kind: "proxy", proxyVariables: ["HTTPS_PROXY", "HTTP_PROXY"], host: plan.allowed.host, port: plan.allowed.port });
  plan.dnsNames.forEach((name, index) => probes.push({ id: `dns-${index}`, kind: "dns", name }));
  plan.direct.forEach((address, index) => probes.push({ id: `direct-${index}`, kind: "connect", host: address.host, port: address.port }));
  plan.decisive.forEach((address, index) => probes.push({ id: `decisive-${index}`, kind: "connect", host: address.host, port: address.port }));
  plan.lan.forEach((address, index) => probes.push({ id: `lan-${index}`, kind: "connect", host: address.host, port: address.port }));
  return probes;
}

type Answer = Record<string, unknown>;

function answerOf(run: ProbeRun, id: string): Answer | undefined {
  return run.ok ? (run.answers[id] as Answer | undefined) : undefined;
}

/** Connect probes against a set of addresses; a leak when any one connects. */
function connectCheck(
  id: string,
  run: ProbeRun,
  prefix: string,
  addresses: readonly Address[],
  what: string,
  fix: string,
  missing: string,
): CheckResult {
  if (addresses.length === 0) return skip(id, "isolation", missing);
  if (!run.ok) return fail(id, "isolation", `the probe did not run from the agent's side: ${run.error}`, "make the agent's pod/container/process reachable for verify (see docs/verify.md)");
  const outcomes = addresses.map((address, index) => ({ address, answer: answerOf(run, `${prefix}-${index}`) }));
  const leaks = outcomes.filter((entry) => entry.answer === undefined || !isBlocked(entry.answer.outcome));
  const described = outcomes.map((entry) => `${formatAddress(entry.address)} ${String(entry.answer?.outcome ?? "no answer")}`).join(", ");
  if (leaks.length > 0) {
    const connected = leaks.filter((entry) => entry.answer?.outcome === "connected");
    return fail(id, "isolation", `${what}: ${connected.length > 0 ? "CONNECTED (leak)" : "no answer"} — ${described}`, fix);
  }
  return pass(id, "isolation", `${what} blocked — ${described}`);
}

const NETWORK_FIX: Record<VerifyTarget, string> = {
  kubernetes: "apply the rendered NetworkPolicies of the agent's namespace (kubectl apply -k DIR) and use a CNI that enforces them (k3s' kube-router does; flannel alone does not)",
  compose: "keep the agent's service on the rendered internal network only (compose.yaml: networks: [agent], internal: true); remove any other network or ports: from it",
  vps: "keep IPAddressDeny=any and IPAddressAllow=localhost in hermes-gateway.service and the perimeter nftables table loaded (systemctl restart perimeter-firewall)",
  local: "run the agent in a network namespace whose only route is the perimeter's addresses and filter its veth on the host (docs/verify.md: Running the agent for -t local)",
};

export function isolationResults(plan: IsolationPlan, run: ProbeRun): CheckResult[] {
  const results: CheckResult[] = [];
  const unreached = (id: string) => fail(id, "isolation", `the probe did not run from the agent's side: ${run.ok ? "no answer" : run.error}`, "make the agent's pod/container/process reachable for verify (see docs/verify.md)");

  const token = answerOf(run, "sa-token");
  if (token === undefined) results.push(unreached("isolation.service-account-token"));
  else if (token.exists === false) results.push(pass("isolation.service-account-token", "isolation", "no service-account token at /var/run/secrets/kubernetes.io/serviceaccount/token"));
  else
    results.push(
      fail(
        "isolation.service-account-token",
        "isolation",
        `a service-account token is mounted in the agent (${token.exists === true ? "present" : String(token.error)})`,
        "set automountServiceAccountToken: false on the agent's ServiceAccount and pod (render does); re-render rather than edit",
      ),
    );

  const socket = answerOf(run, "docker-socket");
  if (socket === undefined) results.push(unreached("isolation.docker-socket"));
  else {
    const present = (socket.present as Array<{ path: string; readWrite: boolean }> | undefined) ?? [];
    const usable = present.filter((entry) => entry.readWrite);
    if (usable.length > 0) {
      results.push(fail("isolation.docker-socket", "isolation", `the agent can use ${usable.map((entry) => entry.path).join(", ")} (root on the host)`, "do not mount the Docker socket into the agent, and keep its user out of the docker group"));
    } else {
      results.push(pass("isolation.docker-socket", "isolation", present.length === 0 ? `no Docker socket visible (${plan.dockerSockets.join(", ")})` : `${present.map((entry) => entry.path).join(", ")} present but not usable by the agent`));
    }
  }

  const environment = answerOf(run, "env");
  if (environment === undefined) results.push(unreached("isolation.agent-env"));
  else {
    const names = (environment.names as string[] | undefined) ?? [];
    const byValue = (environment.byValue as string[] | undefined) ?? [];
    const leaked = [...new Set([...names, ...byValue])].sort();
    if (leaked.length > 0) {
      results.push(
        fail(
          "isolation.agent-env",
          "isolation",
          `the agent's environment holds a service credential: ${leaked.join(", ")}${byValue.length > 0 ? ` (by value: ${byValue.join(", ")})` : ""}`,
          "remove it from the agent's Secret / env file / environment: provider keys belong to llm-proxy, upstream credentials to mcp-guard, the admin and sandbox tokens to the perimeter; rotate the key, it was exposed to the agent",
        ),
      );
    } else {
      results.push(pass("isolation.agent-env", "isolation", `none of ${plan.forbiddenNames.length} service credentials by name, nor ${plan.forbiddenDigests.length} known values, in the agent's environment`));
    }
  }

  const denied = answerOf(run, "proxy-denied");
  if (denied === undefined) results.push(unreached("isolation.proxy-refuses"));
  else if (denied.status === 403 && typeof denied.denied === "string") {
    results.push(pass("isolation.proxy-refuses", "isolation", `CONNECT ${formatAddress(plan.denied)} through ${String(denied.variable)}=${String(denied.proxy)}: 403, X-Perimeter-Denied: ${denied.denied}`));
  } else {
    const seen = denied.error !== undefined ? String(denied.error) : `${String(denied.status)}${denied.denied === undefined || denied.denied === null ? " without X-Perimeter-Denied" : ""}`;
    results.push(
      fail(
        "isolation.proxy-refuses",
        "isolation",
        `a host off the allowlist was not refused by the perimeter's egress proxy: CONNECT ${formatAddress(plan.denied)} via ${String(denied.proxy ?? denied.variable ?? "no proxy")} answered ${seen}`,
        "point the agent's HTTPS_PROXY/HTTP_PROXY at the perimeter's egress-proxy (render writes them; perimeter up prints them) and keep egress.allow a list of exact hosts",
      ),
    );
  }

  if (plan.allowed === undefined) results.push(skip("isolation.proxy-allows", "isolation", "egress.allow has no exact host to try (pass --allowed HOST:PORT)"));
  else {
    const allowed = answerOf(run, "proxy-allowed");
    if (allowed === undefined) results.push(unreached("isolation.proxy-allows"));
    else if (allowed.status === 200) results.push(pass("isolation.proxy-allows", "isolation", `CONNECT ${formatAddress(plan.allowed)} through ${String(allowed.variable)}=${String(allowed.proxy)}: 200, the proxy reached it`));
    else
      results.push(
        fail(
          "isolation.proxy-allows",
          "isolation",
          `the allowlisted ${formatAddress(plan.allowed)} is not reachable through the proxy: ${allowed.error !== undefined ? String(allowed.error) : `${String(allowed.status)}${typeof allowed.denied === "string" ? ` X-Perimeter-Denied: ${allowed.denied}` : ""}${typeof allowed.perimeterError === "string" ? ` X-Perimeter-Error: ${allowed.perimeterError}` : ""}`}`,
          "check egress.allow holds the host and port, that the egress proxy's own network reaches it (its NetworkPolicy / network), and the agent's HTTPS_PROXY",
        ),
      );
  }

  if (plan.dnsNames.length === 0) results.push(skip("isolation.dns", "isolation", "the agent dials the perimeter by address and names resolve at the proxy: nothing for it to resolve"));
  else {
    const failed: string[] = [];
    const resolved: string[] = [];
    plan.dnsNames.forEach((name, index) => {
      const answer = answerOf(run, `dns-${index}`);
      const addresses = (answer?.addresses as string[] | undefined) ?? [];
      if (addresses.length === 0) failed.push(`${name} (${String(answer?.error ?? "no answer")})`);
      else resolved.push(`${name} → ${addresses.join(" ")}`);
    });
    results.push(
      failed.length === 0
        ? pass("isolation.dns", "isolation", resolved.join("; "))
        : fail("isolation.dns", "isolation", `the agent cannot resolve ${failed.join(", ")}`, "allow DNS (UDP/TCP 53) to the cluster DNS in the agent's NetworkPolicy (render does); check CoreDNS is up"),
    );
  }

  results.push(
    connectCheck(
      "isolation.direct",
      run,
      "direct",
      plan.direct,
      "a direct connection that bypasses the proxy",
      NETWORK_FIX[plan.target],
      "no allowlisted address the agent resolves to try directly (pass --direct HOST:PORT)",
    ),
  );
  results.push(connectCheck("isolation.decisive-probe", run, "decisive", plan.decisive, plan.decisiveWhat, NETWORK_FIX[plan.target], `${plan.decisiveWhat}; pass --lan HOST:PORT for a target you know listens`));
  results.push(connectCheck("isolation.lan", run, "lan", plan.lan, "the LAN target", NETWORK_FIX[plan.target], "no --lan HOST:PORT given (a host you know has a listener)"));
  return results;
}

/** Resolves the allowlisted probe host for `direct` from the agent's own answers: nothing to try when it cannot. */
export function directFromAllowed(allowed: Address | undefined, extra: readonly Address[]): Address[] {
  return extra.length > 0 ? [...extra] : allowed === undefined ? [] : [allowed];
}


