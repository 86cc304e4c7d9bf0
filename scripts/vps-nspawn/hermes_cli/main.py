"""A STAND-IN for the Hermes gateway, used only by scripts/vps-nspawn-proof.sh.

The real Hermes Agent is not on this network, so the proof installs this module where the render's
hermes-gateway.service looks for Hermes (`<installDir>/venv/bin/python -m hermes_cli.main gateway run --replace`).
It runs under the real unit, as the real agent user, with the unit's real sandboxing, and reports what that
process can and cannot reach, on one line starting with PERIMETER-PROOF (JSON), then waits to be stopped.
It only observes: scripts/vps-nspawn-proof.sh decides what passes.
"""

import errno
import json
import os
import re
import signal
import socket
import sys
import time
import urllib.error
import urllib.request

OUTSIDE = [("192.0.2.1", 443), ("2001:db8::1", 443)]  # TEST-NET: a dead-end link in the container, never a host


def connect_outcome(host, port, timeout=3.0):
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.settimeout(timeout)
    started = time.monotonic()
    try:
        sock.connect((host, port))
        outcome = "connected"
    except socket.timeout:
        outcome = "timeout"
    except OSError as error:
        outcome = errno.errorcode.get(error.errno, str(error.errno))
    finally:
        sock.close()
    return {"outcome": outcome, "ms": round((time.monotonic() - started) * 1000)}


def send_outcome(host, port):
    """One UDP datagram: sendto() returns the cgroup egress filter's verdict (EPERM) directly, where a TCP connect
    would retry the dropped SYN until it times out."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_DGRAM)
    started = time.monotonic()
    try:
        sock.sendto(b"perimeter-proof", (host, port))
        outcome = "sent"
    except OSError as error:
        outcome = errno.errorcode.get(error.errno, str(error.errno))
    finally:
        sock.close()
    return {"outcome": outcome, "ms": round((time.monotonic() - started) * 1000)}


def proxy_address():
    match = re.match(r"^http://([^:/]+):(\d+)", os.environ.get("HTTPS_PROXY", ""))
    if match is None:
        raise ValueError("no http://HOST:PORT in HTTPS_PROXY")
    return match.group(1), int(match.group(2))


def proxy_connect(target):
    """A CONNECT through the egress proxy: the status line of its answer."""
    sock = socket.create_connection(proxy_address(), timeout=5)
    try:
        sock.sendall(f"CONNECT {target} HTTP/1.1\r\nHost: {target}\r\n\r\n".encode())
        answer = sock.recv(4096).decode(errors="replace")
        return {"outcome": "answered", "status": answer.split("\r\n", 1)[0]}
    finally:
        sock.close()


def http_status(url, token, body=None):
    """Loopback only: the perimeter's own services, called directly (NO_PROXY) as Hermes would."""
    headers = {"Authorization": f"Bearer {token}"}
    if body is not None:
        headers["Content-Type"] = "application/json"
        headers["Accept"] = "application/json, text/event-stream"
    request = urllib.request.Request(url, data=body, headers=headers, method="POST" if body is not None else "GET")
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(request, timeout=10) as response:
            return {"outcome": "answered", "status": response.status}
    except urllib.error.HTTPError as error:
        return {"outcome": "answered", "status": error.code}
    except OSError as error:
        return {"outcome": str(error)}


def file_outcome(path, mode):
    try:
        with open(path, mode):
            return {"outcome": "opened"}
    except OSError as error:
        return {"outcome": errno.errorcode.get(error.errno, str(error.errno))}


def replace_outcome(path):
    """Hermes' own data directory is the agent's: it could write a new file and rename it over .env, unless .env is a
    mount point (the unit's read-only bind mount), where rename() says EBUSY."""
    candidate = f"{path}.perimeter-proof"
    try:
        with open(candidate, "w") as handle:
            handle.write("HTTPS_PROXY=\n")
        os.replace(candidate, path)
        return {"outcome": "replaced"}
    except OSError as error:
        return {"outcome": errno.errorcode.get(error.errno, str(error.errno))}
    finally:
        if os.path.exists(candidate):
            os.unlink(candidate)


