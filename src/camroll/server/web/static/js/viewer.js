// Full-screen viewer: ←/→ keys, swipe, Escape; video plays the original (the server answers Range
// requests, so seeking works); "i" toggles the info panel read from GET /assets/{id}.
import { api } from "./api.js";
import { h, size, dateTime, errorBox } from "./format.js";

const SOURCES = { exif: "EXIF", quicktime: "video metadata", filename: "file name", mtime: "file modification time", upload: "upload time" };

export function openViewer({ items, index, originalUrl, thumbUrl, more, onClose }) {
  let i = index;
  let infoOpen = matchMedia("(min-width: 900px)").matches;
  const stage = h("div", { class: "stage" });
  const info = h("aside", { class: "info", id: "viewer-info", "aria-label": "Details" });
  const counter = h("span", { class: "counter", "aria-live": "polite" });
  const prev = h("button", { class: "nav prev", "aria-label": "Previous", onclick: () => step(-1) }, "‹");
  const next = h("button", { class: "nav next", "aria-label": "Next", onclick: () => step(1) }, "›");
  const infoBtn = h("button", { "aria-controls": "viewer-info", "aria-expanded": String(infoOpen), onclick: toggleInfo }, "Details");
  const dl = h("a", { class: "button", download: "", title: "Download the original file" }, "Download");
  const close = h("button", { "aria-label": "Close", title: "Close (Esc)", onclick: done }, "✕");
  const root = h("div", { class: "viewer", id: "viewer", role: "dialog", "aria-modal": "true", "aria-label": "Viewer", tabindex: "-1" },
    h("div", { class: "viewer-bar" }, counter, infoBtn, dl, close),
    stage, prev, next, info);
  root.classList.toggle("with-info", infoOpen);
  document.body.append(root);
  document.body.classList.add("no-scroll");

  function toggleInfo() {
    infoOpen = !infoOpen;
    root.classList.toggle("with-info", infoOpen);
    infoBtn.setAttribute("aria-expanded", String(infoOpen));
    if (infoOpen) loadInfo(items[i]);
  }

  function show() {
    const item = items[i];
    counter.textContent = `${i + 1} / ${items.length}${item ? " · " + item.filename : ""}`;
    prev.disabled = i === 0;
    dl.href = originalUrl(item.id);
    let media;
    if (item.kind === "video") {
      media = h("video", { src: originalUrl(item.id), controls: true, autoplay: true, playsinline: true, preload: "metadata",
        poster: item.has_thumbnail ? thumbUrl(item.id, "preview") : null, "aria-label": item.filename });
    } else {
      media = h("img", { src: item.has_thumbnail ? thumbUrl(item.id, "preview") : originalUrl(item.id), alt: item.filename });
    }
    stage.replaceChildren(media);
    root.dataset.id = String(item.id);
    if (infoOpen) loadInfo(item);
  }

  async function loadInfo(item) {
    info.replaceChildren(h("p", { class: "muted" }, "Loading details…"));
    try {
      const d = await api(`/assets/${item.id}`);
      if (items[i].id !== item.id) return;
      info.replaceChildren(details(d, item));
    } catch (err) {
      info.replaceChildren(errorBox(err));
    }
  }

  async function step(delta) {
    let target = i + delta;
    if (target >= items.length && more) items = await more();
    if (target < 0 || target >= items.length) return;
    i = target;
    show();
  }

  function onKey(e) {
    if (e.key === "ArrowRight") { e.preventDefault(); step(1); }
    else if (e.key === "ArrowLeft") { e.preventDefault(); step(-1); }
    else if (e.key === "Escape") { e.preventDefault(); done(); }
    else if (e.key === "i") toggleInfo();
  }

  let touchX = null;
  stage.addEventListener("touchstart", (e) => { touchX = e.touches.length === 1 ? e.touches[0].clientX : null; }, { passive: true });
  stage.addEventListener("touchend", (e) => {
    if (touchX == null) return;
    const dx = e.changedTouches[0].clientX - touchX;
    touchX = null;
    if (Math.abs(dx) > 50) step(dx < 0 ? 1 : -1);
  });

  function done() {
    document.removeEventListener("keydown", onKey);
    document.body.classList.remove("no-scroll");
    root.remove();
    if (onClose) onClose(items[i]);
  }

  document.addEventListener("keydown", onKey);
  show();
  root.focus();
}

function row(label, ...value) { return [h("dt", {}, label), h("dd", {}, ...value)]; }

function details(d, item) {
  const m = d.metadata || {};
  const when = m.capture_time || item.capture_time;
  const source = m.capture_time_source || item.capture_time_source;
  // Many models already start with the make ("Pixel" + "Pixel 8"): don't say it twice.
  const make = m.camera_make && !(m.camera_model || "").toLowerCase().startsWith(m.camera_make.toLowerCase()) ? m.camera_make : null;
  const camera = [make, m.camera_model].filter(Boolean).join(" ");
  const dims = (m.width || item.width) ? `${m.width || item.width} × ${m.height || item.height}` : null;
  const place = m.latitude != null && m.longitude != null ? `${m.latitude.toFixed(5)}, ${m.longitude.toFixed(5)}` : null;
  const files = (d.files || []).map((f) => h("li", {}, h("strong", {}, f.device_name || "web upload"), h("br"), h("code", {}, f.path)));
  return h("div", {},
    h("h2", {}, d.filename),
    h("dl", {},
      row("Taken", dateTime(when), h("br"), h("span", { class: "muted" }, `from ${SOURCES[source] || source || "unknown"}`)),
      camera ? row("Camera", camera, m.lens ? h("span", { class: "muted" }, ` · ${m.lens}`) : null) : null,
      place ? row("Place", place, m.altitude != null ? h("span", { class: "muted" }, ` · ${Math.round(m.altitude)} m`) : null) : null,
      dims ? row("Dimensions", dims) : null,
      m.duration_s != null ? row("Duration", `${m.duration_s.toFixed(1)} s`, m.frame_rate ? ` at ${Math.round(m.frame_rate)} fps` : "") : null,
      row("Size", size(d.size), h("span", { class: "muted" }, ` · ${d.mime || "unknown type"}`)),
      row("SHA-256", h("code", { class: "hash" }, d.sha256)),
      row("Backed up", dateTime(d.created_at)),
      row("On devices", h("ul", { class: "files" }, files.length ? files : h("li", { class: "muted" }, "no device paths recorded"))),
      d.job_error || m.error ? row("Problem", d.job_error || m.error) : null));
}
