// Writing a render: the whole directory appears at once or not at all. Files go to a temporary directory beside
// the destination (same filesystem, so the final rename is atomic) and are renamed into place; a failure removes
// the temporary directory, so an operator never applies half a perimeter.
import { chmodSync, copyFileSync, existsSync, lstatSync, readlinkSync, symlinkSync, mkdirSync, mkdtempSync, readdirSync, renameSync, rmSync, statSync, writeFileSync } from "node:fs";
import { basename, dirname, join, resolve } from "node:path";

export interface OutputFile {
  readonly path: string;
  readonly content: string;
  /** File mode; scripts are 0755, everything else 0644. */
  readonly mode?: number;
}

export type WriteResult = { ok: true; directory: string } | { ok: false; reason: string };

/**
 * Files the operator writes inside a render and the render never produces: the filled-in env files of Compose
 * (`env/NAME.env`, copied from `env/NAME.env.example`) and Compose's own `.env`. They hold the secrets, so a forced
 * re-render must carry them over instead of deleting them with the old directory (issue 14).
 */
export function isOperatorFile(path: string): boolean {
  return path === ".env" || /^env\/[^/]+\.env$/.test(path);
}

/**
 * Refuses an existing non-empty directory unless `force`; then replaces it whole, except the operator's files
 * (`isOperatorFile`) that the new render does not produce: those are carried into the new directory unchanged.
 */
export function writeDirectory(directory: string, files: readonly OutputFile[], options: { force: boolean }): WriteResult {
  const destination = resolve(directory);
  if (existsSync(destination)) {
    if (!statSync(destination).isDirectory()) return { ok: false, reason: `${directory} exists and is not a directory` };
    if (readdirSync(destination).length > 0 && !options.force) {
      return { ok: false, reason: `${directory} exists and is not empty: choose another -o directory, or pass --force to replace it` };
    }
  }
  const parent = dirname(destination);
  mkdirSync(parent, { recursive: true });
  const staging = mkdtempSync(join(parent, `.${basename(destination)}.render-`));
  try {
    for (const file of files) {
      const target = resolve(staging, file.path);
      if (!target.startsWith(`${staging}/`)) throw new Error(`internal: output path ${file.path} escapes the directory`);
      mkdirSync(dirname(target), { recursive: true });
      writeFileSync(target, file.content, { mode: file.mode ?? 0o644 });
      chmodSync(target, file.mode ?? 0o644);
    }
    chmodSync(staging, 0o755);
    if (existsSync(destination)) {
      carryOverOperatorFiles(destination, staging, new Set(files.map((file) => file.path)));
      // Move the old render aside first so that the rename of the new one is a single step; then drop it.
      const previous = `${staging}.previous`;
      renameSync(destination, previous);
      try {
        renameSync(staging, destination);
      } catch (error) {
        renameSync(previous, destination);
        throw error;
      }
      rmSync(previous, { recursive: true, force: true });
    } else {
      renameSync(staging, destination);
    }
    return { ok: true, directory: destination };
  } catch (error) {
    rmSync(staging, { recursive: true, force: true });
    throw error;
  }
}

/**
 * Copies each operator file of the old render into the staging directory (content, mode; a symbolic link stays a
 * link). A copy, not a move: until the new directory is in place the old one stays whole, so a failure loses nothing.
 */
function carryOverOperatorFiles(previous: string, staging: string, rendered: ReadonlySet<string>): void {
  const envDirectory = join(previous, "env");
  const candidates = [".env", ...(existsSync(envDirectory) && lstatSync(envDirectory).isDirectory() ? readdirSync(envDirectory).map((name) => `env/${name}`) : [])];
  for (const path of candidates) {
    if (!isOperatorFile(path) || rendered.has(path)) continue;
    const source = join(previous, path);
    const target = join(staging, path);
    let status;
    try {
      status = lstatSync(source);
    } catch {
      continue;
    }
    mkdirSync(dirname(target), { recursive: true });
    if (status.isSymbolicLink()) {
      symlinkSync(readlinkSync(source), target);
    } else if (status.isFile()) {
      copyFileSync(source, target);
      chmodSync(target, status.mode & 0o7777);
    }
  }
}
