// The probe program: one Python 3 script, run from the agent's own vantage point on every target (inside its pod
// with `kubectl exec`, its container with `docker compose exec`, its unit or network namespace on one host). The
// Hermes image has python3 and no curl (seed 003), so the probe uses the standard library only and takes its whole
// job as one JSON argument: no shell quoting, nothing written to the agent's disk. It reports facts (connected,
// refused, a status line, the names of variables) and never a secret's value; deciding PASS/WARN/FAIL stays on the
// operator's side, in TypeScript, where it is tested.

/** What one probe asks for. `id` names the answer. */
export type ProbeRequest =
  | { readonly id: string; readonly kind: "file"; readonly path: string }
  | { readonly id: string; readonly kind: "access"; readonly paths: readonly string[] }
  | { readonly id: string; readonly kind: "dns"; readonly name: string }
  | { readonly id: string; readonly kind: "connect"; readonly host: string; readonly port: number }
  | { readonly id: string; readonly kind: "proxy"; readonly proxyVariables: readonly string[]; readonly host: string; readonly port: number }
  | {
      readonly id: string;
      readonly kind: "env";
      /** Variable names that must not be set. */
      readonly names: readonly string[];
      /** sha256 (hex) of secret values that must not appear as any variable's value. */
      readonly digests: readonly string[];
      /** Variables that must be set (e.g. the proxy), reported as missing when absent. */
      readonly required: readonly string[];
    }
  | {
      readonly id: string;
      readonly kind: "mcp";
      readonly url: string;
      /** The variable holding the agent's token for mcp-guard (its value never leaves the probe). */
      readonly tokenVariable: string;
      /** Tools of these servers (`<server>__<tool>`) to call once, each the harmless one chosen by the probe. */
      readonly callServers: readonly string[];
      /** fnmatch globs of tools never to call (they wait for approval or change something). */
      readonly neverCall: readonly string[];
    };

export interface ProbeSpec {
  /** Seconds each network probe may take; probes run in parallel. */
  readonly timeout: number;
  readonly probes: readonly ProbeRequest[];
}

/** A TCP outcome. Only "connected" reaches something; refused, timeout and unreachable are all blocked (seed 003). */
export type ConnectOutcome = "connected" | "refused" | "timeout" | "unreachable" | "no-such-name" | "error";

export interface ProbeAnswers {
  readonly [id: string]: Record<string, unknown> | undefined;
}

