// Per-task cgroups for memory, pids and cpu, on cgroup v1 or v2, whichever the host mounts for each controller.
// rlimits bound one process; a cgroup bounds the whole task (every process it forks, the tmpfs pages it writes),
// tells us afterwards whether the kernel's OOM killer struck, and lets us kill every member at once.
//
// Discovery reads /proc/self/mountinfo and /proc/self/cgroup (pure parsers below, tested on captured text). Where
// nothing is mounted (e.g. inside `ip netns exec`, which remounts /sys) and we are root, the controllers are mounted
// privately under the runtime directory: that exposes the same hierarchy the host already has, nothing more.
import { existsSync, mkdirSync, readFileSync, rmdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { spawnSync } from "node:child_process";

export type ControllerName = "memory" | "pids" | "cpu";
const CONTROLLERS: readonly ControllerName[] = ["memory", "pids", "cpu"];

export interface CgroupMount {
  readonly version: 1 | 2;
  readonly mountPoint: string;
  /** The cgroup path this mount's root stands for ("/" unless the mount is of a sub-tree). */
  readonly root: string;
  /** v1: the controllers co-mounted here; v2: every controller the root offers is decided later. */
  readonly controllers: readonly string[];
}

/** Parses /proc/self/mountinfo into the cgroup mounts it lists. */
export function parseCgroupMounts(mountinfo: string): CgroupMount[] {
  const mounts: CgroupMount[] = [];
  for (const line of mountinfo.split("\n")) {
    const separator = line.indexOf(" - ");
    if (separator < 0) continue;
    const before = line.slice(0, separator).split(" ");
    const after = line.slice(separator + 3).split(" ");
    const fsType = after[0];
    const root = unescapeMountField(before[3] ?? "/");
    const mountPoint = unescapeMountField(before[4] ?? "");
    if (fsType === "cgroup2") {
      mounts.push({ version: 2, mountPoint, root, controllers: [] });
    } else if (fsType === "cgroup") {
      const options = (after[2] ?? "").split(",");
      mounts.push({ version: 1, mountPoint, root, controllers: options.filter((option) => CONTROLLERS.includes(option as ControllerName) || option === "cpuacct") });
    }
  }
  return mounts;
}

function unescapeMountField(field: string): string {
  return field.replace(/\\([0-7]{3})/g, (_match, octal: string) => String.fromCharCode(parseInt(octal, 8)));
}

/** Parses /proc/self/cgroup: v1 controller → path, and the v2 path under the key "". */
export function parseProcessCgroups(text: string): Map<string, string> {
  const paths = new Map<string, string>();
  for (const line of text.split("\n")) {
    const match = /^\d+:([^:]*):(.*)$/.exec(line);
    if (match === null) continue;
    const controllers = match[1] as string;
    const path = match[2] as string;
    if (controllers === "") paths.set("", path);
    for (const controller of controllers.split(",")) if (controller !== "") paths.set(controller, path);
  }
  return paths;
}

/** Where one controller of a task's cgroup lives. */
export interface ControllerPlace {
  readonly controller: ControllerName;
  readonly version: 1 | 2;
  /** Directory that holds the per-task cgroups ("…/perimeter-sandbox"). */
  readonly parent: string;
}

export interface CgroupSupport {
  readonly places: readonly ControllerPlace[];
  /** Why a controller is not used, per controller. */
  readonly unavailable: Readonly<Record<string, string>>;
}

const PARENT_NAME = "perimeter-sandbox";

function relativeTo(root: string, path: string): string {
  if (root === "/" || root === "") return path;
  return path.startsWith(root) ? path.slice(root.length) || "/" : path;
}

function readText(path: string): string | undefined {
  try {
    return readFileSync(path, "utf8");
  } catch {
    return undefined;
  }
}

export interface DiscoverOptions {
  /** Mount the controllers privately when none are visible and we are root. */
  readonly mountIfMissing: boolean;
  /** Where to mount them. */
  readonly runtimeDirectory: string;
  /** v2 only: a delegated cgroup to create task cgroups under, instead of our own. */
  readonly parent?: string;
}

function mountMissing(runtimeDirectory: string): void {
  // A v1 mount of a controller already attached to a hierarchy just shows that hierarchy again; if the controller is
  // bound to v2 the mount fails and we try cgroup2 instead.
  for (const controller of CONTROLLERS) {
    const target = join(runtimeDirectory, "cgroup", controller);
    mkdirSync(target, { recursive: true });
    spawnSync("mount", ["-t", "cgroup", "-o", controller, "cgroup", target], { stdio: "ignore", timeout: 5000 });
  }
  const unified = join(runtimeDirectory, "cgroup", "unified");
  mkdirSync(unified, { recursive: true });
  spawnSync("mount", ["-t", "cgroup2", "cgroup2", unified], { stdio: "ignore", timeout: 5000 });
}

/** Finds (and prepares) where task cgroups can be created. Never throws: unusable controllers are listed with the reason. */
export function discoverCgroups(options: DiscoverOptions): CgroupSupport {
  let mounts = parseCgroupMounts(readText("/proc/self/mountinfo") ?? "");
  const hasController = (name: string) => mounts.some((mount) => mount.version === 1 && mount.controllers.includes(name));
  const needsMount = !CONTROLLERS.some(hasController) && !mounts.some((mount) => mount.version === 2 && readText(join(mount.mountPoint, "cgroup.controllers"))?.includes("memory"));
  if (needsMount && options.mountIfMissing && process.getuid?.() === 0) {
    mountMissing(options.runtimeDirectory);
    mounts = parseCgroupMounts(readText("/proc/self/mountinfo") ?? "");
  }
  const own = parseProcessCgroups(readText("/proc/self/cgroup") ?? "");
  const places: ControllerPlace[] = [];
  const unavailable: Record<string, string> = {};

  for (const controller of CONTROLLERS) {
    const v1 = mounts.find((mount) => mount.version === 1 && mount.controllers.includes(controller));
    if (v1 !== undefined) {
      const ownPath = own.get(controller) ?? "/";
      const parent = join(v1.mountPoint, relativeTo(v1.root, ownPath), PARENT_NAME);
      const problem = prepareParent(parent, 1, controller);
      if (problem === undefined) places.push({ controller, version: 1, parent });
      else unavailable[controller] = problem;
      continue;
    }
    const v2 = mounts.find((mount) => mount.version === 2);
    if (v2 === undefined) {
      unavailable[controller] = "no cgroup hierarchy offers it on this host";
      continue;
    }
    const base = options.parent ?? join(v2.mountPoint, relativeTo(v2.root, own.get("") ?? "/"));
    const offered = (readText(join(base, "cgroup.controllers")) ?? "").split(/\s+/);
    if (!offered.includes(controller)) {
      unavailable[controller] = `cgroup v2 at ${base} does not offer the ${controller} controller (it may be bound to a v1 hierarchy, or not delegated)`;
      continue;
    }
    const parent = join(base, PARENT_NAME);
    const problem = enableV2(base, controller) ?? prepareParent(parent, 2, controller);
    if (problem === undefined) places.push({ controller, version: 2, parent });
    else unavailable[controller] = problem;
  }
  return { places, unavailable };
}

function enableV2(directory: string, controller: ControllerName): string | undefined {
  try {
    writeFileSync(join(directory, "cgroup.subtree_control"), `+${controller}`);
    return undefined;
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code === "EBUSY") {
      // cgroup v2's "no internal processes" rule: a cgroup with members cannot hand controllers to children.
      return `cgroup v2: cannot enable ${controller} below ${directory} because processes live in it; run perimeter in a delegated cgroup whose own processes sit in a leaf (e.g. systemd Delegate=yes), or pass an empty delegated cgroup as the parent`;
    }
    return `cgroup v2: cannot enable ${controller} in ${directory} (${code ?? (error as Error).message}); it needs write access (root or a delegated cgroup)`;
  }
}

