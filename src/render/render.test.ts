// Requirements (issue 2, "Done when"): every example renders for both targets; `kubectl kustomize` builds each
// Kubernetes render; re-rendering is byte-identical; golden files pin the output (UPDATE_GOLDEN=1 rewrites them);
// every object validates against the Kubernetes schemas; the runtime perimeter.yaml the services read loads.
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, relative } from "node:path";
import { fileURLToPath } from "node:url";
import { parseAllDocuments } from "yaml";
import { ConfigMap } from "kubernetes-models/v1/ConfigMap";
import { Namespace } from "kubernetes-models/v1/Namespace";
import { PersistentVolumeClaim } from "kubernetes-models/v1/PersistentVolumeClaim";
import { ResourceQuota } from "kubernetes-models/v1/ResourceQuota";
import { Service } from "kubernetes-models/v1/Service";
import { ServiceAccount } from "kubernetes-models/v1/ServiceAccount";
import { Deployment } from "kubernetes-models/apps/v1/Deployment";
import { Job } from "kubernetes-models/batch/v1/Job";
import { NetworkPolicy } from "kubernetes-models/networking.k8s.io/v1/NetworkPolicy";
import { Role } from "kubernetes-models/rbac.authorization.k8s.io/v1/Role";
import { RoleBinding } from "kubernetes-models/rbac.authorization.k8s.io/v1/RoleBinding";
import { ValidatingAdmissionPolicy } from "kubernetes-models/admissionregistration.k8s.io/v1/ValidatingAdmissionPolicy";
import { ValidatingAdmissionPolicyBinding } from "kubernetes-models/admissionregistration.k8s.io/v1/ValidatingAdmissionPolicyBinding";
import { parseConfig } from "../config/index.ts";
import { renderTarget, writeDirectory } from "./index.ts";
import { EXAMPLES, TARGETS, exampleConfig, manifestObjects, renderedFiles } from "./testing.ts";
import type { AnyObject, Loose } from "./testing.ts";

const GOLDEN = fileURLToPath(new URL("./golden/", import.meta.url));

function listFiles(root: string): string[] {
  const out: string[] = [];
  const walk = (directory: string) => {
    for (const entry of readdirSync(directory).sort()) {
      const path = join(directory, entry);
      if (statSync(path).isDirectory()) walk(path);
      else out.push(relative(root, path));
    }
  };
  walk(root);
  return out;
}

function writeRender(example: string, target: "kubernetes" | "compose"): string {
  const root = mkdtempSync(join(tmpdir(), `perimeter-render-${example}-`));
  const output = join(root, "out");
  const result = writeDirectory(output, renderTarget(exampleConfig(example), target).files, { force: false });
  assert.ok(result.ok);
  return output;
}

