// Announces every new approval request (a held call, a definition waiting for review): a warn log line, a count for
// the metric, and the operator's hook (approvals.hook) run with the event as JSON on stdin. Without this a held call
// or a first start with trust-on-first-use off waits silently until someone thinks of `perimeter approvals list`.
// The hook is the operator's own program, but it runs beside the guard's secrets: it gets a minimal environment and
// no arguments or definition text (only what waits, where, and the command to review it). It runs detached from the
// decision: spawned after the request is recorded, bounded in time, at most MAX_RUNNING at once, and any failure is
// a log line, never an error for the call.
import { spawn } from "node:child_process";
import type { Approval, ApprovalStore } from "./store.ts";

/** Hooks running at once; more are skipped (logged) so a burst of held calls cannot fork without bound. */
const MAX_RUNNING = 8;
const DEFAULT_TIMEOUT_MS = 10_000;
const STDERR_KEPT = 400;

interface Logger {
  warn(object: Record<string, unknown>, message: string): void;
}

export interface AnnouncerOptions {
  store: ApprovalStore;
  logger: Logger;
  /** argv of the hook; none: log and count only. */
  hook?: readonly string[];
  /** @default 10 s */
  hookTimeoutMs?: number;
  /** The environment the hook starts with (only PATH, HOME and LANG of it are passed on). */
  env?: Readonly<Record<string, string | undefined>>;
  /** Counts each announced request (the guard's perimeter_mcp_guard_approval_requests_total). */
  onAnnounce?: (kind: Approval["kind"]) => void;
  /** Counts each hook run that failed, timed out or was skipped. */
  onHookFailure?: () => void;
}

export interface Announcer {
  /** Resolves when every hook started so far has ended (tests, shutdown). */
  settled(): Promise<void>;
  close(): void;
}

/** What the hook is told: enough to page someone and point them at the review, nothing the request carries. */
export function announcement(approval: Approval): Record<string, unknown> {
  const detail = (approval.detail ?? {}) as Record<string, unknown>;
  const findings = Array.isArray(detail.findings) ? detail.findings.length : 0;
  return {
    type: "approval-request",
    id: approval.id,
    kind: approval.kind,
    server: approval.server,
    tool: approval.tool,
    exposedName: `${approval.server}__${approval.tool}`,
    ...(approval.agent === undefined ? {} : { agent: approval.agent }),
    ...(approval.kind === "tool-definition" ? { change: detail.change === "changed" ? "changed" : "new", findings } : {}),
    createdAt: approval.createdAt,
    ...(approval.expiresAt === undefined ? {} : { expiresAt: approval.expiresAt }),
    requiredApprovals: approval.requiredApprovals,
    review: approval.kind === "tool-definition" ? `perimeter approvals review (or perimeter approvals show ${approval.id})` : `perimeter approvals show ${approval.id}, then approve or deny ${approval.id}`,
  };
}

export function createApprovalAnnouncer(options: AnnouncerOptions): Announcer {
  const { logger } = options;
  const timeoutMs = options.hookTimeoutMs ?? DEFAULT_TIMEOUT_MS;
  const running = new Set<Promise<void>>();
  const hookEnv: Record<string, string> = {};
  for (const name of ["PATH", "HOME", "LANG"]) {
    const value = options.env?.[name];
    if (value !== undefined) hookEnv[name] = value;
  }

  const hookFailed = (id: string, reason: string) => {
    options.onHookFailure?.();
    logger.warn({ event: "approval-hook-failed", id, reason }, "the approvals.hook command failed; the request still waits (perimeter approvals list)");
  };

  const runHook = (hook: readonly string[], event: Record<string, unknown>): Promise<void> =>
    new Promise<void>((resolve) => {
      const id = String(event.id);
      const [command, ...args] = hook;
      let stderr = "";
      let timedOut = false;
      let child: ReturnType<typeof spawn>;
      try {
        child = spawn(command as string, args, { stdio: ["pipe", "ignore", "pipe"], env: hookEnv, detached: false });
      } catch (error) {
        hookFailed(id, (error as Error).message);
        resolve();
        return;
      }
      const timer = setTimeout(() => {
        timedOut = true;
        child.kill("SIGKILL");
      }, timeoutMs);
      child.stderr?.on("data", (chunk: Buffer) => {
        if (stderr.length < STDERR_KEPT) stderr += chunk.toString("utf8");
      });
      // A hook that does not read its stdin must not fail the write loudly.
      child.stdin?.on("error", () => undefined);
      child.stdin?.end(`${JSON.stringify(event)}\n`);
      child.on("error", (error) => {
        clearTimeout(timer);
        hookFailed(id, error.message);
        resolve();
      });
      child.on("close", (code, signal) => {
        clearTimeout(timer);
        if (timedOut) hookFailed(id, `killed after ${timeoutMs} ms (approvals.hookTimeoutSeconds)`);
        else if (code !== 0) hookFailed(id, `exited ${code ?? signal}${stderr === "" ? "" : `: ${stderr.slice(0, STDERR_KEPT).trim()}`}`);
        resolve();
      });
    });

  const unsubscribe = options.store.subscribe((event) => {
    if (event.type !== "approval-request") return;
    const approval = event.approval;
    const told = announcement(approval);
    options.onAnnounce?.(approval.kind);
    logger.warn(
      { event: "approval-announce", id: approval.id, kind: approval.kind, server: approval.server, tool: approval.tool, ...(approval.agent === undefined ? {} : { agent: approval.agent }) },
      approval.kind === "tool-call" ? "a call waits for a human decision (perimeter approvals list)" : "a tool definition waits for review; the agent cannot use it until approved (perimeter approvals review)",
    );
    if (options.hook === undefined) return;
    if (running.size >= MAX_RUNNING) {
      hookFailed(approval.id, `skipped: ${MAX_RUNNING} hooks are still running`);
      return;
    }
    const run = runHook(options.hook, told).finally(() => running.delete(run));
    running.add(run);
  });

  return {
    async settled() {
      while (running.size > 0) await Promise.all(running);
    },
    close: unsubscribe,
  };
}
