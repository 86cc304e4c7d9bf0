// Writing a render: the whole directory appears at once or not at all. Files go to a temporary directory beside
// the destination (same filesystem, so the final rename is atomic) and are renamed into place; a failure removes
// the temporary directory, so an operator never applies half a perimeter.
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readdirSync, renameSync, rmSync, statSync, writeFileSync } from "node:fs";
import { basename, dirname, join, resolve } from "node:path";

export interface OutputFile {
  readonly path: string;
  readonly content: string;
  /** File mode; scripts are 0755, everything else 0644. */
  readonly mode?: number;
}

export type WriteResult = { ok: true; directory: string } | { ok: false; reason: string };

/** Refuses an existing non-empty directory unless `force`; then replaces it whole. */
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
