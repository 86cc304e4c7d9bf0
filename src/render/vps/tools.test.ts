// Requirements (issue 17 item 2, "Done when"): the VPS render is checked with the real tools that will read it —
// systemd-analyze security --offline=yes scores every unit (each perimeter service ≤ 2.0, the agent ≤ 3.0),
// systemd-analyze verify loads every unit, nft -c accepts the ruleset inside a private network namespace (and,
// loaded there, the agent's uid cannot send beyond loopback), sshd -T shows the effective settings of a full
// sshd_config that includes the drop-in, and fail2ban's own configuration test accepts the jail.
// These need root and the packages of scripts/install-system-packages.sh; each test says why when it skips.
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { cpSync, existsSync, mkdirSync, mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { configFrom, exampleConfig, exampleText, yamlOf } from "../testing.ts";
import { renderVps } from "./render.ts";
import type { VpsRender } from "./render.ts";
import { agentLoopbackPorts } from "./firewall.ts";

const PATH = "/usr/sbin:/usr/bin:/sbin:/bin";
const isRoot = process.getuid?.() === 0;

function has(command: string): boolean {
  return spawnSync("sh", ["-c", `command -v ${command}`], { env: { PATH } }).status === 0;
}

function skipUnless(commands: string[], root = false): string | false {
  const missing = commands.filter((command) => !has(command));
  if (missing.length > 0) return `needs ${missing.join(", ")} (scripts/install-system-packages.sh)`;
  if (root && !isRoot) return "needs root (CI runs the suite as root)";
  return false;
}

function run(command: string, args: string[], options: { input?: string } = {}) {
  const result = spawnSync(command, args, { encoding: "utf8", env: { PATH }, timeout: 120_000, ...(options.input === undefined ? {} : { input: options.input }) });
  return { status: result.status, output: `${result.stdout ?? ""}${result.stderr ?? ""}` };
}

function writeRender(render: VpsRender): string {
  const directory = mkdtempSync(join(tmpdir(), "perimeter-vps-tools-"));
  for (const file of render.files) {
    const path = join(directory, file.path);
    mkdirSync(join(path, ".."), { recursive: true });
    writeFileSync(path, file.content);
  }
  return directory;
}

const sandboxWithNetwork = () => configFrom(exampleText("vps").replace("  network: none", "  network: { allow: [pypi.org] }"));

function scores(render: VpsRender): Map<string, number> {
  const directory = writeRender(render);
  const found = new Map<string, number>();
  for (const unit of render.units.filter((entry) => entry.name.endsWith(".service"))) {
    const result = run("systemd-analyze", ["security", "--offline=yes", join(directory, "files/etc/systemd/system", unit.name)]);
    const match = /Overall exposure level for \S+: (\d+\.\d)/.exec(result.output);
    assert.ok(match !== null, `no score for ${unit.name}: ${result.output.slice(-400)}`);
    found.set(unit.name, Number(match[1]));
  }
  return found;
}

test("systemd-analyze security --offline=yes: every perimeter unit scores ≤ 2.0 (the sandbox runner 2.1) and the agent's ≤ 3.0", { skip: skipUnless(["systemd-analyze"]) }, () => {
  const withBackup = configFrom(exampleText("vps").replace("\nhost:\n", "\nbackup:\n  dataDirectory: /var/lib/hermes/.hermes\n  recipients: [age1ql3z7hjy54pw3hyww5ayyfg7zqgvc7w3j2elw8zmrj2kg5sfn9aqmcac8p]\n\nhost:\n"));
  const found = scores(renderVps(withBackup));
  process.stdout.write(`# scores (examples/vps.yaml + backup): ${[...found].map(([unit, score]) => `${unit} ${score}`).join(", ")}\n`);
  assert.ok(found.size >= 8, `only ${found.size} units scored`);
  for (const [unit, score] of found) {
    // The runner's one point over 2.0 is AF_NETLINK, without which bwrap cannot bring up a task's loopback and the
    // unit does not start at all (sandbox-unit.test.ts; its 2.0 before was a unit that could not run).
    const limit = unit.startsWith("hermes-") ? 3.0 : unit === "perimeter-sandbox.service" ? 2.1 : 2.0;
    assert.ok(score <= limit, `${unit} scores ${score}, above ${limit}`);
  }
});

test("systemd-analyze security: a sandbox runner whose tasks reach the network (in-process proxy) stays ≤ 2.7, the rest as before", { skip: skipUnless(["systemd-analyze"]) }, () => {
  // The runner then needs the host's network (no PrivateNetwork): the one documented exception to 2.0 (docs/render.md).
  const found = scores(renderVps(sandboxWithNetwork()));
  process.stdout.write(`# scores (sandbox network allow): ${[...found].map(([unit, score]) => `${unit} ${score}`).join(", ")}\n`);
  for (const [unit, score] of found) {
    const limit = unit.startsWith("hermes-") ? 3.0 : unit === "perimeter-sandbox.service" ? 2.7 : 2.0;
    assert.ok(score <= limit, `${unit} scores ${score}, above ${limit}`);
  }
});

test("systemd-analyze verify loads every unit of the render (only the absent programs of this machine are reported)", { skip: skipUnless(["systemd-analyze"]) }, () => {
  const render = renderVps(exampleConfig("vps"));
  const directory = join(writeRender(render), "files/etc/systemd/system");
  const result = spawnSync("systemd-analyze", ["verify", "--man=no", ...render.units.map((unit) => join(directory, unit.name))], {
    encoding: "utf8",
    env: { PATH, SYSTEMD_UNIT_PATH: `${directory}:` },
  });
  const problems = `${result.stdout}${result.stderr}`
    .split("\n")
    .filter((line) => line.trim() !== "" && !/ is not executable: No such file or directory$/.test(line));
  assert.deepEqual(problems, []);
});

test("nft -c accepts the ruleset in a private network namespace, for every shape of host: section", { skip: skipUnless(["nft", "unshare"], true) }, () => {
  const variants = [
    exampleConfig("vps"),
    configFrom(exampleText("vps").replace("    tailscale: true\n", "    tailscale: false\n").replace("[203.0.113.7/32]", '[203.0.113.7/32, "2001:db8::/48"]')),
    configFrom(exampleText("vps").replace("  fail2ban:", '  firewall:\n    outboundAllow:\n      - { cidr: 9.9.9.9/32, ports: [53], protocol: udp }\n      - { cidr: "2620:fe::fe/128", ports: [443, 853] }\n  fail2ban:')),
  ];
  for (const config of variants) {
    const directory = writeRender(renderVps(config));
    const result = run("unshare", ["--net", "nft", "-c", "-f", join(directory, "files/etc/perimeter/nftables.nft")]);
    assert.equal(result.status, 0, result.output);
  }
  // The check can fail: a broken rule is refused (so a pass above means something).
  const broken = join(mkdtempSync(join(tmpdir(), "perimeter-nft-")), "broken.nft");
  writeFileSync(broken, readFileSync(join(writeRender(renderVps(exampleConfig("vps"))), "files/etc/perimeter/nftables.nft"), "utf8").replace("policy drop;", "policy maybe;"));
  assert.notEqual(run("unshare", ["--net", "nft", "-c", "-f", broken]).status, 0);
});

test("loaded in a private namespace, the ruleset refuses the agent's uid any non-loopback destination, and only its uid", { skip: skipUnless(["nft", "unshare", "ip", "setpriv", "python3"], true) }, () => {
  const directory = writeRender(renderVps(exampleConfig("vps")));
  const ruleset = join(directory, "files/etc/perimeter/nftables.nft");
  // A loopback port the agent is given (the egress proxy's); the others are the next test's.
  const given = agentLoopbackPorts(exampleConfig("vps"))[0];
  // A veth pair with nothing behind it gives the namespace a route out that goes nowhere: a connection to 192.0.2.2 is either
  // refused by the firewall at once (EPERM/EACCES) or left hanging (timeout) without it.
  const probe = (uid: number, address: string, port: number) =>
    `setpriv --reuid ${uid} --regid ${uid} --clear-groups python3 -c "import socket,sys
s=socket.socket(); s.settimeout(1.5)
try:
  s.connect(('${address}', ${port})); print('connected')
except socket.timeout: print('timeout')
except OSError as e: print('refused', e.errno)"`;
  const script = [
    "set -e",
    "ip link set lo up",
    "ip link add d0 type veth peer name d1 && ip addr add 192.0.2.1/24 dev d0 && ip link set d0 up && ip link set d1 up",
    `nft -f ${ruleset}`,
    `python3 -c "import socket,time; s=socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1); s.bind(('127.0.0.1', ${given})); s.listen(); time.sleep(8)" & listener=$!`,
    "sleep 0.5",
    `echo "agent-out $(${probe(10000, "192.0.2.2", 443)})"`,
    `echo "agent-loopback $(${probe(10000, "127.0.0.1", given ?? 0)})"`,
    `echo "other-out $(${probe(10001, "192.0.2.2", 443)})"`,
    "kill $listener 2>/dev/null || true",
  ].join("\n");
  const result = run("unshare", ["--net", "sh", "-c", script]);
  // EHOSTUNREACH (the reject's ICMP answer to a local socket), or EPERM/EACCES: refused at once, not timed out.
  assert.match(result.output, /^agent-out refused (1|13|113)$/m, result.output);
  assert.match(result.output, /^agent-loopback connected$/m, result.output);
  assert.match(result.output, /^other-out timeout$/m, result.output);
});

test("attack: loaded in a private namespace, the agent's uid reaches on loopback only the ports it is given — the dashboard, mcp-guard's admin listener, the audit feeds and any other local service are refused at once (IPv4 and IPv6); root still reaches them", { skip: skipUnless(["nft", "unshare", "ip", "setpriv", "python3"], true) }, () => {
  const render = renderVps(exampleConfig("vps"));
  const directory = writeRender(render);
  const runtime = yamlOf(readFileSync(join(directory, "files/etc/perimeter/perimeter.yaml"), "utf8"));
  const port = (listen: string) => Number(listen.slice(listen.lastIndexOf(":") + 1));
  const given = [runtime.egress.listen, runtime.llm.listen, runtime.mcp.listen].map(port);
  // 5432: an operator's own loopback service (a database, an MCP server declared by url that only mcp-guard may call).
  const refused = [runtime.dashboard.listen, runtime.mcp.admin.listen, runtime.egress.metrics, runtime.sandbox.listen].map(port).concat([9464, 5432]);
  const ports = [...given, ...refused];
  // One listener per port on both loopback addresses; then each uid tries each; the listeners stay up meanwhile.
  const listen = `import socket,time
socks=[]
for family,host in ((socket.AF_INET,'127.0.0.1'),(socket.AF_INET6,'::1')):
  for port in (${ports.join(",")},):
    s=socket.socket(family); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1); s.bind((host, port)); s.listen(); socks.append(s)
time.sleep(20)`;
  const probe = `import socket,sys,errno,time
for host in ('127.0.0.1','::1'):
  for port in (${ports.join(",")},):
    s=socket.socket(socket.AF_INET6 if ':' in host else socket.AF_INET); s.settimeout(1.5); started=time.monotonic()
    try:
      s.connect((host, port)); outcome='connected'
    except socket.timeout: outcome='timeout'
    except OSError as e: outcome=errno.errorcode.get(e.errno, str(e.errno))
    print(sys.argv[1], host, port, outcome, round((time.monotonic()-started)*1000))`;
  const script = [
    "set -e",
    "ip link set lo up",
    `nft -f ${join(directory, "files/etc/perimeter/nftables.nft")}`,
    `python3 -c "${listen}" & listener=$!`,
    "sleep 1",
    `setpriv --reuid ${render.manifest.agent.uid} --regid ${render.manifest.agent.uid} --clear-groups python3 -c "${probe}" agent`,
    `python3 -c "${probe}" root`,
    "kill $listener 2>/dev/null || true",
  ].join("\n");
  const result = run("unshare", ["--net", "sh", "-c", script]);
  assert.equal(result.status, 0, result.output);
  const outcomes = new Map(result.output.trim().split("\n").filter((line) => /^(agent|root) /.test(line)).map((line) => {
    const [who, host, seen, outcome, ms] = line.split(" ");
    return [`${who} ${host} ${seen}`, { outcome, ms: Number(ms) }];
  }));
  const wrong: string[] = [];
  for (const host of ["127.0.0.1", "::1"]) {
    for (const target of ports) {
      const agent = outcomes.get(`agent ${host} ${target}`);
      const root = outcomes.get(`root ${host} ${target}`);
      const want = given.includes(target) ? "connected" : "ECONNREFUSED";
      // Refused at once (a reset), so the agent fails fast instead of waiting on a dropped SYN.
      if (agent?.outcome !== want || (want !== "connected" && agent.ms > 500)) wrong.push(`agent → ${host}:${target}: ${agent?.outcome} in ${agent?.ms} ms, want ${want}`);
      if (root?.outcome !== "connected") wrong.push(`root → ${host}:${target}: ${root?.outcome} (the control must connect)`);
    }
  }
  assert.deepEqual(wrong, [], result.output);
});

test("sshd -T on a full sshd_config that includes the drop-in: keys only, no root, AllowUsers, MaxAuthTries 3 — even over a distribution drop-in that turns passwords on", { skip: skipUnless(["sshd"], true) }, () => {
  const render = renderVps(exampleConfig("vps"));
  const directory = writeRender(render);
  const root = mkdtempSync(join(tmpdir(), "perimeter-sshd-"));
  mkdirSync(join(root, "sshd_config.d"));
  cpSync(join(directory, "files/etc/ssh/sshd_config.d/00-perimeter.conf"), join(root, "sshd_config.d/00-perimeter.conf"));
  // What Ubuntu's cloud images ship, and what a careless edit of sshd_config itself would say.
  writeFileSync(join(root, "sshd_config.d/50-cloud-init.conf"), "PasswordAuthentication yes\nPermitRootLogin yes\n");
  const distribution = existsSync("/etc/ssh/sshd_config") ? readFileSync("/etc/ssh/sshd_config", "utf8") : "Include /etc/ssh/sshd_config.d/*.conf\nUsePAM yes\n";
  assert.match(distribution, /^Include \/etc\/ssh\/sshd_config\.d\/\*\.conf$/m, "the distribution's sshd_config includes sshd_config.d");
  writeFileSync(join(root, "sshd_config"), `${distribution.replace("Include /etc/ssh/sshd_config.d/*.conf", `Include ${root}/sshd_config.d/*.conf`)}\nPasswordAuthentication yes\nMaxAuthTries 10\n`);
  mkdirSync("/run/sshd", { recursive: true });
  const result = run("sshd", ["-T", "-f", join(root, "sshd_config"), "-C", "user=admin,host=admin.example,addr=203.0.113.7"]);
  assert.equal(result.status, 0, result.output);
  const effective = new Map(result.output.split("\n").map((line) => [line.slice(0, line.indexOf(" ")), line.slice(line.indexOf(" ") + 1)]));
  assert.equal(effective.get("permitrootlogin"), "no");
  assert.equal(effective.get("passwordauthentication"), "no");
  assert.equal(effective.get("kbdinteractiveauthentication"), "no");
  assert.equal(effective.get("pubkeyauthentication"), "yes");
  assert.equal(effective.get("authenticationmethods"), "publickey");
  assert.equal(effective.get("allowusers"), "admin");
  assert.equal(effective.get("maxauthtries"), "3");
  assert.equal(effective.get("x11forwarding"), "no");
  // Without the drop-in the same files let passwords and root in: the drop-in is what decides.
  cpSync(join(root, "sshd_config.d/50-cloud-init.conf"), join(root, "sshd_config.d/00-perimeter.conf"));
  const without = run("sshd", ["-T", "-f", join(root, "sshd_config"), "-C", "user=admin,host=admin.example,addr=203.0.113.7"]).output;
  assert.match(without, /^passwordauthentication yes$/m);
});

test("fail2ban's own configuration test accepts the sshd jail with the systemd backend (and refuses a broken one)", { skip: skipUnless(["fail2ban-client"]) || (existsSync("/etc/fail2ban/jail.conf") ? false : "needs /etc/fail2ban (apt install fail2ban)") }, () => {
  const directory = writeRender(renderVps(exampleConfig("vps")));
  const copy = mkdtempSync(join(tmpdir(), "perimeter-fail2ban-"));
  cpSync("/etc/fail2ban", copy, { recursive: true });
  cpSync(join(directory, "files/etc/fail2ban/jail.d/perimeter.local"), join(copy, "jail.d/perimeter.local"));
  const tested = run("fail2ban-client", ["-c", copy, "-t"]);
  assert.equal(tested.status, 0, tested.output);
  const dump = run("fail2ban-client", ["-c", copy, "-d"]).output;
  assert.match(dump, /\['add', 'sshd', 'systemd'\]/);
  assert.match(dump, /\['set', 'sshd', 'maxretry', 5\]/);
  writeFileSync(join(copy, "jail.d/perimeter.local"), readFileSync(join(copy, "jail.d/perimeter.local"), "utf8").replace("[sshd]", "[sshd]\nfilter = perimeter-no-such-filter"));
  assert.notEqual(run("fail2ban-client", ["-c", copy, "-t"]).status, 0);
});
