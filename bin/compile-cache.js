// Where the `perimeter` command keeps Node's compile cache: a directory only its user can write. The cache holds code
// that runs (V8 code caches and the JavaScript stripped from each TypeScript file, keyed by the source's hash, checked
// for corruption but not for authorship): in a directory another user can write — Node's default,
// os.tmpdir()/node-compile-cache, is one on a shared /tmp — whoever writes it chooses what perimeter runs. So the
// cache lives beside the code it caches, in node_modules/.cache/perimeter of this installation, and only when no
// other user can change any directory on its path: every directory from / down is owned by this user or root and
// writable by no one else (or sticky, like /tmp, whose entries on the path are then this user's or root's), the
// cache's own directories are this user's, created one level at a time and never through a symbolic link. Node opens
// the path again for every module it loads later; with the whole path closed to others, nobody can swap a directory
// in between. When that cannot be had (another user's installation, a read-only file system in a container, a
// shared parent) perimeter runs without a cache, only slower.
import { lstatSync, mkdirSync, realpathSync } from "node:fs";
import { basename, dirname, join } from "node:path";

const CACHE_ROOT = join(import.meta.dirname, "..", "node_modules", ".cache");

/** A directory on the path: owned by `uid` or root, and writable by nobody else unless sticky. */
function closedAncestor(path, uid) {
  const stat = lstatSync(path);
  if (!stat.isDirectory()) return false;
  if (uid !== undefined && stat.uid !== uid && stat.uid !== 0) return false;
  return (stat.mode & 0o022) === 0 || (stat.mode & 0o1000) !== 0;
}

/** One of the cache's own directories: a real directory of `uid`, writable by nobody else. */
function ownDirectory(path, uid) {
  const stat = lstatSync(path);
  return stat.isDirectory() && (uid === undefined || stat.uid === uid) && (stat.mode & 0o022) === 0;
}

/** `path` made absolute through symbolic links above it, with its missing tail: [real existing part, missing names]. */
function existingPart(path) {
  const missing = [];
  let current = path;
  for (let depth = 0; depth < 64; depth += 1) {
    try {
      return [realpathSync(current), missing];
    } catch {
      missing.unshift(basename(current));
      const parent = dirname(current);
      if (parent === current) return undefined;
      current = parent;
    }
  }
  return undefined;
}

/** The directory to pass to module.enableCompileCache, or undefined to run without one. */
export function privateCompileCacheDirectory(name, root = CACHE_ROOT) {
  const uid = typeof process.getuid === "function" ? process.getuid() : undefined;
  try {
    const found = existingPart(root);
    if (found === undefined) return undefined;
    const [real, missing] = found;
    // Every directory from / to the existing part; the part itself is the cache root (or above it) from here on.
    const components = real.split("/").filter((part) => part !== "");
    for (let index = 0; index <= components.length; index += 1) {
      if (!closedAncestor(`/${components.slice(0, index).join("/")}`, uid)) return undefined;
    }
    let current = real;
    for (const part of [...missing, "perimeter", name]) {
      current = join(current, part);
      try {
        mkdirSync(current, { mode: 0o700 });
      } catch (error) {
        if (error.code !== "EEXIST") return undefined;
      }
      if (!closedAncestor(current, uid)) return undefined;
    }
    // The cache's own levels (root, perimeter, name) belong to this user alone.
    const directory = current;
    for (const path of [dirname(dirname(directory)), dirname(directory), directory]) if (!ownDirectory(path, uid)) return undefined;
    return directory;
  } catch {
    return undefined;
  }
}
