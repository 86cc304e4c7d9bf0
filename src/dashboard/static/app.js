// Progressive enhancement only: every page works without this file (forms post, links page). With it, held calls
// count down, the audit log tails live over server-sent events, and the chain status and approvals refresh.
"use strict";

function countdowns() {
  for (const element of document.querySelectorAll("time.countdown[data-expires]")) {
    const expires = Date.parse(element.dataset.expires || "");
    if (Number.isNaN(expires)) continue;
    const left = Math.max(0, Math.round((expires - Date.now()) / 1000));
    element.textContent = left === 0 ? "expired" : `${left} s`;
  }
}

function editing() {
  const active = document.activeElement;
  return active !== null && (active.tagName === "INPUT" || active.tagName === "TEXTAREA") && active.value !== "";
}

async function refreshChain() {
  try {
    const response = await fetch("/chain-status", { credentials: "same-origin", cache: "no-store" });
    if (!response.ok) return;
    const fresh = new DOMParser().parseFromString(await response.text(), "text/html").getElementById("chain-status");
    const current = document.getElementById("chain-status");
    if (fresh !== null && current !== null && fresh.innerHTML !== current.innerHTML) current.replaceWith(fresh);
  } catch {
    // offline for a moment: the next round tries again
  }
}

async function refreshApprovals() {
  const section = document.querySelector("[data-live=approvals]");
  if (section === null || editing()) return;
  try {
    const page = await fetch(location.pathname, { credentials: "same-origin", cache: "no-store" });
    const fresh = new DOMParser().parseFromString(await page.text(), "text/html").querySelector("[data-live=approvals]");
    if (fresh !== null && fresh.innerHTML !== section.innerHTML) section.innerHTML = fresh.innerHTML;
    countdowns();
  } catch {
    // try again on the next event
  }
}

function liveTail() {
  const live = document.getElementById("live");
  const body = document.getElementById("records");
  const query = live ? live.dataset.query || "" : "";
  const after = live ? live.dataset.after || "" : "";
  const source = new EventSource(`/events?after=${encodeURIComponent(after)}${query === "" ? "" : `&${query}`}`);
  source.addEventListener("record", (event) => {
    if (live === null || body === null) return;
    const record = JSON.parse(event.data);
    const template = document.createElement("template");
    // The server rendered and escaped this row exactly as on a full page.
    template.innerHTML = record.html;
    const row = template.content.firstElementChild;
    if (row === null) return;
    row.classList.add("fresh");
    body.prepend(row);
    while (body.rows.length > 500) body.deleteRow(body.rows.length - 1);
  });
  source.addEventListener("approvals", () => void refreshApprovals());
}

document.addEventListener("DOMContentLoaded", () => {
  if (document.body.dataset.csrf === "") return;
  countdowns();
  setInterval(countdowns, 1000);
  setInterval(refreshChain, 2000);
  liveTail();
  // Held calls opened elsewhere (no audit event reaches a page that is not tailing them yet) still appear.
  setInterval(refreshApprovals, 3000);
});
