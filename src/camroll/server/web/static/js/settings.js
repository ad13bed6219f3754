// Settings: change password, notification URLs (apprise), device tokens (revoke).
import { api, user } from "./api.js";
import { h, ago, dateTime, errorBox, toast } from "./format.js";

export async function render(main) {
  const me = user();
  main.append(h("div", { class: "page-head" }, h("h1", {}, "Settings"), me ? h("span", { class: "muted" }, `Signed in as ${me.username}`) : null));
  main.append(passwordCard(), h("div", { id: "notify-card" }), h("div", { id: "tokens-card" }));
  notifications(main.querySelector("#notify-card"));
  tokens(main.querySelector("#tokens-card"));
}

function field(id, label, attrs) {
  return [h("label", { for: id }, label), h("input", { id, name: id, ...attrs })];
}

function passwordCard() {
  const msg = h("div", { "aria-live": "polite" });
  const form = h("form", { class: "card", id: "password-form", "aria-labelledby": "pw-title" },
    h("h2", { id: "pw-title" }, "Password"),
    ...field("old-password", "Current password", { type: "password", autocomplete: "current-password", required: true }),
    ...field("new-password", "New password (8 characters or more)", { type: "password", autocomplete: "new-password", minlength: "8", required: true }),
    ...field("new-password-2", "New password again", { type: "password", autocomplete: "new-password", minlength: "8", required: true }),
    msg, h("button", { type: "submit", class: "primary" }, "Change password"));
  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    const [o, n, n2] = ["old-password", "new-password", "new-password-2"].map((id) => form.querySelector(`#${id}`));
    msg.replaceChildren();
    if (n.value !== n2.value) { msg.append(errorBox("The two new passwords differ; type the same one twice.")); return; }
    try {
      await api("/me/password", { method: "POST", body: { old: o.value, new: n.value } });
      form.reset();
      msg.append(h("p", { class: "ok-note" }, "Password changed. Other browser sessions were logged out; devices keep working."));
    } catch (err) {
      msg.append(errorBox(err));
    }
  });
  return form;
}

async function notifications(box) {
  const list = h("ul", { class: "rows", id: "notify-list" });
  const msg = h("div", { "aria-live": "polite" });
  const url = h("input", { id: "notify-url", name: "url", placeholder: "ntfys://ntfy.sh/my-topic", required: true, autocomplete: "off" });
  const form = h("form", { class: "inline-form" }, url, h("button", { type: "submit" }, "Add"));
  box.replaceWith(h("section", { class: "card", id: "notify-card", "aria-labelledby": "notify-title" },
    h("h2", { id: "notify-title" }, "Backup alerts"),
    h("p", { class: "muted" }, "camroll sends a message to these addresses when a device stops backing up. Any ",
      h("a", { href: "https://github.com/caronc/apprise/wiki", rel: "noreferrer" }, "apprise URL"), " works (ntfy, email, Matrix, Telegram…)."),
    list, h("label", { for: "notify-url" }, "New alert URL"), form, msg));
  async function load() {
    try {
      const targets = await api("/me/notifications");
      list.replaceChildren(...(targets.length ? targets.map((t) => h("li", {},
        h("span", {}, h("code", {}, t.url), t.last_error ? h("div", { class: "error-text" }, `Last message failed: ${t.last_error}`) : t.last_sent_at ? h("div", { class: "muted" }, `Last sent ${ago(t.last_sent_at)}`) : null),
        h("button", { class: "danger small", "aria-label": `Remove alert ${t.url}`, onclick: async () => { await api(`/me/notifications/${t.id}`, { method: "DELETE" }).catch((err) => toast(err.text)); load(); } }, "Remove")))
        : [h("li", { class: "muted" }, "No alert URLs yet.")]));
    } catch (err) {
      list.replaceChildren(errorBox(err));
      form.hidden = true;
    }
  }
  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    msg.replaceChildren();
    try {
      await api("/me/notifications", { method: "POST", body: { url: url.value.trim() } });
      url.value = "";
      load();
    } catch (err) {
      msg.append(errorBox(err));
    }
  });
  load();
}

async function tokens(box) {
  const list = h("ul", { class: "rows", id: "token-list" });
  box.replaceWith(h("section", { class: "card", id: "tokens-card", "aria-labelledby": "tokens-title" },
    h("h2", { id: "tokens-title" }, "Device tokens"),
    h("p", { class: "muted" }, "Each device backs up with its own token. Revoke a lost or retired device: it can no longer upload or read anything."),
    list));
  async function load() {
    try {
      const devices = await api("/devices");
      list.replaceChildren(...(devices.length ? devices.map((d) => h("li", { dataset: { device: d.name } },
        h("span", {}, h("strong", {}, d.name), h("div", { class: "muted" },
          `${d.platform || "unknown platform"} · added ${dateTime(d.created_at)} · ${d.revoked ? "revoked" : `last seen ${ago(d.last_seen_at)}`}`)),
        d.revoked ? h("span", { class: "pill idle" }, "Revoked")
          : h("button", { class: "danger small", "aria-label": `Revoke ${d.name}`, onclick: async () => {
            if (!confirm(`Revoke the token of ${d.name}? The device stops backing up until it logs in again.`)) return;
            await api(`/devices/${d.id}`, { method: "DELETE" }).catch((err) => toast(err.text));
            load();
          } }, "Revoke")))
        : [h("li", { class: "muted" }, "No devices.")]));
    } catch (err) {
      list.replaceChildren(errorBox(err));
    }
  }
  load();
}