def config_urls(home):
    try:
        with open(os.path.join(home, "config.yaml"), encoding="utf-8") as handle:
            text = handle.read()
    except OSError:
        return None, None
    llm = re.search(r"^\s*base_url:\s*(http\S+)", text, re.M)
    mcp = re.search(r"^\s*url:\s*(http\S+/mcp)\s*$", text, re.M)
    return (llm.group(1) if llm else None), (mcp.group(1) if mcp else None)


def guarded(check):
    try:
        return check()
    except Exception as error:  # an observation, not a crash: the proof script judges it
        return {"outcome": f"error: {error!r}"}


def wait_for_perimeter(urls, seconds=60):
    """The services start beside this unit (After= orders starting, not readiness): wait until each port accepts."""
    ports = [(host, int(port)) for url in urls if url for host, port in re.findall(r"^http://([^:/]+):(\d+)", url)]
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if all(connect_outcome(host, port, 1.0)["outcome"] == "connected" for host, port in ports):
            return True
        time.sleep(0.5)
    return False


def probe():
    home = os.environ.get("HERMES_HOME", "")
    llm_url, mcp_url = config_urls(home)
    ready = wait_for_perimeter([os.environ.get("HTTPS_PROXY", ""), llm_url, mcp_url])
    initialize = json.dumps({
        "jsonrpc": "2.0", "id": 1, "method": "initialize",
        "params": {"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "hermes-stand-in", "version": "0"}},
    }).encode()
    return {
        "stand_in": True,
        "uid": os.getuid(),
        "perimeter_ready": ready,
        "outside": outside(),
        "loopback_protected": loopback_protected(),
        "egress_proxy_tcp": guarded(lambda: connect_outcome(*proxy_address())),
        "egress_proxy_refused_host": guarded(lambda: proxy_connect("example.com:443")),
        "llm_proxy_models": guarded(lambda: http_status(f"{llm_url}/models", os.environ.get("HERMES_LLM_KEY", ""))) if llm_url else {"outcome": "no base_url in config.yaml"},
        "mcp_guard_initialize": guarded(lambda: http_status(mcp_url, os.environ.get("PERIMETER_AGENT_TOKEN", ""), initialize)) if mcp_url else {"outcome": "no MCP url in config.yaml"},
        "env_file_write": file_outcome(os.path.join(home, ".env"), "a"),
        "env_file_replace": replace_outcome(os.path.join(home, ".env")),
        "service_secrets_read": file_outcome("/etc/perimeter/env/mcp-guard.env", "r"),
    }


def loopback_protected():
    """The loopback listeners the agent must not dial (dashboard, mcp-guard's admin listener, the feeds), as the
    proof wrote them beside this module (proof.ts protected-ports): each connect's outcome."""
    try:
        with open(os.path.join(os.path.dirname(__file__), "proof_ports.json"), encoding="utf-8") as handle:
            targets = json.load(handle)
    except OSError as error:
        return {"proof_ports.json": {"outcome": f"error: {error!r}"}}
    observed = {}
    for name, listen in targets.items():
        host, _, port = listen.rpartition(":")
        observed[name] = guarded(lambda h=host, p=int(port): connect_outcome(h, p))
    return observed


def outside():
    observed = {}
    for host, port in OUTSIDE:
        observed[f"udp {host}:{port}"] = guarded(lambda h=host, p=port: send_outcome(h, p))
        observed[f"tcp {host}:{port}"] = guarded(lambda h=host, p=port: connect_outcome(h, p))
    return observed


def main():
    if sys.argv[1:2] == ["probe-outside"]:
        # The proof's control: the same connects from a process outside the agent's unit.
        print("PERIMETER-PROOF " + json.dumps({"stand_in": True, "uid": os.getuid(), "outside": outside(), "loopback_protected": loopback_protected()}, sort_keys=True), flush=True)
        return 0
    if sys.argv[1:3] != ["gateway", "run"]:
        print("stand-in for the Hermes gateway: only `gateway run` (and the proof's probe-outside) exist", file=sys.stderr)
        return 2
    print("stand-in for the Hermes gateway (the real one is not on this network): probing from inside its unit", flush=True)
    print("PERIMETER-PROOF " + json.dumps(probe(), sort_keys=True), flush=True)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    while True:
        signal.pause()


if __name__ == "__main__":
    sys.exit(main())
