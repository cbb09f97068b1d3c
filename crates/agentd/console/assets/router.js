// History-API routing under /console/: a table of path patterns to page
// modules. A page's render() may return a cleanup function (timers).

const routes = [];
let cleanup = null;
let renderCount = 0;

/** `pattern` like "/agents/:id/jobs"; `load` returns the page module. */
export function route(pattern, load) {
  const names = [];
  const source = pattern.replace(/:([a-z]+)/g, (_, name) => { names.push(name); return "([^/]+)"; });
  routes.push({ regex: new RegExp(`^${source}/?$`), names, load });
}

export function consolePath() {
  const path = window.location.pathname.replace(/^\/console/, "");
  return path === "" ? "/" : path;
}

export function navigate(path, { replace = false } = {}) {
  const url = `/console${path}`;
  if (replace) history.replaceState(null, "", url);
  else history.pushState(null, "", url);
  return render();
}

/** Renders the page of the current URL into <main>. */
export async function render(context) {
  if (context) render.context = context;
  const current = ++renderCount;
  if (cleanup) { cleanup(); cleanup = null; }
  const path = consolePath();
  const main = document.getElementById("main");
  for (const { regex, names, load } of routes) {
    const match = regex.exec(path);
    if (!match) continue;
    const params = Object.fromEntries(names.map((name, i) => [name, decodeURIComponent(match[i + 1])]));
    try {
      const page = await load();
      if (current !== renderCount) return;
      main.replaceChildren();
      const result = await page.render(main, params, render.context);
      if (current !== renderCount) { if (typeof result === "function") result(); return; }
      cleanup = typeof result === "function" ? result : null;
    } catch (error) {
      if (current !== renderCount) return;
      showFailure(main, error);
    }
    // Keyboard users start in the new page, unless it focused a field itself.
    if (!main.contains(document.activeElement)) main.focus({ preventScroll: true });
    return;
  }
  main.replaceChildren();
  const heading = document.createElement("h1");
  heading.textContent = "Page not found";
  main.append(heading);
}

/** A page that could not be shown says why instead of staying blank. */
function showFailure(main, error) {
  const heading = document.createElement("h1");
  heading.textContent = "This page could not be loaded";
  const message = document.createElement("p");
  message.className = "error";
  message.id = "page-error";
  message.setAttribute("role", "alert");
  message.textContent = error?.message || String(error);
  main.replaceChildren(heading, message);
}

/** Same-origin links under /console/ navigate without a page load. */
export function interceptLinks() {
  document.addEventListener("click", (event) => {
    const link = event.target.closest("a[href]");
    if (!link || link.target || link.hasAttribute("download")) return;
    if (event.button !== 0 || event.metaKey || event.ctrlKey || event.shiftKey || event.altKey) return;
    const url = new URL(link.href);
    if (url.origin !== window.location.origin || !url.pathname.startsWith("/console/")) return;
    event.preventDefault();
    clearFlash();
    history.pushState(null, "", url.pathname + url.search);
    render();
  });
  window.addEventListener("popstate", () => { clearFlash(); render(); });
}

function clearFlash() {
  const box = document.getElementById("flash");
  if (box) box.textContent = "";
}
