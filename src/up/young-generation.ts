// Imported first by up/cli.ts, so it runs before the config schema and the services load: V8 grows the young
// generation to 2 x 16 MiB under their start-up allocation and keeps it while idle, ~28 MiB of the whole perimeter's
// RSS (every service shares up's process by default). From here it stays at its first size: scavenges come more often
// and each stays cheap. V8 reads this flag at every growth, so setting it at run time takes effect. Set earlier (in
// bin/perimeter.js, before Node's own start-up allocates) it held the young generation at 2 MiB, ~5 MiB less RSS, but
// start-up then scavenged ~40% more and took 50-150 ms longer (measured 2026-12-07): not worth it against the 1 s goal.
import { setFlagsFromString } from "node:v8";

setFlagsFromString("--semi-space-growth-factor=1");