function prepareParent(parent: string, version: 1 | 2, controller: ControllerName): string | undefined {
  try {
    mkdirSync(parent, { recursive: true });
    if (version === 2) {
      try {
        writeFileSync(join(parent, "cgroup.subtree_control"), `+${controller}`);
      } catch (error) {
        return `cgroup v2: cannot enable ${controller} in ${parent} (${(error as NodeJS.ErrnoException).code})`;
      }
    }
    return undefined;
  } catch (error) {
    return `cannot create ${parent} (${(error as NodeJS.ErrnoException).code ?? (error as Error).message}): the ${controller} cgroup needs root or a delegated cgroup`;
  }
}

export interface TaskCgroupLimits {
  readonly memoryBytes: number;
  readonly pids: number;
  readonly cpu: number;
}

export interface TaskCgroupStats {
  readonly oomKills: number;
  readonly memoryLimitHits: number;
  readonly peakMemoryBytes: number | undefined;
  readonly pidsLimitHits: number;
}

export interface TaskCgroup {
  readonly version: 1 | 2 | "mixed";
  readonly controllers: readonly ControllerName[];
  /** The cgroup.procs files the runner writes the task's first pid into (one per distinct directory). */
  readonly procsFiles: readonly string[];
  /** Pids currently in the task's cgroups. */
  members(): number[];
  stats(): TaskCgroupStats;
  /** SIGKILL every member (cgroup.kill on v2). */
  killAll(): void;
  /** Kills what is left, waits (bounded) until empty and removes the directories. Returns false if it could not. */
  remove(): Promise<boolean>;
}

function readCounter(text: string | undefined, key: string): number {
  const match = text === undefined ? null : new RegExp(`^${key} (\\d+)$`, "m").exec(text);
  return match === null ? 0 : Number(match[1]);
}

const sleep = (milliseconds: number) => new Promise((resolve) => setTimeout(resolve, milliseconds));

