// The egress proxy behind network mode "proxy" for bubblewrap sandboxes: an in-process src/egress-proxy listening
// on a Unix socket only the sandbox's host uid can connect to. Each task is added as a client with its own token and
// allowlist (and removed when it ends); a request without a valid token is refused (unknownClients: deny). The
// proxy's SSRF rules apply to every task: private, loopback and metadata addresses stay unreachable unless a rule
// names them with allowCidr.
import { chmodSync, chownSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createEgressProxy } from "../egress-proxy/index.ts";
import type { AuditSink } from "../egress-proxy/index.ts";
import type { Resolver } from "../net/index.ts";
import type { Logger } from "../shared/index.ts";
import type { EgressProxyAttachment } from "./bubblewrap.ts";
import { SANDBOX_UID } from "./bubblewrap.ts";

export interface SandboxEgressOptions {
  /** Name resolution (tests map names to loopback). */
  readonly resolver?: Resolver;
  readonly audit?: AuditSink;
  readonly logger?: Logger;
  /** Host uid/gid of the sandboxes when the runner is root (they need to connect to the socket). */
  readonly hostUid?: number;
  readonly hostGid?: number;
  /** Parent directory for the socket. */
  readonly directory?: string;
}

export interface SandboxEgress extends EgressProxyAttachment {
  close(): Promise<void>;
}

export async function createSandboxEgress(options: SandboxEgressOptions = {}): Promise<SandboxEgress> {
  const isRoot = process.getuid?.() === 0;
  const parent = options.directory ?? (isRoot ? "/run" : tmpdir());
  const directory = mkdtempSync(join(parent, "perimeter-egress-"));
  chmodSync(directory, 0o755);
  const socketPath = join(directory, "egress.sock");
  const proxy = createEgressProxy(
    { allow: [], unknownClients: "deny" },
    { ...(options.resolver !== undefined ? { resolver: options.resolver } : {}), ...(options.audit !== undefined ? { audit: options.audit } : {}), ...(options.logger !== undefined ? { logger: options.logger } : {}) },
  );
  await proxy.listen({ path: socketPath });
  if (isRoot) {
    // Only the sandboxes' uid (and root) may connect; a token is still needed for anything to be allowed.
    chownSync(socketPath, options.hostUid ?? SANDBOX_UID, options.hostGid ?? SANDBOX_UID);
    chmodSync(socketPath, 0o600);
  }
  return {
    socketPath,
    addClient: (client) => proxy.addClient({ name: client.name, token: client.token, allow: client.allow }),
    async close() {
      await proxy.close();
      rmSync(directory, { recursive: true, force: true });
    },
  };
}
