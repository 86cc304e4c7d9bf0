// The benchmark's stand-in provider in its own process (so that it does not share an event loop with the load
// generator): prints its port as a JSON line, serves until stdin closes or SIGTERM.
import { createStandInProvider } from "../../src/llm-proxy/testing.ts";

const provider = createStandInProvider({ chunkDelayMs: Number(process.env.CHUNK_DELAY_MS ?? "2"), record: false });
const { port } = await provider.listen();
process.stdout.write(`${JSON.stringify({ port })}\n`);
const stop = () => void provider.close().then(() => process.exit(0));
process.on("SIGTERM", stop);
process.stdin.on("end", stop);
process.stdin.resume();
