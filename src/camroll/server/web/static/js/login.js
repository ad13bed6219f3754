// Log in with username and password; the session token goes to localStorage.
import { api, saveSession } from "./api.js";
import { h, errorBox } from "./format.js";
import { go, resetMediaCookie } from "./app.js";

export function render(main) {
  const msg = h("div", { "aria-live": "assertive" });
  const user = h("input", { id: "username", name: "username", autocomplete: "username", required: true });
  const pass = h("input", { id: "password", name: "password", type: "password", autocomplete: "current-password", required: true });
  const button = h("button", { type: "submit", class: "primary" }, "Log in");
  const form = h("form", { class: "card login", "aria-labelledby": "login-title" },
    h("h1", { id: "login-title" }, h("img", { src: document.querySelector("link[rel=icon]").href, alt: "", width: 32, height: 32 }), " camroll"),
    h("label", { for: "username" }, "Username"), user,
    h("label", { for: "password" }, "Password"), pass,
    msg, button);
  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    button.disabled = true;
    msg.replaceChildren();
    try {
      const login = await api("/auth/login", { method: "POST", body: { username: user.value, password: pass.value } });
      saveSession(login);
      resetMediaCookie();
      go("#/timeline");
    } catch (err) {
      msg.replaceChildren(errorBox(err));
      pass.select();
    } finally {
      button.disabled = false;
    }
  });
  main.append(h("div", { class: "login-wrap" }, form));
  user.focus();
}
