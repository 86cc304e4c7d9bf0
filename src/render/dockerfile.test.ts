// The project's Dockerfile (render's deployments run it): multi-stage, Node 24, non-root, read-only-root friendly,
// `perimeter` as the entrypoint the rendered manifests call (`perimeter serve ...`). No Docker daemon runs here, so
// these assertions read the file; the rendered commands are checked against it.
import { test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { exampleConfig, manifestObjects, podSpec, renderedFiles } from "./testing.ts";

const dockerfile = readFileSync(fileURLToPath(new URL("../../Dockerfile", import.meta.url)), "utf8");
const dockerignore = readFileSync(fileURLToPath(new URL("../../.dockerignore", import.meta.url)), "utf8");
const instructions = dockerfile.split("\n").filter((line) => /^[A-Z]+\s/.test(line));

test("Dockerfile: multi-stage on a pinned Node 24 image (no :latest, no untagged base)", () => {
  const froms = instructions.filter((line) => line.startsWith("FROM "));
  assert.ok(froms.length >= 2, "a build stage and a runtime stage");
  assert.match(dockerfile, /^ARG NODE_IMAGE=node:24[-.\w]*$/m);
  assert.ok(!/:latest\b/.test(dockerfile));
  const runtime = dockerfile.slice(dockerfile.lastIndexOf("FROM "));
  assert.match(runtime, /COPY --from=dependencies \/app\/node_modules/);
  assert.match(dockerfile, /npm ci --omit=dev --ignore-scripts/);
});

test("Dockerfile: the runtime runs as uid 65532 (the manifests' runAsUser) and writes only /var/lib/perimeter and /tmp", () => {
  const users = instructions.filter((line) => line.startsWith("USER "));
  assert.deepEqual(users, ["USER 65532:65532"]);
  assert.ok(instructions.indexOf("USER 65532:65532") > instructions.findIndex((line) => line.startsWith("RUN chmod")), "USER comes after the last RUN");
  assert.match(dockerfile, /chown 65532:65532 \/var\/lib\/perimeter/);
  assert.match(dockerfile, /HOME=\/tmp/);
  const pod = podSpec(manifestObjects(renderedFiles(exampleConfig("k3s-telegram-minimax"), "kubernetes")).find((object) => object.kind === "Deployment" && object.metadata.name === "mcp-guard")!);
  assert.equal(pod.securityContext.runAsUser, 65532);
  assert.deepEqual(pod.containers[0].volumeMounts.map((mount: { mountPath: string }) => mount.mountPath).sort(), ["/etc/perimeter", "/tmp", "/var/lib/perimeter"]);
});

test("Dockerfile: `perimeter` is the entrypoint and on PATH, as the rendered commands expect", () => {
  assert.match(dockerfile, /^ENTRYPOINT \["perimeter"\]$/m);
  assert.match(dockerfile, /ln -s \/app\/bin\/perimeter\.js \/usr\/local\/bin\/perimeter/);
  const compose = renderedFiles(exampleConfig("compose-vps"), "compose").get("compose.yaml") ?? "";
  assert.match(compose, /command:\n {6}- serve\n {6}- egress-proxy/, "Compose passes arguments to the entrypoint");
});

test("Dockerfile: no secret in ENV/ARG; .dockerignore keeps tests, golden files and everything else out", () => {
  for (const line of instructions.filter((entry) => /^(ENV|ARG) /.test(entry))) assert.ok(!/(TOKEN|KEY|SECRET|PASSWORD)=/i.test(line), line);
  assert.match(dockerignore, /^\*$/m);
  for (const pattern of ["**/*.test.ts", "**/golden/"]) assert.ok(dockerignore.includes(pattern), pattern);
});
