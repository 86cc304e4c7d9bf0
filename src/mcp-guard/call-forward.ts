// The act stage of a tools/call: the call goes to its upstream with the upstream's own credentials, bounded by the
// server's timeout and the agent's cancellation; the upstream's progress is relayed to the agent, redacted. What the
// upstream answered (or why it failed) goes on to the redact stage (call-result.ts) as it came.
import type { CallToolResult, Progress } from "@modelcontextprotocol/client";
import type { McpServerConfig } from "../config/index.ts";
import type { ActiveCall, CallerState } from "./call-state.ts";
import type { Upstream } from "./upstream.ts";

export type Forwarded = { readonly ok: true; readonly raw: CallToolResult } | { readonly ok: false; readonly error: unknown };

export async function forwardCall(state: CallerState, call: ActiveCall, upstream: Upstream, tool: string, serverConfig: McpServerConfig): Promise<Forwarded> {
  const relay = progressRelay(state, call);
  try {
    const raw = await upstream.callTool(tool, call.arguments, {
      signal: call.context.signal,
      timeoutMs: serverConfig.timeoutSeconds * 1000,
      ...(relay === undefined ? {} : { onprogress: relay }),
      caller: call.context.agent,
    });
    return { ok: true, raw };
  } catch (error) {
    return { ok: false, error };
  }
}

/** The upstream's progress as the agent hears it, when the agent asked for progress; its message is redacted. */
function progressRelay(state: CallerState, call: ActiveCall): ((progress: Progress) => void) | undefined {
  const { context } = call;
  if (context.progressToken === undefined) return undefined;
  return (progress) => {
    void context
      .notify({
        method: "notifications/progress",
        params: {
          progressToken: context.progressToken,
          progress: progress.progress,
          ...(progress.total === undefined ? {} : { total: progress.total }),
          ...(progress.message === undefined ? {} : { message: state.redactor.text(progress.message) }),
        },
      })
      .catch(() => undefined);
  };
}
