// A stand-in Kubernetes API server for `verify -t kubernetes` tests: no API server can be installed here, so this
// serves what kubectl asks for on the real REST paths — legacy discovery (/api, /apis, each group's resource list),
// get and list of the objects a test loads (a rendered Deployment, NetworkPolicies, RoleBindings, the `kubernetes`
// Service), pods by label selector — and plays the kubelet for `kubectl exec`: the WebSocket upgrade with the
// v5.channel.k8s.io subprotocol (RFC 6455 frames, one channel byte per message: 1 stdout, 2 stderr, 3 the final
// Status), running the container's command in a network namespace of the test with the pod's environment and uid.
// Not exercised: authentication, SPDY, stdin and TTY, watches, field selectors, server-side apply. Test support only.
import { spawn } from "node:child_process";
import { createHash } from "node:crypto";
import { createServer } from "node:http";
import type { IncomingMessage, Server, ServerResponse } from "node:http";
import type { Duplex } from "node:stream";

export interface StandInPod {
  readonly name: string;
  readonly namespace: string;
  readonly labels: Readonly<Record<string, string>>;
  readonly container: string;
  /** Where its processes run: a network namespace of the test (ip netns exec). */
  readonly networkNamespace: string;
  readonly uid: number;
  readonly environment: Readonly<Record<string, string>>;
}

export interface KubernetesStandIn {
  readonly url: string;
  /** Objects served by get and list; keyed by apiVersion/kind/namespace/name. */
  put(object: Record<string, unknown>): void;
  remove(kind: string, namespace: string | undefined, name: string): void;
  setPod(pod: StandInPod): void;
  readonly requests: Array<{ method: string; path: string }>;
  readonly execs: Array<{ pod: string; container: string; command: string[] }>;
  close(): Promise<void>;
}

interface Resource {
  readonly group: string;
  readonly version: string;
  readonly plural: string;
  readonly kind: string;
  readonly namespaced: boolean;
}

const RESOURCES: readonly Resource[] = [
  { group: "", version: "v1", plural: "services", kind: "Service", namespaced: true },
  { group: "", version: "v1", plural: "pods", kind: "Pod", namespaced: true },
  { group: "", version: "v1", plural: "namespaces", kind: "Namespace", namespaced: false },
  { group: "apps", version: "v1", plural: "deployments", kind: "Deployment", namespaced: true },
  { group: "networking.k8s.io", version: "v1", plural: "networkpolicies", kind: "NetworkPolicy", namespaced: true },
  { group: "rbac.authorization.k8s.io", version: "v1", plural: "rolebindings", kind: "RoleBinding", namespaced: true },
  { group: "rbac.authorization.k8s.io", version: "v1", plural: "clusterrolebindings", kind: "ClusterRoleBinding", namespaced: false },
];

function json(response: ServerResponse, status: number, body: unknown): void {
  response.writeHead(status, { "content-type": "application/json" });
  response.end(JSON.stringify(body));
}

function notFound(response: ServerResponse, what: string): void {
  json(response, 404, { kind: "Status", apiVersion: "v1", metadata: {}, status: "Failure", message: `${what} not found`, reason: "NotFound", code: 404 });
}

function groupVersion(resource: Resource): string {
  return resource.group === "" ? resource.version : `${resource.group}/${resource.version}`;
}

function resourceList(group: string, version: string) {
  return {
    kind: "APIResourceList",
    apiVersion: "v1",
    groupVersion: group === "" ? version : `${group}/${version}`,
    resources: RESOURCES.filter((resource) => resource.group === group && resource.version === version).map((resource) => ({
      name: resource.plural,
      singularName: resource.kind.toLowerCase(),
      namespaced: resource.namespaced,
      kind: resource.kind,
      verbs: ["get", "list"],
    })),
  };
}

/** One unmasked server frame (RFC 6455 §5.2): FIN, opcode, length, payload. */
function frame(opcode: number, payload: Buffer): Buffer {
  const length = payload.length;
  const header = length < 126 ? Buffer.from([0x80 | opcode, length]) : length < 65536 ? Buffer.from([0x80 | opcode, 126, length >> 8, length & 0xff]) : Buffer.concat([Buffer.from([0x80 | opcode, 127]), (() => { const size = Buffer.alloc(8); size.writeBigUInt64BE(BigInt(length)); return size; })()]);
  return Buffer.concat([header, payload]);
}

