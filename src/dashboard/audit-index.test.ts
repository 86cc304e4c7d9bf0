// The index as serve dashboard uses it: spread into another object (withRemoteStates in cli.ts) and its methods
// called detached. A class whose methods were not bound would lose them in the spread.
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import { createAuditIndex } from "./audit-index.ts";

test("the index's methods survive a spread and a detached call; a missing log is its source's state", () => {
  const directory = mkdtempSync(join(tmpdir(), "perimeter-index-"));
  try {
    const index = createAuditIndex({ statePath: join(directory, "dashboard.db"), sources: [{ name: "perimeter", path: join(directory, "absent.db") }] });
    const copy = { ...index };
    const { lastId, sources } = index;
    assert.deepEqual(copy.ingest(10), { more: false, added: 0 });
    assert.equal(lastId(), 0);
    assert.equal(sources()[0]?.state, "missing");
    assert.deepEqual(copy.query({}, 10), { rows: [], next: undefined });
    copy.close();
  } finally {
    rmSync(directory, { recursive: true, force: true });
  }
});