for (const example of EXAMPLES) {
  for (const target of TARGETS) {
    test(`${example} renders for ${target}, and the example loads with the schema`, () => {
      const files = renderedFiles(exampleConfig(example), target);
      assert.ok(files.size >= 5, `only ${files.size} files`);
      for (const [path, content] of files) {
        assert.ok(content.length > 0, `${path} is empty`);
        assert.ok(content.endsWith("\n"), `${path} does not end with a newline`);
      }
    });

    test(`${example} (${target}): re-rendering writes byte-identical files`, () => {
      const first = writeRender(example, target);
      const second = writeRender(example, target);
      const names = listFiles(first);
      assert.deepEqual(listFiles(second), names);
      for (const name of names) assert.ok(readFileSync(join(first, name)).equals(readFileSync(join(second, name))), `${name} differs between renders`);
      rmSync(dirname(first), { recursive: true, force: true });
      rmSync(dirname(second), { recursive: true, force: true });
    });

    test(`${example} (${target}): output matches the golden files (UPDATE_GOLDEN=1 rewrites them)`, () => {
      const files = renderedFiles(exampleConfig(example), target);
      const directory = join(GOLDEN, example, target);
      if (process.env.UPDATE_GOLDEN === "1") {
        rmSync(directory, { recursive: true, force: true });
        for (const [path, content] of files) {
          mkdirSync(dirname(join(directory, path)), { recursive: true });
          writeFileSync(join(directory, path), content);
        }
      }
      assert.ok(existsSync(directory), `no golden files in ${directory}: run UPDATE_GOLDEN=1 node --test src/render/render.test.ts`);
      assert.deepEqual(listFiles(directory), [...files.keys()].sort(), "the set of rendered files changed");
      for (const [path, content] of files) {
        assert.equal(content, readFileSync(join(directory, path), "utf8"), `${path} differs from golden (review the diff, then UPDATE_GOLDEN=1)`);
      }
    });

    test(`${example} (${target}): the runtime perimeter.yaml the services read loads with the schema`, () => {
      const files = renderedFiles(exampleConfig(example), target);
      const configs = target === "kubernetes"
        ? manifestObjects(files).filter((object) => object.kind === "ConfigMap" && object.metadata.name === "perimeter-config").flatMap((object) => Object.values(object.data as Record<string, string>))
        : [...files].filter(([path]) => path === "config/perimeter.yaml" || path === "config/sandbox-egress.yaml").map(([, content]) => content);
      assert.ok(configs.length >= 1);
      for (const text of configs) {
        const runtime = parseConfig(text, "runtime.yaml");
        assert.equal(runtime.name, exampleConfig(example).name);
        assert.match(runtime.mcp.listen, /^0\.0\.0\.0:/);
        assert.equal(runtime.sandbox.backend, target === "kubernetes" ? "kubernetes" : "bubblewrap");
      }
    });
  }

  test(`${example}: kubectl kustomize builds the Kubernetes render`, () => {
    const directory = writeRender(example, "kubernetes");
    const result = spawnSync("kubectl", ["kustomize", directory], { encoding: "utf8", timeout: 60_000 });
    assert.equal(result.error, undefined, "kubectl is required (Debian: kubernetes-client, or .ci/run installs it)");
    assert.equal(result.status, 0, result.stderr);
    const built = parseAllDocuments(result.stdout, { version: "1.1" }).map((document) => document.toJS() as AnyObject);
    const rendered = manifestObjects(renderedFiles(exampleConfig(example), "kubernetes"));
    assert.equal(built.length, rendered.length, "kustomize dropped or added objects");
    rmSync(dirname(directory), { recursive: true, force: true });
  });

  test(`${example}: every Kubernetes object validates against the Kubernetes schemas`, () => {
    const objects = manifestObjects(renderedFiles(exampleConfig(example), "kubernetes"));
    for (const object of objects) {
      const where = `${object.kind} ${object.metadata.namespace ?? ""}/${object.metadata.name}`;
      const model = MODELS[`${object.apiVersion} ${object.kind}`];
      if (model !== undefined) {
        assert.doesNotThrow(() => model(object).validate(), where);
      } else if (object.kind === "CiliumNetworkPolicy") {
        assert.equal(object.apiVersion, "cilium.io/v2", where);
        validateCiliumPolicy(object, where);
      } else if (object.kind === "ExternalSecret") {
        assert.equal(object.apiVersion, "external-secrets.io/v1", where);
        validateExternalSecret(object, where);
      } else {
        assert.fail(`${where}: no schema to validate ${object.apiVersion} ${object.kind} against`);
      }
    }
    // The job template inside its ConfigMap is an object too.
    for (const configMap of objects.filter((object) => object.kind === "ConfigMap" && object.metadata.name === "sandbox-job-template")) {
      const job = parseAllDocuments((configMap.data as Record<string, string>)["job.yaml"] ?? "", { version: "1.1" })[0]?.toJS() as Loose;
      job.metadata.name = "task-1";
      assert.doesNotThrow(() => new Job(job).validate());
    }
  });
}

