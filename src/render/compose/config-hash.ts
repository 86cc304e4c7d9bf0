// The Compose side of config-hash: `docker compose up -d` recreates a container when its service definition
// changes, but not when a file it bind-mounts changes. Each service therefore carries a label with the hash of the
// rendered files it mounts, so an edit recreates exactly the services that read it (and a restart of the others is
// never needed). Env files are the operator's and are not hashed: a rotated value needs --force-recreate (RUNBOOK.md).
import { createHash } from "node:crypto";

export const CONFIG_HASH_LABEL = "perimeter.dev/config-hash";

/** The rendered files under each `./path:...` bind mount of a service (a directory mount takes every file in it). */
export function mountedFiles(volumes: readonly string[], files: ReadonlyArray<{ path: string; content: string }>): Array<{ path: string; content: string }> {
  const mounted = new Map<string, string>();
  for (const volume of volumes) {
    if (!volume.startsWith("./")) continue;
    const source = volume.slice(2).split(":")[0] ?? "";
    const inside = files.filter((file) => file.path === source || file.path.startsWith(`${source}/`));
    // A mount of something render does not write (the operator's kubeconfig): only its path is known.
    if (inside.length === 0) mounted.set(source, "");
    for (const file of inside) mounted.set(file.path, file.content);
  }
  return [...mounted].sort(([a], [b]) => (a < b ? -1 : 1)).map(([path, content]) => ({ path, content }));
}

/** Adds the label to every service that mounts a rendered file. */
export function labelConfigHashes(services: Record<string, Record<string, unknown>>, files: ReadonlyArray<{ path: string; content: string }>): void {
  for (const service of Object.values(services)) {
    const volumes = Array.isArray(service.volumes) ? (service.volumes as unknown[]).filter((volume): volume is string => typeof volume === "string") : [];
    const mounted = mountedFiles(volumes, files);
    if (mounted.length === 0) continue;
    const hash = createHash("sha256").update(JSON.stringify(mounted)).digest("hex");
    service.labels = { ...((service.labels as Record<string, string> | undefined) ?? {}), [CONFIG_HASH_LABEL]: hash };
  }
}
