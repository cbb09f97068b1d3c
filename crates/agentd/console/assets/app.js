// Entry point: sign-in state, the header, and the page table.

import { api, forgetKey, onUnauthorized, storedKey } from "./api.js";
import { flash, h, replace } from "./dom.js";
import { consolePath, interceptLinks, navigate, render, route } from "./router.js";

const context = { user: null };

route("/", () => import("./pages/agents.js"));
route("/signin", () => import("./pages/signin.js"));
route("/agents/new", () => import("./pages/agent_form.js"));
route("/agents/:id", () => import("./pages/agent.js"));
route("/agents/:id/edit", () => import("./pages/agent_form.js"));
route("/agents/:id/playground", () => import("./pages/playground.js"));
route("/agents/:id/jobs", () => import("./pages/jobs.js"));
route("/agents/:id/jobs/:job", () => import("./pages/job.js"));
route("/agents/:id/batch", () => import("./pages/batch.js"));
route("/usage", () => import("./pages/usage.js"));

const NAV = [["/", "Agents"], ["/usage", "Usage"]];

function renderHeader() {
  const nav = document.getElementById("nav");
  const who = document.getElementById("who");
  if (!context.user) {
    nav.replaceChildren();
    who.replaceChildren();
    return;
  }
  const path = consolePath();
  replace(nav, NAV.map(([target, label]) => {
    const active = target === "/" ? path === "/" || path.startsWith("/agents") : path.startsWith(target);
    return h("a", { href: `/console${target}`, "aria-current": active ? "page" : null }, label);
  }));
  const scopes = context.user.scopes?.length ? context.user.scopes : ["all (unrestricted key)"];
  replace(who,
    h("span", { id: "org-name", title: context.user.organization_id }, context.user.organization_name || context.user.organization_id),
    h("span", { class: "scopes", id: "key-scopes", "aria-label": "Key scopes" }, scopes.map((s) => h("span", { class: "badge" }, s))),
    h("button", { type: "button", id: "sign-out", onclick: () => signOut("You are signed out.") }, "Sign out"));
}

/** Forgets the key and shows the sign-in page with `message`. */
export function signOut(message, kind = "info") {
  forgetKey();
  context.user = null;
  renderHeader();
  navigate("/signin", { replace: true }).then(() => flash(message, kind));
}

/** Called by the sign-in page once a key is accepted. */
context.signedIn = (user) => {
  context.user = user;
  renderHeader();
};

async function start() {
  interceptLinks();
  onUnauthorized((message) => signOut(`Signed out: ${message}`, "error"));
  window.addEventListener("popstate", renderHeader);
  document.addEventListener("click", () => queueMicrotask(renderHeader));
  // A failure no page handles still shows a message, never a blank page.
  window.addEventListener("unhandledrejection", (event) => flash(event.reason?.message || String(event.reason)));
  if (storedKey()) {
    try {
      context.user = await api.currentUser();
    } catch (error) {
      if (error.status !== 401) flash(error.message);
    }
  }
  renderHeader();
  if (!context.user && consolePath() !== "/signin") {
    const next = consolePath();
    history.replaceState(null, "", `/console/signin${next !== "/" ? `?next=${encodeURIComponent(next)}` : ""}`);
  }
  await render(context);
}

start();
