// Full-screen viewer: ←/→ keys, swipe, Escape; video plays the original (the server answers Range
// requests, so seeking works); "i" toggles the info panel read from GET /assets/{id}.
// Live Photos (the MOV's original) and Motion Photos (GET /assets/{id}/motion) play over the still on
// request.  Types browsers cannot decode (HEIC, JPEG XL, TIFF, RAW) show the server's preview instead.
import { api } from "./api.js";
import { h, size, dateTime, errorBox } from "./format.js";

// Image types every current browser decodes; anything else is shown through its preview thumbnail.
// AVIF is here because most browsers decode it; where one cannot, the image's error falls back too.
const DISPLAYABLE = new Set(["image/jpeg", "image/png", "image/gif", "image/webp", "image/bmp", "image/avif", "image/svg+xml"]);
const PREVIEW_RETRY_MS = 3000;
// About two minutes of asking: a thumbnail job that failed (a corrupt file) never makes one.
const PREVIEW_TRIES = 40;

export function browserCanShow(mime) { return DISPLAYABLE.has((mime || "").toLowerCase()); }

const SOURCES = { exif: "EXIF", quicktime: "video metadata", filename: "file name", sidecar: "the imported metadata (e.g. Google Takeout)", mtime: "file modification time", upload: "upload time" };

export function openViewer({ items, index, originalUrl, thumbUrl, more, onClose }) {
  let i = index;
  let infoOpen = matchMedia("(min-width: 900px)").matches;
  const stage = h("div", { class: "stage" });
  const info = h("aside", { class: "info", id: "viewer-info", "aria-label": "Details" });
  const counter = h("span", { class: "counter", "aria-live": "polite" });
  const prev = h("button", { class: "nav prev", "aria-label": "Previous", onclick: () => step(-1) }, "‹");
  const next = h("button", { class: "nav next", "aria-label": "Next", onclick: () => step(1) }, "›");
  const infoBtn = h("button", { "aria-controls": "viewer-info", "aria-expanded": String(infoOpen), onclick: toggleInfo }, "Details");
  const playLabel = h("span", {}, "Play live");
  const play = h("button", { class: "play-motion", hidden: true, onclick: () => playMotion() }, h("span", { "aria-hidden": "true" }, "▶ "), playLabel);
  const dl = h("a", { class: "button", download: "", title: "Download the original file" }, "Download");
  const close = h("button", { "aria-label": "Close", title: "Close (Esc)", onclick: done }, "✕");
  const root = h("div", { class: "viewer", id: "viewer", role: "dialog", "aria-modal": "true", "aria-label": "Viewer", tabindex: "-1" },
    h("div", { class: "viewer-bar" }, counter, play, infoBtn, dl, close),
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

  let retry = null;

  // The motion part of a Live Photo (its MOV) or a Motion Photo (the MP4 inside the JPEG), or null.
  function motionUrl(item) {
    if (item.live_video_id != null) return originalUrl(item.live_video_id);
    if (item.motion_photo) return `/api/v1/assets/${item.id}/motion`;
    return null;
  }

  function playMotion() {
    const item = items[i];
    const url = motionUrl(item);
    if (!url || stage.querySelector("video.motion")) return;
    const under = [...stage.children];
    const video = h("video", { class: "motion", src: url, autoplay: true, playsinline: true, "aria-label": `${item.filename} (motion)` });
    const back = () => {
      if (!video.isConnected) return;
      video.remove();
      under.forEach((el) => el.classList.remove("under"));
      play.disabled = false;
      play.focus();
    };
    // The still stays until the first frame is up, so there is never a black gap.
    video.addEventListener("playing", () => under.forEach((el) => el.classList.add("under")), { once: true });
    video.addEventListener("ended", back);
    video.addEventListener("error", () => { back(); play.disabled = true; play.title = "This motion clip could not be played"; });
    play.disabled = true;
    stage.append(video);
    video.play().catch(() => {});
  }

  // A still the browser cannot decode: its preview, or a placeholder until the thumbnail job has made it.
  function previewOf(item) {
    const headline = h("p", {}, "Preview being made…");
    const box = h("div", { class: "preview-wait", role: "status" }, headline,
      h("p", { class: "muted" }, `${item.mime || "This file"} cannot be shown by the browser; the original is kept and can be downloaded.`));
    const img = h("img", { alt: item.filename, hidden: true });
    const load = () => { img.src = `${thumbUrl(item.id, "preview")}&t=${Date.now()}`; };
    img.addEventListener("load", () => { img.hidden = false; box.remove(); });
    let tries = 0;
    img.addEventListener("error", () => {
      if (!img.isConnected) return;
      if (++tries >= PREVIEW_TRIES) { headline.textContent = "No preview could be made; use Download for the original."; return; }
      retry = setTimeout(load, PREVIEW_RETRY_MS);
    });
    if (item.has_thumbnail) img.src = thumbUrl(item.id, "preview"); else load();
    return [img, box];
  }

  function show() {
    clearTimeout(retry);
    const item = items[i];
    counter.textContent = `${i + 1} / ${items.length}${item ? " · " + item.filename : ""}`;
    prev.disabled = i === 0;
    dl.href = originalUrl(item.id);
    let media;
    if (item.kind === "video") {
      media = h("video", { src: originalUrl(item.id), controls: true, autoplay: true, playsinline: true, preload: "metadata",
        poster: item.has_thumbnail ? thumbUrl(item.id, "preview") : null, "aria-label": item.filename });
    } else if (item.kind === "image" && !browserCanShow(item.mime)) {
      media = previewOf(item);
    } else {
      media = h("img", { src: item.has_thumbnail ? thumbUrl(item.id, "preview") : originalUrl(item.id), alt: item.filename });
      // An original this browser turns out not to decode (AVIF in an old one) goes through the preview path.
      media.addEventListener("error", () => { if (items[i] === item && !item.has_thumbnail) stage.replaceChildren(...previewOf(item)); }, { once: true });
    }
    stage.replaceChildren(...[media].flat());
    const motion = item.kind === "image" ? motionUrl(item) : null;
    play.hidden = !motion;
    play.disabled = false;
    playLabel.textContent = item.live_video_id != null ? "Play live" : "Play motion";
    play.title = item.live_video_id != null ? "Play the Live Photo's video" : "Play the Motion Photo's video";
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
    clearTimeout(retry);
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
  const files = (d.files || []).map((f) => h("li", {}, h("strong", {}, f.device_name || "web upload"), h("br"), h("code", {}, f.path),
    // A name that is not UTF-8 shows its other bytes as \xNN; the server keeps the exact bytes for a restore.
    f.path_raw ? h("div", { class: "muted" }, "The name on the device is not UTF-8 text; its exact bytes are kept.") : null));
  return h("div", {},
    h("h2", {}, d.favorite ? h("span", { class: "favorite", title: "Favourite", "aria-label": "Favourite" }, "★ ") : null, d.filename),
    d.description ? h("p", { class: "caption" }, d.description) : null,
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
