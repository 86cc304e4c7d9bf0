// backup: encrypted archives of the agent's data directory and the audit log (perimeter backup create|verify|restore).
import { z } from "zod";

const backupPath = z
  .string()
  .refine((value) => value.startsWith("/"), { message: "use an absolute path: the backup timer runs from /, where a relative path would name another place" });

/** True when `path` is `directory` or lies inside it (both absolute). */
function pathWithin(path: string, directory: string): boolean {
  const trimmed = directory.replace(/\/+$/, "");
  return path === trimmed || path.startsWith(`${trimmed}/`);
}

const ageRecipient = z.string().superRefine((value, context) => {
  if (/^AGE-SECRET-KEY-/i.test(value)) {
    context.addIssue({ code: "custom", message: "this is an age identity (a secret key), not a recipient: write its public key (age-keygen -y FILE prints it) and keep the identity off this host" });
  } else if (!/^age1[02-9ac-hj-np-z]{20,}$/.test(value)) {
    context.addIssue({ code: "custom", message: `"${value}" is not an age public key: write one as printed by age-keygen (age1…)` });
  }
});

export const backupSection = z
  .strictObject({
    dataDirectory: backupPath.describe("The agent's data directory to back up (Hermes' ~/.hermes, e.g. /var/lib/hermes/.hermes)."),
    directory: backupPath.default("/var/backups/perimeter").describe("Where archives are written (created 0700). @default /var/backups/perimeter"),
    recipients: z
      .array(ageRecipient)
      .min(1, "list at least one age public key (age1…) to encrypt backups to: they hold the agent's secrets, memory and sessions")
      .describe("age public keys the archives are encrypted to; keep the matching identities off this host."),
    identityFile: backupPath
      .optional()
      .describe("age identity file used by verify and restore when -i is not given. Better kept off this host: whoever reads it opens every backup."),
    keep: z.number().int().min(1).max(1000).default(7).describe("Archives kept in directory; older ones are removed after each create. @default 7"),
    auditLog: z.boolean().default(true).describe("Include a consistent snapshot of audit.path. @default true"),
  })
  .superRefine((value, context) => {
    if (pathWithin(value.directory, value.dataDirectory)) {
      context.addIssue({ code: "custom", path: ["directory"], message: "the backup directory is inside the data directory: the agent could delete or replace its own backups; choose a directory outside it" });
    }
    if (value.identityFile !== undefined && pathWithin(value.identityFile, value.dataDirectory)) {
      context.addIssue({ code: "custom", path: ["identityFile"], message: "the identity is inside the data directory: the agent could read the key to every backup, and each backup would carry its own key; keep it elsewhere (best off this host)" });
    }
    if (value.identityFile !== undefined && pathWithin(value.identityFile, value.directory)) {
      context.addIssue({ code: "custom", path: ["identityFile"], message: "the identity is next to the archives it opens, which then protects nothing; keep it elsewhere (best off this host)" });
    }
  });
