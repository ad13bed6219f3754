// Devices: each device's backup health as the server sees it (heartbeats and uploads).
import { api } from "./api.js";
import { h, ago, size, dateTime, errorBox, plural } from "./format.js";
import { columns } from "./charts.js";

const DAYS = 14;
const STATES = {
  idle: ["ok", "Up to date"], backing_up: ["busy", "Backing up"], paused: ["warn", "Paused"],
  stopped: ["bad", "Stopped"], error: ["bad", "Error"], silent: ["bad", "Not heard from"], never_seen: ["idle", "Never connected"],
};

export async function render(main) {
  main.append(h("div", { class: "page-head" }, h("h1", {}, "Devices")));
  let devices, activity;
  try {
    [devices, activity] = await Promise.all([api("/devices"), api(`/activity/uploads?days=${DAYS}`).catch(() => [])]);
  } catch (err) {
    main.append(errorBox(err));
    return;
  }
  const perDevice = new Map(activity.map((a) => [a.device_id, a.days]));
  const live = devices.filter((d) => !d.revoked);
  if (!live.length) {
    main.append(h("p", { class: "muted" }, "No devices yet. Run 'camroll login SERVER --user NAME' on a computer or phone to add one."));
    return;
  }
  main.append(h("div", { class: "cards", id: "devices" }, live.map((d) => card(d, perDevice.get(d.id) || []))));
}

function card(d, days) {
  const health = d.health;
  if (!health) {
    return h("article", { class: "card device", dataset: { device: d.name } }, h("h2", {}, d.name),
      h("p", { class: "muted" }, `${d.platform || "unknown platform"} · last seen ${ago(d.last_seen_at)}`),
      h("p", { class: "muted" }, "This server does not report device health yet."), chart(d, days));
  }
  const [tone, word] = verdict(health);
  const problems = health.problems?.length || 0;
  return h("article", { class: `card device tone-${tone}`, dataset: { device: d.name, state: health.state } },
    h("div", { class: "device-head" }, h("h2", {}, d.name), h("span", { class: `pill ${tone}` }, health.stalled ? "Stalled" : word)),
    h("p", { class: "headline" }, health.headline),
    health.blocker ? h("p", { class: "blocker", role: "note" }, h("strong", {}, "Blocked: "), health.blocker) : null,
    h("dl", { class: "facts" },
      h("dt", {}, "Last seen"), h("dd", { title: dateTime(health.last_heartbeat_at || d.last_seen_at) }, ago(health.last_heartbeat_at || d.last_seen_at)),
      h("dt", {}, "Last upload"), h("dd", { title: dateTime(health.last_upload_at) }, ago(health.last_upload_at)),
      h("dt", {}, "Waiting"), h("dd", {}, `${plural(health.pending_files, "file")} · ${size(health.pending_bytes)}`),
      h("dt", {}, "Backed up"), h("dd", {}, plural(health.backed_up_files, "file")),
      h("dt", {}, "Failed"), h("dd", {}, problems && health.failed_files ? h("a", { href: "#/problems" }, `${plural(health.failed_files, "file")} (see Problems)`) : String(health.failed_files)),
      h("dt", {}, "Skipped"), h("dd", {}, problems && health.skipped_files ? h("a", { href: "#/problems" }, `${plural(health.skipped_files, "file")} (see Problems)`) : String(health.skipped_files)),
      h("dt", {}, "Left out"), h("dd", { title: "Hidden files, Android's trash and files your include/exclude settings keep out: by choice, not problems." }, plural(health.left_out_files || 0, "file")),
      h("dt", {}, "Agent"), h("dd", {}, `${health.agent_version || "—"} · ${d.platform || "unknown platform"}`)),
    chart(d, days));
}

// An idle agent with files it could not back up is not "Up to date": the card says so in its colour.
function verdict(health) {
  if (health.state === "idle" && !health.stalled) {
    if (health.failed_files) return ["bad", `${plural(health.failed_files, "file")} failing`];
    if (health.skipped_files) return ["warn", `${plural(health.skipped_files, "file")} skipped`];
  }
  return STATES[health.state] || ["idle", health.state];
}

// The last DAYS days (UTC) as columns, days without uploads as flat ones.
function chart(d, days) {
  const byDate = new Map(days.map((p) => [p.date, p.files]));
  const points = [];
  for (let k = DAYS - 1; k >= 0; k--) {
    const date = new Date(Date.now() - k * 86400000).toISOString().slice(0, 10);
    points.push({ label: date, value: byDate.get(date) || 0 });
  }
  const total = points.reduce((n, p) => n + p.value, 0);
  return h("figure", { class: "per-day" }, columns(points, `Uploads per day from ${d.name}, last ${DAYS} days`),
    h("figcaption", { class: "muted" }, `${plural(total, "file")} uploaded in the last ${DAYS} days`));
}