export async function startKubernetesStandIn(): Promise<KubernetesStandIn> {
  const objects = new Map<string, Record<string, unknown>>();
  const pods = new Map<string, StandInPod>();
  const requests: Array<{ method: string; path: string }> = [];
  const execs: Array<{ pod: string; container: string; command: string[] }> = [];
  const keyOf = (kind: string, namespace: string | undefined, name: string) => `${kind}/${namespace ?? ""}/${name}`;

  const podObject = (pod: StandInPod) => ({
    apiVersion: "v1",
    kind: "Pod",
    metadata: { name: pod.name, namespace: pod.namespace, labels: pod.labels, uid: `uid-${pod.name}` },
    spec: { containers: [{ name: pod.container, image: "stand-in" }] },
    status: { phase: "Running", conditions: [{ type: "Ready", status: "True" }], containerStatuses: [{ name: pod.container, ready: true, started: true, state: { running: {} } }] },
  });

  const handle = (request: IncomingMessage, response: ServerResponse) => {
    const url = new URL(request.url ?? "/", "http://stand-in");
    requests.push({ method: request.method ?? "GET", path: url.pathname });
    const path = url.pathname;
    if (path === "/api") return json(response, 200, { kind: "APIVersions", versions: ["v1"], serverAddressByClientCIDRs: [] });
    if (path === "/apis") {
      const groups = [...new Set(RESOURCES.filter((resource) => resource.group !== "").map((resource) => resource.group))];
      return json(response, 200, {
        kind: "APIGroupList",
        apiVersion: "v1",
        groups: groups.map((name) => ({ name, versions: [{ groupVersion: `${name}/v1`, version: "v1" }], preferredVersion: { groupVersion: `${name}/v1`, version: "v1" } })),
      });
    }
    if (path === "/version") return json(response, 200, { major: "1", minor: "32", gitVersion: "v1.32.0-stand-in" });
    if (path === "/api/v1") return json(response, 200, resourceList("", "v1"));
    const groupMatch = /^\/apis\/([^/]+)\/(v1)$/.exec(path);
    if (groupMatch !== null) return json(response, 200, resourceList(groupMatch[1] as string, groupMatch[2] as string));

    const match = /^\/(?:api\/v1|apis\/([^/]+)\/v1)(?:\/namespaces\/([^/]+))?\/([^/]+)(?:\/([^/]+))?$/.exec(path);
    if (match === null) return notFound(response, path);
    const [, group = "", namespace, plural, name] = match;
    const resource = RESOURCES.find((entry) => entry.group === group && entry.plural === plural);
    if (resource === undefined) return notFound(response, `resource ${plural}`);
    const all = resource.kind === "Pod" ? [...pods.values()].map(podObject) : [...objects.values()].filter((object) => object.kind === resource.kind);
    const inScope = all.filter((object) => namespace === undefined || (object.metadata as { namespace?: string }).namespace === namespace);
    if (name !== undefined) {
      const found = inScope.find((object) => (object.metadata as { name?: string }).name === name);
      return found === undefined ? notFound(response, `${resource.plural} "${name}"`) : json(response, 200, found);
    }
    const selector = url.searchParams.get("labelSelector");
    const wanted = selector === null || selector === "" ? [] : selector.split(",").map((term) => term.split("=") as [string, string]);
    const items = inScope.filter((object) => wanted.every(([key, value]) => ((object.metadata as { labels?: Record<string, string> }).labels ?? {})[key] === value));
    return json(response, 200, { apiVersion: groupVersion(resource), kind: `${resource.kind}List`, metadata: { resourceVersion: "1" }, items });
  };

  const upgrade = (request: IncomingMessage, socket: Duplex) => {
    const url = new URL(request.url ?? "/", "http://stand-in");
    requests.push({ method: `${request.method ?? "GET"} (upgrade)`, path: url.pathname });
    const match = /^\/api\/v1\/namespaces\/([^/]+)\/pods\/([^/]+)\/exec$/.exec(url.pathname);
    const pod = match === null ? undefined : pods.get(`${match[1]}/${match[2]}`);
    const protocols = String(request.headers["sec-websocket-protocol"] ?? "").split(",").map((entry) => entry.trim());
    const key = request.headers["sec-websocket-key"];
    if (pod === undefined || typeof key !== "string" || !protocols.includes("v5.channel.k8s.io")) {
      socket.end("HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\n\r\n");
      return;
    }
    const accept = createHash("sha1").update(`${key}258EAFA5-E914-47DA-95CA-C5AB0DC85B11`).digest("base64");
    socket.write(`HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: ${accept}\r\nSec-WebSocket-Protocol: v5.channel.k8s.io\r\n\r\n`);
    // Client frames (a close of stdin, a close) are read and ignored: no stdin, no TTY.
    socket.on("data", () => undefined);
    socket.on("error", () => undefined);
    const command = url.searchParams.getAll("command");
    const container = url.searchParams.get("container") ?? pod.container;
    execs.push({ pod: pod.name, container, command });
    const child = spawn("ip", ["netns", "exec", pod.networkNamespace, "setpriv", `--reuid=${pod.uid}`, `--regid=${pod.uid}`, "--clear-groups", "--", "env", "-i", ...Object.entries(pod.environment).map(([name, value]) => `${name}=${value}`), ...command], { stdio: ["ignore", "pipe", "pipe"] });
    const send = (channel: number, data: Buffer) => {
      if (!socket.destroyed) socket.write(frame(0x2, Buffer.concat([Buffer.from([channel]), data])));
    };
    child.stdout.on("data", (chunk: Buffer) => send(1, chunk));
    child.stderr.on("data", (chunk: Buffer) => send(2, chunk));
    child.on("error", (error) => send(2, Buffer.from(error.message)));
    child.on("close", (code) => {
      const status =
        code === 0
          ? { metadata: {}, status: "Success" }
          : { metadata: {}, status: "Failure", message: `command terminated with non-zero exit code: ${code}`, reason: "NonZeroExitCode", details: { causes: [{ reason: "ExitCode", message: String(code) }] } };
      send(3, Buffer.from(JSON.stringify(status)));
      if (!socket.destroyed) socket.end(frame(0x8, Buffer.from([0x03, 0xe8])));
    });
  };

  // A real API server accepts request lines of up to 1 MiB (Go's default); Node's own limit is 16 KiB.
  const server: Server = createServer({ maxHeaderSize: 1 << 20 }, handle);
  server.on("upgrade", upgrade);
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const port = (server.address() as { port: number }).port;
  return {
    url: `http://127.0.0.1:${port}`,
    put: (object) => {
      const metadata = object.metadata as { name: string; namespace?: string };
      objects.set(keyOf(String(object.kind), metadata.namespace, metadata.name), object);
    },
    remove: (kind, namespace, name) => objects.delete(keyOf(kind, namespace, name)),
    setPod: (pod) => pods.set(`${pod.namespace}/${pod.name}`, pod),
    requests,
    execs,
    close: () =>
      new Promise((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
