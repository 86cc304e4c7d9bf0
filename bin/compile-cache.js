// Where the `perimeter` command keeps Node's compile cache: a directory only its user can write. The cache holds code
// that runs (V8 code caches and the JavaScript stripped from each TypeScript file, keyed by the source's hash, checked
// for corruption but not for authorship): in a directory another user can write — Node's default,
// os.tmpdir()/node-compile-cache, is one on a shared /tmp — whoever writes it chooses what perimeter runs. So the
// cache lives beside the code it caches, in node_modules/.cache/perimeter of this installation, every component of it
// owned by this user and writable by nobody else, never through a symbolic link: whoever could write there could
// change the code itself. When that cannot be had (another user's installation, a read-only file system in a
// container) perimeter runs without a cache, only slower.
import { lstatSync, mkdirSync } from "node:fs";
import { join } from "node:path";

const CACHE_ROOT = join(import.meta.dirname, "..", "node_modules", ".cache");

/** Whether `path` is a real directory of this user that no one else can write. */
function privateDirectory(path, uid) {
  const stat = lstatSync(path);
  return stat.isDirectory() && !stat.isSymbolicLink() && (uid === undefined || stat.uid === uid) && (stat.mode & 0o022) === 0;
}

/** The directory to pass to module.enableCompileCache, or undefined to run without one. */
export function privateCompileCacheDirectory(name, root = CACHE_ROOT) {
  const uid = typeof process.getuid === "function" ? process.getuid() : undefined;
  const perimeter = join(root, "perimeter");
  const directory = join(perimeter, name);
  try {
    mkdirSync(directory, { recursive: true, mode: 0o700 });
    for (const path of [root, perimeter, directory]) if (!privateDirectory(path, uid)) return undefined;
    return directory;
  } catch {
    return undefined;
  }
}
