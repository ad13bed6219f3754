// Storage: used against the quota, split by kind, as inline SVG.
import { api, missingFeature } from "./api.js";
import { h, size, errorBox, plural } from "./format.js";
import { stackedBar, legend } from "./charts.js";

const KINDS = { image: ["Photos", "k-image"], video: ["Videos", "k-video"], other: ["Other files", "k-other"] };

function percent(part, whole) {
  const p = (100 * part) / whole;
  return part > 0 && p < 1 ? "under 1%" : `${Math.round(p)}%`;
}

export async function render(main) {
  main.append(h("div", { class: "page-head" }, h("h1", {}, "Storage")));
  let info;
  try {
    info = await api("/storage");
  } catch (err) {
    if (!missingFeature(err)) { main.append(errorBox(err)); return; }
    const me = await api("/me");
    info = { used_bytes: me.used_bytes, quota_bytes: me.quota_bytes, by_kind: [], trashed_bytes: 0 };
    main.append(h("p", { class: "muted" }, "This server does not break storage down by kind yet (GET /api/v1/storage)."));
  }
  const parts = info.by_kind.filter((k) => k.files > 0).map((k) => ({
    label: `${KINDS[k.kind][0]}: ${size(k.bytes)} in ${plural(k.files, "file")}`, value: k.bytes, cls: KINDS[k.kind][1] }));
  if (info.trashed_bytes) parts.push({ label: `Trash: ${size(info.trashed_bytes)}`, value: info.trashed_bytes, cls: "k-trash" });
  if (!parts.length) parts.push({ label: `Used: ${size(info.used_bytes)}`, value: info.used_bytes, cls: "k-image" });
  const total = info.quota_bytes || Math.max(1, info.used_bytes + info.trashed_bytes);
  const headline = info.quota_bytes
    ? `${size(info.used_bytes)} of ${size(info.quota_bytes)} used (${percent(info.used_bytes, info.quota_bytes)})`
    : `${size(info.used_bytes)} used · no quota`;
  main.append(h("section", { class: "card", id: "storage" },
    h("p", { class: "big" }, headline),
    stackedBar(parts, total, headline),
    info.quota_bytes && info.used_bytes ? h("h2", { class: "sub" }, "What uses the space") : null,
    info.quota_bytes && info.used_bytes ? stackedBar(parts, Math.max(1, info.used_bytes + info.trashed_bytes), "Space by kind") : null,
    legend(parts),
    info.quota_bytes ? h("p", { class: "muted" }, `${size(Math.max(0, info.quota_bytes - info.used_bytes))} free.`) : null,
    info.trashed_bytes ? h("p", { class: "muted" }, "Files in the trash still count until they are removed 30 days after trashing.") : null));
  // Replicas (admins only): the second copies and what they still owe.
  if (info.replicas && info.replicas.length) {
    main.append(h("section", { class: "card", id: "replicas" },
      h("h2", { class: "sub" }, "Replicas"),
      ...info.replicas.map((r) => h("p", { class: r.failing ? "error" : "" },
        `${r.name}: ${r.paused ? "paused · " : ""}` +
        (r.backlog_files ? `${plural(r.backlog_files, "file")} (${size(r.backlog_bytes)}) waiting to be copied` +
          (r.oldest_pending ? ` since ${new Date(r.oldest_pending).toLocaleString()}` : "") : "every original copied") +
        (r.failing ? ` · failing: ${r.failing}` : "")))));
  }
}
