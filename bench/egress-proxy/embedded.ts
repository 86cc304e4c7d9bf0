// The egress proxy embedded the way the sandbox runner embeds it, for the benchmark: audit records go to a buffered
// JSON-lines file (what squid does with its access log), so that the proxy itself can be compared with squid apart
// from the cost of the hash-chained SQLite audit log that `perimeter serve egress-proxy` writes.
//   node bench/egress-proxy/embedded.ts PORT ORIGIN_IP PORTS(comma-separated) LOG_FILE|none
// With `none` the records are dropped: what the proxy engine costs with no audit at all (a measurement, never a mode
// the product offers).
import { createWriteStream } from "node:fs";
import { staticResolver } from "../../src/net/index.ts";
import { createEgressProxy } from "../../src/egress-proxy/index.ts";

const [port, originIp, ports, logFile] = process.argv.slice(2) as [string, string, string, string];
const log = logFile === "none" ? undefined : createWriteStream(logFile, { flags: "a" });
const proxy = createEgressProxy(
  {
    allow: [{ host: "bench.test", ports: ports.split(",").map(Number), allowCidr: [`${originIp}/32`] }],
    unknownClients: "global",
    limits: { requestsPerSecondPerClient: 1_000_000, tunnelsPerClient: 4000, tunnelsTotal: 8000 },
  },
  {
    resolver: staticResolver({ "bench.test": [originIp] }),
    audit: {
      append(event) {
        log?.write(`${JSON.stringify(event)}\n`);
      },
    },
  },
);
await proxy.listen(`127.0.0.1:${port}`);
console.log("listening");
process.on("SIGTERM", () => {
  proxy.close().then(() => (log === undefined ? process.exit(0) : log.end(() => process.exit(0))), () => process.exit(1));
});
