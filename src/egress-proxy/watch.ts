// Watches the config file so that saving it reloads the policy. The directory is watched, not the file: editors and
// `kubectl` ConfigMap updates replace the file (rename or symlink swap), which ends a watch on the old inode.
import { watch } from "node:fs";
import type { FSWatcher } from "node:fs";
import { readFileSync } from "node:fs";
import { basename, dirname } from "node:path";
import { createHash } from "node:crypto";

export interface FileWatcher {
  close(): void;
}

function digest(path: string): string | undefined {
  try {
    return createHash("sha256").update(readFileSync(path)).digest("hex");
  } catch {
    return undefined;
  }
}

/**
 * Calls `onChange` once the file has been quiet for `debounceMs` after a change, and only when its content differs
 * from what was last seen (a touch or a burst of writes is one reload, not many).
 */
export function watchConfigFile(path: string, onChange: () => void, options: { debounceMs?: number } = {}): FileWatcher {
  const debounceMs = options.debounceMs ?? 250;
  const name = basename(path);
  let last = digest(path);
  let timer: NodeJS.Timeout | undefined;
  const fire = () => {
    timer = undefined;
    const current = digest(path);
    if (current === last) return;
    last = current;
    onChange();
  };
  const watcher: FSWatcher = watch(dirname(path), { persistent: false }, (_event, changed) => {
    // Kubernetes ConfigMaps swap a `..data` symlink; the file name itself may not be reported.
    if (changed !== null && changed !== name && !changed.startsWith("..")) return;
    clearTimeout(timer);
    timer = setTimeout(fire, debounceMs);
  });
  watcher.on("error", () => {});
  return {
    close() {
      clearTimeout(timer);
      watcher.close();
    },
  };
}
