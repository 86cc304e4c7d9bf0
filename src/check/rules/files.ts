// Rules on files on disk: the agent's data directory and its .env, their modes and owners.
import type { RuleDefinition } from "../model.ts";
import { rule } from "./define.ts";

export const FILE_RULES: readonly RuleDefinition[] = [
  rule(
    "FILE-ENV-MODE", "high",
    ".env file is readable or writable by others",
    "The .env holds the bot token and API keys: \"chmod 600 ~/.hermes/.env\" (seed 004). Group or world access hands them to every local account and process.",
    "chmod 600 .env",
    `
chmod 600 /opt/data/.env
`,
  ),
  rule(
    "FILE-DATA-DIR-MODE", "high",
    "The agent's data directory is open to other users",
    "The data directory holds config, sessions, memories, skills and secrets: \"chmod 700 ~/.hermes\" (seed 004).",
    "chmod 700 on the data directory.",
    `
chmod 700 /opt/data
`,
  ),
  rule(
    "FILE-WRITABLE-BY-OTHERS", "high",
    "A file in the agent's data directory is writable by group or others",
    "Whoever can write config.yaml, SOUL.md, skills or cron jobs changes what the agent does next, a persistent prompt injection.",
    "chmod go-w on the file; keep the data directory 0700.",
    `
chmod -R go-w /opt/data
`,
  ),
  rule(
    "FILE-OWNER", "medium",
    "A file in the agent's data directory has a different owner than the directory",
    "A file owned by another account can be rewritten by that account (or by root processes you did not mean to trust), and the agent may be unable to rotate it.",
    "chown the data directory's contents to the agent's user (uid 10000 in the official image).",
    `
chown -R 10000:10000 /opt/data
`,
  ),
];
