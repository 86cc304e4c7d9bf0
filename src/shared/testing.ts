// Test support shared by the services' tests (not imported by product code).
import net from "node:net";

/**
 * The attack on a refusal answered before the request body is read: send `head` (declaring a huge body) and then
 * keep writing for up to `forMs` or `maxBytes`. Resolves with what came back, how much the server let in, and whether
 * it closed the connection (src/shared/refusal.ts says it must, after answering).
 */
export async function uploadAfterRefusal(
  target: { host: string; port: number },
  head: string,
  options: { forMs?: number; maxBytes?: number } = {},
): Promise<{ answer: string; sentBytes: number; closed: boolean }> {
  const forMs = options.forMs ?? 3000;
  const maxBytes = options.maxBytes ?? 512 * 1024 * 1024;
  const socket = net.connect(target);
  await new Promise((resolve, reject) => socket.once("connect", resolve).once("error", reject));
  let answer = "";
  socket.on("data", (chunk: Buffer) => (answer += chunk.toString("latin1")));
  socket.on("error", () => undefined);
  const closed = new Promise<void>((resolve) => socket.once("close", () => resolve()));
  socket.write(head);
  const chunk = Buffer.alloc(64 * 1024, 0x20);
  let sentBytes = 0;
  const deadline = performance.now() + forMs;
  while (!socket.destroyed && performance.now() < deadline && sentBytes < maxBytes) {
    if (!socket.write(chunk)) await new Promise((resolve) => setTimeout(resolve, 5));
    sentBytes += chunk.length;
  }
  await Promise.race([closed, new Promise((resolve) => setTimeout(resolve, 2000))]);
  const result = { answer, sentBytes, closed: socket.destroyed };
  socket.destroy();
  return result;
}

/**
 * Polls `check` every `intervalMs` until it returns a value other than undefined, and resolves with it; fails after
 * `timeoutMs` naming what it waited for.
 */
export async function eventually<T>(check: () => T | undefined | Promise<T | undefined>, timeoutMs = 10_000, what = "condition", intervalMs = 50): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await check();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, intervalMs));
  }
}

/**
 * A module hook (for `node --import`) that prints, at exit, every npm package the process loaded: the start-up tests
 * use it to hold a command to the packages it needs.
 */
export const LOADED_PACKAGES_HOOK = `import { registerHooks } from "node:module";
const packages = new Set();
registerHooks({
  resolve(specifier, context, next) {
    const resolved = next(specifier, context);
    const found = /node_modules\\/((?:@[^/]+\\/)?[^/]+)\\//.exec(resolved.url);
    if (found !== null) packages.add(found[1]);
    return resolved;
  },
});
process.on("exit", () => process.stderr.write("loaded-packages:" + JSON.stringify([...packages]) + "\\n"));
`;
