// Named workspaces for the MCP server: files that outlive one `run` for a bounded time and size. They live in the
// runner's memory, never on the host's disk: a workspace is handed to each run as input files (into a fresh tmpfs)
// and the run's whole workspace comes back as a tar stream that replaces it. No host path is ever derived from a
// workspace entry, so there is nothing for a symlink or hard link inside a sandbox to point at.
import { workspacePathProblem } from "./task.ts";

export interface WorkspaceFile {
  readonly content: Buffer;
  readonly mode: number;
}

export interface WorkspaceLimits {
  /** Idle time after which a workspace is dropped. */
  readonly ttlMs: number;
  /** Bytes of one workspace. */
  readonly maxBytes: number;
  /** Files of one workspace. */
  readonly maxFiles: number;
  /** Workspaces one caller may hold. */
  readonly maxPerCaller: number;
  /** Bytes of all workspaces together (they are held in memory). */
  readonly totalBytes: number;
}

interface Workspace {
  files: Map<string, WorkspaceFile>;
  bytes: number;
  expiresAt: number;
}

export type WorkspaceChange = { ok: true } | { ok: false; reason: string };

const NAME = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/;

export function workspaceNameProblem(name: string): string | undefined {
  return NAME.test(name) ? undefined : `workspace name "${name.slice(0, 70)}" must be 1-64 letters, digits, '.', '_' or '-', starting with a letter or digit`;
}

export interface WorkspaceStore {
  /** Files of a workspace (empty when it does not exist). */
  snapshot(caller: string, name: string): Map<string, WorkspaceFile>;
  exists(caller: string, name: string): boolean;
  /** Replaces a workspace's files (creating it), within the bounds. */
  replace(caller: string, name: string, files: ReadonlyMap<string, WorkspaceFile>): WorkspaceChange;
  write(caller: string, name: string, path: string, file: WorkspaceFile): WorkspaceChange;
  read(caller: string, name: string, path: string): WorkspaceFile | undefined;
  list(caller: string, name: string): { path: string; size: number; mode: number }[];
  /** Runs `work` after every earlier operation on the same workspace has finished. */
  exclusive<T>(caller: string, name: string, work: () => Promise<T>): Promise<T>;
  /** Drops expired workspaces; returns how many. */
  sweep(): number;
  stats(): { workspaces: number; bytes: number };
}

export function createWorkspaceStore(limits: WorkspaceLimits, now: () => number = Date.now): WorkspaceStore {
  // Keyed by caller and name: one caller cannot see or change another's workspace, whatever names they pick.
  const workspaces = new Map<string, Workspace>();
  const locks = new Map<string, Promise<unknown>>();
  const key = (caller: string, name: string) => `${caller}\u0000${name}`;
  let totalBytes = 0;

  const live = (caller: string, name: string): Workspace | undefined => {
    const found = workspaces.get(key(caller, name));
    if (found === undefined) return undefined;
    if (found.expiresAt <= now()) {
      workspaces.delete(key(caller, name));
      totalBytes -= found.bytes;
      return undefined;
    }
    found.expiresAt = now() + limits.ttlMs;
    return found;
  };

  const callerCount = (caller: string) => [...workspaces.keys()].filter((entry) => entry.startsWith(`${caller}\u0000`)).length;

  function check(caller: string, name: string, files: ReadonlyMap<string, WorkspaceFile>, existing: Workspace | undefined): WorkspaceChange {
    const nameProblem = workspaceNameProblem(name);
    if (nameProblem !== undefined) return { ok: false, reason: nameProblem };
    let bytes = 0;
    for (const [path, file] of files) {
      const problem = workspacePathProblem(path);
      if (problem !== undefined) return { ok: false, reason: problem };
      bytes += file.content.length;
    }
    if (files.size > limits.maxFiles) return { ok: false, reason: `workspace "${name}" would hold ${files.size} files; the limit is ${limits.maxFiles}` };
    if (bytes > limits.maxBytes) return { ok: false, reason: `workspace "${name}" would hold ${bytes} bytes; the limit is ${limits.maxBytes}` };
    if (totalBytes - (existing?.bytes ?? 0) + bytes > limits.totalBytes) return { ok: false, reason: `the runner holds too much workspace data (${limits.totalBytes} bytes across workspaces); let idle workspaces expire or use smaller ones` };
    if (existing === undefined && callerCount(caller) >= limits.maxPerCaller) return { ok: false, reason: `you already hold ${limits.maxPerCaller} workspaces; let one expire (idle ${Math.round(limits.ttlMs / 1000)} s) first` };
    return { ok: true };
  }

  function store(caller: string, name: string, files: Map<string, WorkspaceFile>, existing: Workspace | undefined): void {
    let bytes = 0;
    for (const file of files.values()) bytes += file.content.length;
    totalBytes += bytes - (existing?.bytes ?? 0);
    if (existing !== undefined) {
      existing.files = files;
      existing.bytes = bytes;
      existing.expiresAt = now() + limits.ttlMs;
    } else {
      workspaces.set(key(caller, name), { files, bytes, expiresAt: now() + limits.ttlMs });
    }
  }

  return {
    snapshot(caller, name) {
      return new Map(live(caller, name)?.files ?? []);
    },
    exists(caller, name) {
      return live(caller, name) !== undefined;
    },
    replace(caller, name, files) {
      const existing = live(caller, name);
      const verdict = check(caller, name, files, existing);
      if (!verdict.ok) return verdict;
      store(caller, name, new Map(files), existing);
      return { ok: true };
    },
    write(caller, name, path, file) {
      const existing = live(caller, name);
      const next = new Map(existing?.files ?? []);
      const problem = workspacePathProblem(path);
      if (problem !== undefined || path === ".") return { ok: false, reason: problem ?? `"." is the workspace itself, not a file` };
      for (const other of next.keys()) {
        if (other.startsWith(`${path}/`)) return { ok: false, reason: `"${path}" is a directory in workspace "${name}"` };
        if (path.startsWith(`${other}/`)) return { ok: false, reason: `"${other}" is a file in workspace "${name}", so "${path}" cannot be made below it` };
      }
      next.set(path, file);
      const verdict = check(caller, name, next, existing);
      if (!verdict.ok) return verdict;
      store(caller, name, next, existing);
      return { ok: true };
    },
    read(caller, name, path) {
      return live(caller, name)?.files.get(path);
    },
    list(caller, name) {
      return [...(live(caller, name)?.files ?? new Map<string, WorkspaceFile>()).entries()].map(([path, file]) => ({ path, size: file.content.length, mode: file.mode })).sort((a, b) => a.path.localeCompare(b.path));
    },
    async exclusive(caller, name, work) {
      const lockKey = key(caller, name);
      const previous = locks.get(lockKey) ?? Promise.resolve();
      const current = previous.then(work, work);
      const settled = current.catch(() => undefined);
      locks.set(lockKey, settled);
      try {
        return await current;
      } finally {
        if (locks.get(lockKey) === settled) locks.delete(lockKey);
      }
    },
    sweep() {
      let dropped = 0;
      for (const [entry, workspace] of workspaces) {
        if (workspace.expiresAt <= now()) {
          workspaces.delete(entry);
          totalBytes -= workspace.bytes;
          dropped += 1;
        }
      }
      return dropped;
    },
    stats: () => ({ workspaces: workspaces.size, bytes: totalBytes }),
  };
}
