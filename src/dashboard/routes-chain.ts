// The integrity and health routes: /chain.json and /chain-status (the banner every page polls) from the chain
// monitor and the index's source states, and /health, which probes every service's /healthz.
import { chainBanner, healthPage } from "./pages.ts";
import type { ServiceHealth } from "./pages.ts";
import { pageContext, send, sendJsonAnswer } from "./state.ts";
import type { DashboardRequest, DashboardState } from "./state.ts";

/** One service's /healthz, bounded in time and size; no redirect is followed. */
export async function probeHealth(name: string, url: string): Promise<ServiceHealth> {
  try {
    const answer = await fetch(url, { signal: AbortSignal.timeout(1500), redirect: "error" });
    const text = (await answer.text()).slice(0, 300);
    return { name, url, status: answer.ok ? "ok" : "unhealthy", code: answer.status, detail: text };
  } catch (error) {
    return { name, url, status: "unreachable", detail: ((error as { cause?: { code?: string } }).cause?.code ?? (error as Error).message).slice(0, 200) };
  }
}

export function chainJsonRoute(state: DashboardState, context: DashboardRequest): void {
  sendJsonAnswer(state, context.response, 200, { chain: state.chain.status(), sources: state.index.sources() });
}

export function chainStatusRoute(state: DashboardState, context: DashboardRequest): void {
  send(state, context.response, 200, chainBanner(state.chain.status(), state.index.sources()));
}

export async function healthRoute(state: DashboardState, context: DashboardRequest): Promise<void> {
  const services = await Promise.all(Object.entries(state.options.health).map(([name, url]) => probeHealth(name, url)));
  send(state, context.response, 200, healthPage(pageContext(state, context.session), { services }));
}
