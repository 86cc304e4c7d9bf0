// A stdio client transport whose child gets exactly the environment it is given. The SDK's StdioClientTransport
// always merges HOME, LOGNAME, PATH, SHELL, TERM and USER from the parent; an upstream should see only what its
// config names (plus PATH and HOME to start at all), never the guard's other variables, which hold every other
// upstream's credentials. The child runs in its own process group so that closing it also ends what it spawned
// (`npx` starts a second node).
import { spawn } from "node:child_process";
import type { ChildProcess } from "node:child_process";
import { ReadBuffer, serializeMessage } from "@modelcontextprotocol/client";
import type { JSONRPCMessage, Transport } from "@modelcontextprotocol/client";

export interface StdioUpstreamParameters {
  command: string;
  args: readonly string[];
  /** The complete environment of the child. */
  env: Record<string, string>;
  cwd?: string;
  /** Each line the child writes to stderr (already split; the caller redacts and rate-limits). */
  onStderrLine?: (line: string) => void;
  /** Largest single message accepted from the child, in bytes. */
  maxMessageBytes?: number;
}

export class ExactEnvironmentStdioTransport implements Transport {
  onclose?: () => void;
  onerror?: (error: Error) => void;
  onmessage?: (message: JSONRPCMessage) => void;
  private child: ChildProcess | undefined;
  private readonly buffer: ReadBuffer;
  private readonly parameters: StdioUpstreamParameters;
  private closed = false;

  constructor(parameters: StdioUpstreamParameters) {
    this.parameters = parameters;
    this.buffer = new ReadBuffer({ maxBufferSize: parameters.maxMessageBytes ?? 16 * 1024 * 1024 });
  }

  get pid(): number | undefined {
    return this.child?.pid;
  }

  start(): Promise<void> {
    if (this.child !== undefined) throw new Error("transport already started");
    return new Promise((resolve, reject) => {
      const child = spawn(this.parameters.command, [...this.parameters.args], {
        env: this.parameters.env,
        cwd: this.parameters.cwd,
        stdio: ["pipe", "pipe", "pipe"],
        shell: false,
        detached: true,
      });
      this.child = child;
      child.once("error", (error) => {
        reject(error);
        this.onerror?.(error);
      });
      child.once("spawn", () => resolve());
      child.once("close", () => {
        this.child = undefined;
        if (!this.closed) {
          this.closed = true;
          this.onclose?.();
        }
      });
      child.stdin?.on("error", (error) => this.onerror?.(error));
      child.stdout?.on("error", (error) => this.onerror?.(error));
      child.stdout?.on("data", (chunk: Buffer) => {
        try {
          this.buffer.append(chunk);
        } catch (error) {
          // An oversized message: the child is misbehaving; drop the connection rather than buffer without bound.
          this.onerror?.(error as Error);
          void this.close();
          return;
        }
        for (;;) {
          let message: JSONRPCMessage | null;
          try {
            message = this.buffer.readMessage();
          } catch (error) {
            this.onerror?.(error as Error);
            continue;
          }
          if (message === null) break;
          this.onmessage?.(message);
        }
      });
      let pending = "";
      child.stderr?.setEncoding("utf8");
      child.stderr?.on("data", (text: string) => {
        pending += text;
        const lines = pending.split("\n");
        pending = lines.pop() ?? "";
        if (pending.length > 8192) pending = pending.slice(0, 8192);
        for (const line of lines) if (line.trim() !== "") this.parameters.onStderrLine?.(line.slice(0, 8192));
      });
    });
  }

  send(message: JSONRPCMessage): Promise<void> {
    return new Promise((resolve, reject) => {
      const stdin = this.child?.stdin;
      if (stdin === undefined || stdin === null || stdin.destroyed) {
        reject(new Error("the upstream process is not running"));
        return;
      }
      if (stdin.write(serializeMessage(message))) resolve();
      else stdin.once("drain", () => resolve());
    });
  }

  async close(): Promise<void> {
    const child = this.child;
    this.buffer.clear();
    if (child === undefined) {
      if (!this.closed) {
        this.closed = true;
        this.onclose?.();
      }
      return;
    }
    const exited = new Promise<void>((resolve) => child.once("close", () => resolve()));
    const wait = (ms: number) => Promise.race([exited.then(() => true), new Promise<boolean>((resolve) => setTimeout(() => resolve(false), ms).unref())]);
    const signalGroup = (signal: NodeJS.Signals) => {
      try {
        if (child.pid !== undefined) process.kill(-child.pid, signal);
      } catch {
        try {
          child.kill(signal);
        } catch {
          // Already gone.
        }
      }
    };
    try {
      child.stdin?.end();
    } catch {
      // Already closed.
    }
    if (!(await wait(1000))) {
      signalGroup("SIGTERM");
      if (!(await wait(2000))) {
        signalGroup("SIGKILL");
        await wait(2000);
      }
    } else {
      // The server exited; make sure nothing it started lingers in its group.
      signalGroup("SIGKILL");
    }
  }
}
