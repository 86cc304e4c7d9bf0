// Rules that join sections: a model reference must name a listed provider and model, a cost budget must be countable,
// an approval rule must name a server and be decidable by enough people, and the approver bot must not be the agent's.
// Each takes the parsed declaration and reports through the refinement context, as the schema's last step.
import type { z } from "zod";
import { describeUnpriced, pricingFix, unpricedProvidersFor } from "../llm-models.ts";
import { globMatches } from "../glob.ts";
import type { PerimeterConfig } from "../schema.ts";

type Context = z.RefinementCtx<PerimeterConfig>;

export function checkAcrossSections(value: PerimeterConfig, context: Context): void {
  checkModelReferences(value, context);
  checkCostBudgets(value, context);
  checkApprovalTools(value, context);
  checkTelegramApprover(value, context);
  const agentNames = value.mcp.agents.map((entry) => entry.name);
  if (new Set(agentNames).size !== agentNames.length) {
    context.addIssue({ code: "custom", path: ["mcp", "agents"], message: "agent names must be unique" });
  }
  // agent.terminal "sandbox" without a sandbox server in mcp.servers is not an error: render adds the server itself.
}

function checkModelReferences(value: PerimeterConfig, context: Context): void {
  const providers = value.llm.providers;
  const modelRef = (reference: string, path: (string | number)[]) => {
    const [providerName, ...rest] = reference.split("/");
    const model = rest.join("/");
    const found = providers[providerName ?? ""];
    if (found === undefined) {
      context.addIssue({ code: "custom", path, message: `"${reference}" names provider "${providerName}", which is not in llm.providers (${Object.keys(providers).join(", ") || "none"})` });
    } else if (!found.models.includes(model)) {
      context.addIssue({ code: "custom", path, message: `"${reference}": provider ${providerName} does not list model "${model}" (it has ${found.models.join(", ")})` });
    }
  };
  if (value.llm.default !== undefined) modelRef(value.llm.default, ["llm", "default"]);
  for (const [alias, target] of Object.entries(value.llm.aliases)) modelRef(target, ["llm", "aliases", alias]);
  for (const [name, entry] of Object.entries(providers)) {
    if (entry.failoverTo !== undefined && providers[entry.failoverTo] === undefined) {
      context.addIssue({ code: "custom", path: ["llm", "providers", name, "failoverTo"], message: `failover provider "${entry.failoverTo}" is not in llm.providers` });
    }
  }
}

function checkCostBudgets(value: PerimeterConfig, context: Context): void {
  value.llm.clients.forEach((client, index) => {
    // A cost budget counts only priced requests: over an unpriced provider it would silently never trip.
    const costBudgets = (["costPerDay", "costTotal"] as const).filter((budget) => client.budget[budget] !== undefined);
    const unpriced = costBudgets.length === 0 ? [] : unpricedProvidersFor(value.llm, client.models);
    if (unpriced.length > 0) {
      context.addIssue({
        code: "custom",
        path: ["llm", "clients", index, "budget"],
        message: `client ${client.name} has a cost budget (${costBudgets.join(", ")}) but may use models whose spending cannot be counted: ${describeUnpriced(unpriced)}; ${pricingFix(unpriced)}, or restrict the client's models to priced providers`,
      });
    }
  });
}

function checkApprovalTools(value: PerimeterConfig, context: Context): void {
  const servers = Object.keys(value.mcp.servers);
  // The admin token is one person however many names its holder types; each Telegram approver is one more.
  const deciders = 1 + new Set(value.approvals.telegram?.approvers ?? []).size;
  value.approvals.tools.forEach((entry, index) => {
    const tool = typeof entry === "string" ? entry : entry.tool;
    if (typeof entry !== "string" && entry.approvers > deciders) {
      context.addIssue({
        code: "custom",
        path: ["approvals", "tools", index, "approvers"],
        message: `"${tool}" needs ${entry.approvers} distinct approvers but only ${deciders} can decide (the admin token counts as one, plus each approvals.telegram.approvers id): add approvers or lower the number`,
      });
    }
    const server = tool.split("__")[0] ?? "";
    if (!tool.includes("__") || !servers.some((name) => globMatches(server, name))) {
      context.addIssue({ code: "custom", path: ["approvals", "tools", index], message: `"${tool}" must be <server>__<tool> for a server in mcp.servers (${servers.join(", ") || "none defined"})` });
    }
  });
}

function checkTelegramApprover(value: PerimeterConfig, context: Context): void {
  const telegram = value.approvals.telegram;
  if (telegram === undefined) return;
  // The agent holds its own platform tokens: as the approver bot's token, the agent could read the buttons' callbacks
  // and answer them itself. Its other credentials are refused for the same reason.
  const agentSecrets = new Map<string, string>();
  for (const [name, platform] of Object.entries(value.agent.platforms)) {
    if (platform === undefined) continue;
    agentSecrets.set(platform.tokenSecret, `agent.platforms.${name}.tokenSecret`);
    for (const extra of platform.extraSecrets) agentSecrets.set(extra, `agent.platforms.${name}.extraSecrets`);
  }
  for (const entry of value.mcp.agents) agentSecrets.set(entry.tokenSecret, `mcp.agents ${entry.name} tokenSecret`);
  for (const [key, name] of [["tokenSecret", telegram.tokenSecret], ["proxyTokenSecret", telegram.proxyTokenSecret]] as const) {
    const owner = name === undefined ? undefined : agentSecrets.get(name);
    if (owner !== undefined) {
      context.addIssue({
        code: "custom",
        path: ["approvals", "telegram", key],
        message: `${name} is the agent's (${owner}): the agent holds it and could read or answer the approval buttons itself; create a separate bot with @BotFather and name its token's variable here`,
      });
    }
  }
  if (new Set(telegram.approvers).size !== telegram.approvers.length) {
    context.addIssue({ code: "custom", path: ["approvals", "telegram", "approvers"], message: "an approver is listed twice: each id is one person" });
  }
}