export const PROBE_PROGRAM = String.raw`
import fnmatch, hashlib, json, os, socket, stat, sys, threading, time, urllib.request, urllib.error

spec = json.loads(sys.argv[1])
TIMEOUT = float(spec.get("timeout", 3))
answers = {}

def classify(error):
    if isinstance(error, socket.timeout):
        return "timeout"
    if isinstance(error, socket.gaierror):
        return "no-such-name"
    if isinstance(error, ConnectionRefusedError):
        return "refused"
    number = getattr(error, "errno", None)
    if number in (101, 113, 65, 51):
        return "unreachable"
    if number in (110, 60):
        return "timeout"
    if number in (1, 13):
        return "refused"
    return "error"

def connect(host, port):
    try:
        sock = socket.create_connection((host, int(port)), timeout=TIMEOUT)
        peer = sock.getpeername()
        sock.close()
        return {"outcome": "connected", "peer": str(peer[0])}
    except Exception as error:
        return {"outcome": classify(error), "error": type(error).__name__ + ": " + str(error)[:200]}

def proxy_address(variables):
    for name in variables:
        value = os.environ.get(name) or os.environ.get(name.lower())
        if value:
            rest = value.split("://", 1)[-1].split("/", 1)[0].rsplit("@", 1)[-1]
            if rest.startswith("["):
                host, _, port = rest[1:].partition("]:")
            else:
                host, _, port = rest.rpartition(":")
                if not host:
                    host, port = rest, "80"
            return name, host, int(port or 80)
    return None, None, None

def proxy(probe):
    name, host, port = proxy_address(probe["proxyVariables"])
    if name is None:
        return {"error": "none of " + ", ".join(probe["proxyVariables"]) + " is set"}
    authority = probe["host"] + ":" + str(probe["port"])
    try:
        sock = socket.create_connection((host, port), timeout=TIMEOUT)
    except Exception as error:
        return {"variable": name, "proxy": host + ":" + str(port), "error": "cannot reach the proxy: " + classify(error)}
    try:
        sock.settimeout(TIMEOUT)
        sock.sendall(("CONNECT " + authority + " HTTP/1.1\r\nHost: " + authority + "\r\n\r\n").encode())
        data = b""
        while b"\r\n\r\n" not in data and len(data) < 65536:
            chunk = sock.recv(4096)
            if not chunk:
                break
            data += chunk
        head = data.split(b"\r\n\r\n", 1)[0].decode("latin-1").split("\r\n")
        parts = head[0].split(" ", 2)
        headers = {}
        for line in head[1:]:
            key, _, value = line.partition(":")
            headers[key.strip().lower()] = value.strip()
        status = int(parts[1]) if len(parts) > 1 and parts[1].isdigit() else None
        return {"variable": name, "proxy": host + ":" + str(port), "status": status, "denied": headers.get("x-perimeter-denied"), "perimeterError": headers.get("x-perimeter-error")}
    except Exception as error:
        return {"variable": name, "proxy": host + ":" + str(port), "error": classify(error) + ": " + str(error)[:200]}
    finally:
        sock.close()

def file_info(path):
    try:
        info = os.stat(path)
        return {"exists": True, "mode": stat.S_IMODE(info.st_mode), "uid": info.st_uid, "isDirectory": stat.S_ISDIR(info.st_mode)}
    except FileNotFoundError:
        return {"exists": False}
    except Exception as error:
        return {"exists": None, "error": type(error).__name__}

def access(paths):
    found = []
    for path in paths:
        if os.path.exists(path):
            found.append({"path": path, "readWrite": os.access(path, os.R_OK | os.W_OK)})
    return {"present": found}

def environment(probe):
    digests = set(probe["digests"])
    names = [name for name in probe["names"] if name in os.environ]
    by_value = sorted(name for name, value in os.environ.items() if value and hashlib.sha256(value.encode()).hexdigest() in digests)
    missing = [name for name in probe["required"] if not (os.environ.get(name) or os.environ.get(name.lower()))]
    return {"names": sorted(names), "byValue": by_value, "missing": missing, "uid": os.getuid()}

def mcp(probe):
    token = os.environ.get(probe["tokenVariable"])
    if not token:
        return {"error": probe["tokenVariable"] + " is not set in the agent's environment"}
    # The agent reaches mcp-guard directly (NO_PROXY), never through the egress proxy.
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    session = {}
    counter = [0]
    def call(method, params, notify=False):
        body = {"jsonrpc": "2.0", "method": method, "params": params}
        if not notify:
            counter[0] += 1
            body["id"] = counter[0]
        headers = {"content-type": "application/json", "accept": "application/json, text/event-stream", "authorization": "Bearer " + token, "mcp-protocol-version": "2025-06-18"}
        if "id" in session:
            headers["mcp-session-id"] = session["id"]
        request = urllib.request.Request(probe["url"], data=json.dumps(body).encode(), headers=headers, method="POST")
        with opener.open(request, timeout=TIMEOUT * 3) as response:
            if response.headers.get("mcp-session-id"):
                session["id"] = response.headers.get("mcp-session-id")
            text = response.read().decode("utf-8", "replace")
            if notify:
                return None
            if "text/event-stream" in (response.headers.get("content-type") or ""):
                for line in text.splitlines():
                    if line.startswith("data:"):
                        message = json.loads(line[5:].strip() or "null")
                        if isinstance(message, dict) and message.get("id") == body["id"]:
                            return message
                raise ValueError("no answer in the event stream")
            return json.loads(text)
    try:
        answer = call("initialize", {"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "perimeter-verify", "version": "1"}})
        if "error" in answer:
            return {"error": "initialize: " + json.dumps(answer["error"])[:300]}
        call("notifications/initialized", {}, notify=True)
        tools, cursor = [], None
        for _ in range(50):
            page = call("tools/list", {"cursor": cursor} if cursor else {})
            if "error" in page:
                return {"error": "tools/list: " + json.dumps(page["error"])[:300]}
            tools.extend(page["result"].get("tools", []))
            cursor = page["result"].get("nextCursor")
            if not cursor:
                break
        calls = {}
        for server in probe["callServers"]:
            prefix = server + "__"
            def looks_read_only(tool):
                # mcp-guard shows only the annotations its operator declared (an upstream's own are not trusted),
                # so a listing verb in the name counts too; calls held for approval are excluded below.
                hint = (tool.get("annotations") or {}).get("readOnlyHint")
                if hint is not None:
                    return hint is True
                return tool["name"][len(prefix):].split("_", 1)[0] in ("list", "get", "search", "read", "describe", "show")
            def fillable(tool):
                schema = tool.get("inputSchema") or {}
                properties = schema.get("properties") or {}
                return all((properties.get(name) or {}).get("type") == "string" for name in (schema.get("required") or []))
            harmless = [tool for tool in tools if tool["name"].startswith(prefix)
                        and looks_read_only(tool)
                        and fillable(tool)
                        and not any(fnmatch.fnmatchcase(tool["name"], glob) for glob in probe["neverCall"])]
            if not harmless:
                calls[server] = {"skipped": "no read-only tool (readOnlyHint, or a list_/get_/search_/read_ name) whose required arguments are all strings"}
                continue
            # Fewest required arguments first; each required string gets a marker value (a read-only tool, so
            # "not found" is an answer that proves the path through the guard as well as a listing does).
            harmless.sort(key=lambda tool: (len((tool.get("inputSchema") or {}).get("required") or []), tool["name"]))
            chosen = harmless[0]
            name = chosen["name"]
            arguments = {key: "perimeter-verify" for key in ((chosen.get("inputSchema") or {}).get("required") or [])}
            try:
                result = call("tools/call", {"name": name, "arguments": arguments})
                if "error" in result:
                    calls[server] = {"tool": name, "ok": False, "error": json.dumps(result["error"])[:300]}
                else:
                    content = result["result"].get("content") or []
                    text = " ".join(block.get("text", "") for block in content if isinstance(block, dict))[:300]
                    refused = text.startswith("perimeter:") or text.startswith("refused by the perimeter")
                    calls[server] = {"tool": name, "ok": not refused, "toolError": result["result"].get("isError") is True, "text": text}
            except Exception as error:
                calls[server] = {"tool": name, "ok": False, "error": type(error).__name__ + ": " + str(error)[:200]}
        return {"tools": sorted(tool["name"] for tool in tools), "calls": calls}
    except urllib.error.HTTPError as error:
        return {"status": error.code, "error": "HTTP " + str(error.code)}
    except Exception as error:
        return {"error": classify(error) + ": " + type(error).__name__ + ": " + str(error)[:200]}

def run(probe):
    kind = probe["kind"]
    try:
        if kind == "file":
            answers[probe["id"]] = file_info(probe["path"])
        elif kind == "access":
            answers[probe["id"]] = access(probe["paths"])
        elif kind == "dns":
            try:
                found = sorted({entry[4][0] for entry in socket.getaddrinfo(probe["name"], 443, proto=socket.IPPROTO_TCP)})
                answers[probe["id"]] = {"addresses": found}
            except Exception as error:
                answers[probe["id"]] = {"addresses": [], "error": type(error).__name__ + ": " + str(error)[:200]}
        elif kind == "connect":
            answers[probe["id"]] = connect(probe["host"], probe["port"])
        elif kind == "proxy":
            answers[probe["id"]] = proxy(probe)
        elif kind == "env":
            answers[probe["id"]] = environment(probe)
        elif kind == "mcp":
            answers[probe["id"]] = mcp(probe)
        else:
            answers[probe["id"]] = {"error": "unknown probe kind " + kind}
    except Exception as error:
        answers[probe["id"]] = {"error": "probe failed: " + type(error).__name__ + ": " + str(error)[:200]}

threads = [threading.Thread(target=run, args=(probe,), daemon=True) for probe in spec["probes"]]
for thread in threads:
    thread.start()
deadline = time.time() + TIMEOUT * 4
for thread in threads:
    thread.join(max(0.0, deadline - time.time()))
# A copy taken at once: a thread still running past the deadline must not change what is printed.
final = dict(answers)
for probe in spec["probes"]:
    final.setdefault(probe["id"], {"error": "no answer within " + str(TIMEOUT * 4) + " s"})
print("PERIMETER-PROBE " + json.dumps({"answers": final, "uid": os.getuid()}, sort_keys=True))
`;

/** The marker before the probe's answer: anything else on stdout (a login banner, s6 noise) is ignored. */
export const PROBE_MARKER = "PERIMETER-PROBE ";

/** The probe's answers from its output, or an error saying what came back instead. */
export function parseProbeOutput(stdout: string): { answers: ProbeAnswers; uid: number } {
  const line = stdout.split("\n").find((entry) => entry.startsWith(PROBE_MARKER));
  if (line === undefined) throw new Error(`the probe printed no answer (${stdout.trim().slice(0, 200) || "no output"})`);
  const parsed = JSON.parse(line.slice(PROBE_MARKER.length)) as { answers?: unknown; uid?: unknown };
  if (typeof parsed.answers !== "object" || parsed.answers === null || typeof parsed.uid !== "number") throw new Error("the probe's answer is not what it should be");
  return { answers: parsed.answers as ProbeAnswers, uid: parsed.uid };
}