/** Creates the task's cgroup in every available controller and writes its limits. */
export function createTaskCgroup(support: CgroupSupport, name: string, limits: TaskCgroupLimits): TaskCgroup | null {
  if (support.places.length === 0) return null;
  const directories = new Map<string, { version: 1 | 2; controllers: ControllerName[] }>();
  const created: string[] = [];
  try {
    for (const place of support.places) {
      const directory = join(place.parent, name);
      let entry = directories.get(directory);
      if (entry === undefined) {
        mkdirSync(directory);
        created.push(directory);
        entry = { version: place.version, controllers: [] };
        directories.set(directory, entry);
      }
      entry.controllers.push(place.controller);
      writeLimits(directory, place.version, place.controller, limits);
    }
  } catch (error) {
    for (const directory of created) rmdirQuiet(directory);
    throw error;
  }

  const versions = new Set([...directories.values()].map((entry) => entry.version));
  const version: 1 | 2 | "mixed" = versions.size > 1 ? "mixed" : ([...versions][0] as 1 | 2);
  const controllerDirectory = (controller: ControllerName) => [...directories.entries()].find(([, entry]) => entry.controllers.includes(controller));
  const procsFiles = [...directories.keys()].map((directory) => join(directory, "cgroup.procs"));

  const members = (): number[] => {
    const pids = new Set<number>();
    for (const file of procsFiles) {
      for (const line of (readText(file) ?? "").split("\n")) if (line !== "") pids.add(Number(line));
    }
    return [...pids];
  };

  const killAll = () => {
    for (const [directory, entry] of directories) {
      if (entry.version === 2) {
        try {
          writeFileSync(join(directory, "cgroup.kill"), "1");
          continue;
        } catch {
          // cgroup.kill needs Linux 5.14; fall through to signalling each member.
        }
      }
    }
    for (const pid of members()) {
      try {
        process.kill(pid, "SIGKILL");
      } catch {
        // Already gone.
      }
    }
  };

  return {
    version,
    controllers: [...directories.values()].flatMap((entry) => entry.controllers),
    procsFiles,
    members,
    killAll,
    stats() {
      const memory = controllerDirectory("memory");
      const pids = controllerDirectory("pids");
      let oomKills = 0;
      let memoryLimitHits = 0;
      let peakMemoryBytes: number | undefined;
      if (memory !== undefined) {
        const [directory, entry] = memory;
        if (entry.version === 1) {
          oomKills = readCounter(readText(join(directory, "memory.oom_control")), "oom_kill");
          memoryLimitHits = Number(readText(join(directory, "memory.failcnt")) ?? 0);
          const peak = Number(readText(join(directory, "memory.max_usage_in_bytes")) ?? NaN);
          peakMemoryBytes = Number.isFinite(peak) ? peak : undefined;
        } else {
          const events = readText(join(directory, "memory.events"));
          oomKills = readCounter(events, "oom_kill");
          memoryLimitHits = readCounter(events, "max");
          const peak = Number(readText(join(directory, "memory.peak")) ?? NaN);
          peakMemoryBytes = Number.isFinite(peak) ? peak : undefined;
        }
      }
      const pidsLimitHits = pids === undefined ? 0 : readCounter(readText(join(pids[0], "pids.events")), "max");
      return { oomKills, memoryLimitHits, peakMemoryBytes, pidsLimitHits };
    },
    async remove() {
      // The pid namespace is gone when the monitor exits, but the kernel may list dying members for a moment.
      // Bounded: at most ~2 s of kill-and-poll before reporting failure.
      const deadline = Date.now() + 2000;
      for (let attempt = 0; Date.now() < deadline; attempt++) {
        if (members().length > 0) {
          killAll();
        } else {
          let left = 0;
          for (const directory of directories.keys()) {
            if (existsSync(directory) && !rmdirQuiet(directory)) left += 1;
          }
          if (left === 0) return true;
        }
        await sleep(attempt < 10 ? 1 : 20);
      }
      return false;
    },
  };
}

function rmdirQuiet(directory: string): boolean {
  try {
    rmdirSync(directory);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === "ENOENT";
  }
}

function writeLimits(directory: string, version: 1 | 2, controller: ControllerName, limits: TaskCgroupLimits): void {
  const write = (file: string, value: string) => writeFileSync(join(directory, file), value);
  if (controller === "memory") {
    if (version === 1) {
      write("memory.limit_in_bytes", String(limits.memoryBytes));
      // Without swap accounting the task could page out past its limit; where memsw exists, cap it at the same value.
      if (existsSync(join(directory, "memory.memsw.limit_in_bytes"))) write("memory.memsw.limit_in_bytes", String(limits.memoryBytes));
    } else {
      write("memory.max", String(limits.memoryBytes));
      if (existsSync(join(directory, "memory.swap.max"))) write("memory.swap.max", "0");
    }
  } else if (controller === "pids") {
    write("pids.max", String(limits.pids));
  } else {
    const period = 100000;
    const quota = Math.max(1000, Math.round(limits.cpu * period));
    if (version === 1) {
      write("cpu.cfs_period_us", String(period));
      write("cpu.cfs_quota_us", String(quota));
    } else {
      write("cpu.max", `${quota} ${period}`);
    }
  }
}
