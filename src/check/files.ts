// Modes and owners on disk: the agent's .env (0600), its data directory (0700), and files inside that directory that
// another account could rewrite. Walks are bounded in entries and depth.
import { lstatSync, readdirSync } from "node:fs";
import type { Stats } from "node:fs";
import { basename, join } from "node:path";
import type { Collector, Subject } from "./collector.ts";

const DATA_MARKERS = [".env", "state.db", "SOUL.md", "memories", "skills", "sessions", "cron", "mcp-tokens"];
const MAXIMUM_ENTRIES = 20_000;
const MAXIMUM_DEPTH = 8;
const MAXIMUM_FINDINGS_PER_RULE = 20;

/** A Hermes data directory (HERMES_HOME, /opt/data, ~/.hermes): config.yaml beside the agent's own state. */
export function isHermesDataDirectory(directory: string, entries: readonly string[]): boolean {
  if (basename(directory) === ".hermes") return true;
  return entries.includes("config.yaml") && entries.some((entry) => DATA_MARKERS.includes(entry));
}

function fileSubject(file: string, display: string): Subject {
  return { file: display, name: display, locate: () => ({ file: display, line: 1, column: 1 }) };
}

function octal(mode: number): string {
  return `0${(mode & 0o777).toString(8)}`;
}

/** .env: no access for group or others. */
export function checkEnvMode(file: string, display: string, stats: Stats, collector: Collector): void {
  if ((stats.mode & 0o077) !== 0) {
    collector.add("FILE-ENV-MODE", fileSubject(file, display), [], `${display} has mode ${octal(stats.mode)}: its tokens are readable by other accounts (chmod 600)`);
  }
}

export function checkDataDirectory(directory: string, display: string, collector: Collector): void {
  const stats = lstatSync(directory);
  const subject = fileSubject(directory, display);
  if ((stats.mode & 0o077) !== 0) collector.add("FILE-DATA-DIR-MODE", subject, [], `data directory ${display} has mode ${octal(stats.mode)}: other accounts can reach config, sessions and secrets (chmod 700)`);
  const owner = stats.uid;
  const counts = { writable: 0, owner: 0, entries: 0 };
  const walk = (current: string, shown: string, depth: number) => {
    if (depth > MAXIMUM_DEPTH) return;
    let names: string[];
    try {
      names = readdirSync(current).sort();
    } catch {
      return;
    }
    for (const name of names) {
      counts.entries += 1;
      if (counts.entries > MAXIMUM_ENTRIES) return;
      const full = join(current, name);
      const shownPath = `${shown}/${name}`;
      const entry = lstatSync(full);
      if (entry.isSymbolicLink()) continue;
      if ((entry.mode & 0o022) !== 0 && counts.writable < MAXIMUM_FINDINGS_PER_RULE) {
        counts.writable += 1;
        collector.add("FILE-WRITABLE-BY-OTHERS", fileSubject(full, shownPath), [], `${shownPath} has mode ${octal(entry.mode)}: writable by ${(entry.mode & 0o002) !== 0 ? "everyone" : "its group"}`);
      }
      if (entry.uid !== owner && counts.owner < MAXIMUM_FINDINGS_PER_RULE) {
        counts.owner += 1;
        collector.add("FILE-OWNER", fileSubject(full, shownPath), [], `${shownPath} is owned by uid ${entry.uid}, the data directory by uid ${owner}`);
      }
      if (entry.isDirectory()) walk(full, shownPath, depth + 1);
    }
  };
  walk(directory, display, 0);
}
