// Devices: each device's backup health as the server sees it (heartbeats and uploads).
import { api } from "./api.js";
import { h, ago, size, dateTime, errorBox } from "./format.js";
import { columns } from "./charts.js";

const STATES = {
  idle: ["ok", "Up to date"], backing_up: ["busy", "Backing up"], paused: ["warn", "Paused"],
  stopped: ["bad", "Stopped"], error: ["bad", "Error"], silent: ["bad", "Not heard from"], never_seen: ["idle", "Never connected"],
};

export async function render(main) {
  main.append(h("div", { class: "page-head" }, h("h1", {}, "Devices")));
  let devices;
  try {
    devices = await api("/devices");
  } catch (err) {
    main.append(errorBox(err));
    return;
  }
  const live = devices.filter((d) => !d.revoked);
  if (!live.length) {
    main.append(h("p", { class: "muted" }, "No devices yet. Run 'camroll login SERVER --user NAME' on a computer or phone to add one."));
    return;
  }
  main.append(h("div", { class: "cards", id: "devices" }, live.map(card)));
}

function card(d) {
  const health = d.health;
  if (!health) {
    return h("article", { class: "card device", dataset: { device: d.name } }, h("h2", {}, d.name),
      h("p", { class: "muted" }, `${d.platform || "unknown platform"} · last seen ${ago(d.last_seen_at)}`),
      h("p", { class: "muted" }, "This server does not report device health yet."));
  }
  const [tone, word] = STATES[health.state] || ["idle", health.state];
  const problems = health.problems?.length || 0;
  return h("article", { class: `card device tone-${tone}`, dataset: { device: d.name, state: health.state } },
    h("div", { class: "device-head" }, h("h2", {}, d.name), h("span", { class: `pill ${tone}` }, health.stalled ? "Stalled" : word)),
    h("p", { class: "headline" }, health.headline),
    health.blocker ? h("p", { class: "blocker", role: "note" }, h("strong", {}, "Blocked: "), health.blocker) : null,
    h("dl", { class: "facts" },
      h("dt", {}, "Last seen"), h("dd", { title: dateTime(health.last_heartbeat_at || d.last_seen_at) }, ago(health.last_heartbeat_at || d.last_seen_at)),
      h("dt", {}, "Last upload"), h("dd", { title: dateTime(health.last_upload_at) }, ago(health.last_upload_at)),
      h("dt", {}, "Waiting"), h("dd", {}, `${health.pending_files} files · ${size(health.pending_bytes)}`),
      h("dt", {}, "Backed up"), h("dd", {}, `${health.backed_up_files} files`),
      h("dt", {}, "Failed"), h("dd", {}, problems ? h("a", { href: "#/problems" }, `${health.failed_files} files (see Problems)`) : String(health.failed_files)),
      h("dt", {}, "Agent"), h("dd", {}, `${health.agent_version || "—"} · ${d.platform || "unknown platform"}`)),
    health.uploads_per_day?.length
      ? h("figure", { class: "per-day" }, columns(health.uploads_per_day.map((p) => ({ label: p.date, value: p.files })), `Uploads per day, ${d.name}`),
        h("figcaption", { class: "muted" }, `Uploads per day, last ${health.uploads_per_day.length} days`))
      : null);
}
