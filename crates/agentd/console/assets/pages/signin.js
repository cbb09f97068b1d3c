// Sign in with an API key; the key stays in this tab's session storage.

import { api, storeKey } from "../api.js";
import { field, flash, h } from "../dom.js";
import { navigate } from "../router.js";

export function render(main, _params, context) {
  const keyInput = h("input", { type: "password", name: "api_key", autocomplete: "off", required: true, spellcheck: "false" });
  const error = h("p", { class: "error", id: "signin-error", role: "alert" });
  const submit = h("button", { type: "submit", class: "primary" }, "Sign in");
  const form = h("form", { class: "panel signin", "aria-labelledby": "signin-title" },
    h("h1", { id: "signin-title" }, "Sign in to agentd"),
    field("API key", keyInput, "Kept in this browser tab only (session storage) and sent to this server only."),
    error,
    h("div", { class: "actions" }, submit));
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    error.textContent = "";
    const key = keyInput.value.trim();
    if (!key) {
      error.textContent = "Enter an API key.";
      return;
    }
    submit.disabled = true;
    try {
      const user = await api.currentUser(key);
      storeKey(key);
      flash("");
      context.signedIn(user);
      const next = new URLSearchParams(window.location.search).get("next");
      navigate(next && next.startsWith("/") && !next.startsWith("//") ? next : "/", { replace: true });
    } catch (failure) {
      error.textContent = failure.status === 401
        ? `This API key was not accepted: ${failure.message}`
        : failure.message;
      keyInput.setAttribute("aria-invalid", "true");
      keyInput.focus();
    } finally {
      submit.disabled = false;
    }
  });
  main.append(form);
  keyInput.focus();
}
