// Imported first by up/cli.ts, so it runs before the config schema and the services load: V8 grows the young
// generation to 2 x 16 MiB under their start-up allocation and keeps it while idle, ~28 MiB of the whole perimeter's
// RSS (every service shares up's process by default). From here it stays at its first size: scavenges come more often
// and each stays cheap. V8 reads this flag at every growth, so setting it at run time takes effect.
import { setFlagsFromString } from "node:v8";

setFlagsFromString("--semi-space-growth-factor=1");