type Validatable = { validate(): void };
const MODELS: Record<string, (object: AnyObject) => Validatable> = {
  "v1 Namespace": (object) => new Namespace(object as Loose),
  "v1 ServiceAccount": (object) => new ServiceAccount(object as Loose),
  "v1 ConfigMap": (object) => new ConfigMap(object as Loose),
  "v1 Service": (object) => new Service(object as Loose),
  "v1 PersistentVolumeClaim": (object) => new PersistentVolumeClaim(object as Loose),
  "v1 ResourceQuota": (object) => new ResourceQuota(object as Loose),
  "apps/v1 Deployment": (object) => new Deployment(object as Loose),
  "networking.k8s.io/v1 NetworkPolicy": (object) => new NetworkPolicy(object as Loose),
  "rbac.authorization.k8s.io/v1 Role": (object) => new Role(object as Loose),
  "rbac.authorization.k8s.io/v1 RoleBinding": (object) => new RoleBinding(object as Loose),
  "admissionregistration.k8s.io/v1 ValidatingAdmissionPolicy": (object) => new ValidatingAdmissionPolicy(object as Loose),
  "admissionregistration.k8s.io/v1 ValidatingAdmissionPolicyBinding": (object) => new ValidatingAdmissionPolicyBinding(object as Loose),
};

/** The fields of cilium.io/v2 CiliumNetworkPolicy render writes (no published JSON schema is installed here). */
function validateCiliumPolicy(object: AnyObject, where: string): void {
  const spec = object.spec as Loose;
  assert.equal(typeof spec.endpointSelector?.matchLabels, "object", `${where}: endpointSelector.matchLabels`);
  assert.ok(Array.isArray(spec.egress) && spec.egress.length >= 1, `${where}: egress rules`);
  for (const rule of spec.egress as Loose[]) {
    const peers = Object.keys(rule).filter((key) => key !== "toPorts");
    assert.ok(peers.every((key) => ["toEndpoints", "toFQDNs"].includes(key)), `${where}: unexpected peer ${peers.join(",")}`);
    for (const toPort of rule.toPorts as Loose[]) {
      for (const port of toPort.ports as Loose[]) {
        assert.match(port.port, /^\d+$/, `${where}: port must be a string of digits`);
        assert.ok(["TCP", "UDP", "ANY"].includes(port.protocol), `${where}: protocol`);
      }
      // L7 DNS rules: one of matchName/matchPattern each, and only on the DNS port.
      for (const dns of (toPort.rules?.dns ?? []) as Loose[]) {
        assert.equal(Object.keys(dns).length, 1, `${where}: one of matchName/matchPattern`);
        assert.match(dns.matchName ?? dns.matchPattern, /^(\*|(\*\.)?[a-z0-9.-]+)$/, `${where}: ${JSON.stringify(dns)}`);
        assert.deepEqual((toPort.ports as Loose[]).map((port) => port.port), ["53"], `${where}: DNS rules belong on port 53`);
      }
    }
    for (const fqdn of (rule.toFQDNs ?? []) as Loose[]) {
      assert.equal(Object.keys(fqdn).length, 1, `${where}: one of matchName/matchPattern`);
      assert.match(fqdn.matchName ?? fqdn.matchPattern, /^(\*\.)?[a-z0-9.-]+$/, `${where}: ${JSON.stringify(fqdn)}`);
    }
  }
}

function validateExternalSecret(object: AnyObject, where: string): void {
  const spec = object.spec as Loose;
  assert.ok(["SecretStore", "ClusterSecretStore"].includes(spec.secretStoreRef?.kind), `${where}: secretStoreRef.kind`);
  assert.equal(typeof spec.secretStoreRef?.name, "string", `${where}: secretStoreRef.name`);
  assert.equal(spec.target?.name, object.metadata.name, `${where}: target.name`);
  assert.ok(Array.isArray(spec.data) && spec.data.length > 0, `${where}: data`);
  for (const entry of spec.data as Loose[]) assert.equal(entry.secretKey, entry.remoteRef?.key, `${where}: one remote key per variable`);
}
