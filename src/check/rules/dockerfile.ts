// Dockerfile rules.
import type { RuleDefinition } from "../model.ts";
import { rule } from "./define.ts";

export const DOCKERFILE_RULES: readonly RuleDefinition[] = [
  rule(
    "DOCKER-IMAGE-TAG", "medium",
    "Base image is untagged or uses :latest",
    "A floating base changes what you ship on the next build without review.",
    "Pin FROM to a version tag or @sha256 digest.",
    `
FROM node:24.11-bookworm-slim
`,
  ),
  rule(
    "DOCKER-ROOT-USER", "medium",
    "The image runs as root",
    "Without a USER instruction the process runs as UID 0, so any escape or writable mount is root. (Images built FROM the Hermes image are exempt: its s6 init drops to UID 10000 itself.)",
    "Add USER with a numeric non-root uid in the final stage.",
    `
USER 10000:10000
`,
  ),
  rule(
    "DOCKER-SECRET-IN-IMAGE", "high",
    "A secret is baked into the image",
    "ENV and ARG values are stored in the image's layers and history: everyone who can pull the image reads them.",
    "Pass secrets at run time (a Secret, an env file with mode 0600) or with BuildKit secret mounts.",
    `
RUN --mount=type=secret,id=npm_token NPM_TOKEN=$(cat /run/secrets/npm_token) npm ci
`,
  ),
  rule(
    "DOCKER-CURL-PIPE-SHELL", "medium",
    "A downloaded script is piped into a shell",
    "curl | sh runs whatever the server (or anyone in the middle) sends at build time, unreviewed and unpinned.",
    "Download to a file, verify its checksum, then run it.",
    `
RUN curl -fsSLo /tmp/install.sh https://example.com/install.sh \\
 && echo "<sha256>  /tmp/install.sh" | sha256sum -c - && sh /tmp/install.sh
`,
  ),
];
