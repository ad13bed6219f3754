// The timeline: day sections of square tiles, paged in by cursor as the end comes near.
// Fast on a large library because only pages near the viewport are fetched, images load lazily, and
// day sections off screen are skipped by the browser's renderer (content-visibility: auto).
import { api, missingFeature, authHeaders, problemOf } from "./api.js";
import { h, dayTitle, dateTime, duration, errorBox, toast } from "./format.js";
import { openViewer } from "./viewer.js";

const PAGE = 200;

export function thumbUrl(id, size) { return `/api/v1/assets/${id}/thumbnail?size=${size}`; }
export function originalUrl(id) { return `/api/v1/assets/${id}/original`; }

export function render(main, params) {
  const state = { items: [], cursor: null, done: false, loading: false, selected: new Set(), anchor: null,
                  kind: params.get("kind") || "", lastDay: null, lastGrid: null, total: null };
  const count = h("span", { class: "muted", id: "count" });
  const kind = h("select", { id: "kind-filter", "aria-label": "Show" },
    h("option", { value: "" }, "Photos and videos"), h("option", { value: "image" }, "Photos only"),
    h("option", { value: "video" }, "Videos only"));
  kind.value = state.kind;
  kind.addEventListener("change", () => { location.hash = kind.value ? `#/timeline?kind=${kind.value}` : "#/timeline"; });
  const selCount = h("span", { id: "selection-count" });
  const bar = h("div", { class: "selection-bar", id: "selection-bar", hidden: true, role: "toolbar", "aria-label": "Selection" },
    selCount,
    h("button", { id: "download-selected", onclick: download }, "Download zip"),
    h("button", { id: "trash-selected", class: "danger", onclick: trash }, "Move to trash"),
    h("button", { id: "clear-selection", onclick: () => { state.selected.clear(); refreshSelection(); } }, "Clear"));
  const list = h("div", { id: "timeline", class: "timeline" });
  const status = h("div", { class: "status", "aria-live": "polite" });
  const sentinel = h("div", { class: "sentinel", "aria-hidden": "true" });
  main.append(h("div", { class: "page-head" }, h("h1", {}, "Photos"), count, kind), bar, list, status, sentinel);

  const observer = new IntersectionObserver((entries) => {
    if (entries.some((e) => e.isIntersecting)) loadMore();
  }, { rootMargin: "1500px 0px" });
  observer.observe(sentinel);

  async function loadMore() {
    if (state.loading || state.done) return;
    state.loading = true;
    status.textContent = "Loading…";
    const q = new URLSearchParams({ limit: String(PAGE) });
    if (state.cursor) q.set("cursor", state.cursor);
    if (state.kind) q.set("kind", state.kind);
    try {
      const page = await api(`/timeline?${q}`);
      state.cursor = page.next_cursor;
      state.done = !page.next_cursor;
      state.total = page.total;
      count.textContent = `${page.total} item${page.total === 1 ? "" : "s"}`;
      for (const day of page.days) addDay(day);
      status.textContent = state.items.length === 0
        ? "Nothing is backed up yet. Upload photos here or run the camroll agent on a device." : "";
      if (!state.done) requestAnimationFrame(() => { state.loading = false; if (nearEnd()) loadMore(); });
    } catch (err) {
      state.done = true;
      status.replaceChildren(errorBox(err));
      if (missingFeature(err)) status.append(h("p", { class: "muted" }, "The timeline needs the library API (GET /api/v1/timeline)."));
    } finally {
      if (state.done) state.loading = false;
    }
  }

  function nearEnd() { return sentinel.getBoundingClientRect().top < innerHeight + 1500; }

  function addDay(day) {
    if (state.lastDay !== day.date) {
      state.lastGrid = h("div", { class: "grid", role: "list", "aria-label": dayTitle(day.date) });
      list.append(h("section", { class: "day", dataset: { date: day.date } },
        h("h2", {}, dayTitle(day.date)), state.lastGrid));
      state.lastDay = day.date;
    }
    for (const item of day.items) {
      const index = state.items.length;
      state.items.push(item);
      state.lastGrid.append(tile(item, index));
    }
  }

  function tile(item, index) {
    const label = `${item.kind === "video" ? "Video" : "Photo"} ${item.filename}, ${dateTime(item.capture_time)}`;
    const inner = item.has_thumbnail
      ? h("img", { src: thumbUrl(item.id, "grid"), alt: "", loading: "lazy", decoding: "async" })
      : h("span", { class: "placeholder" }, h("span", { class: "ph-kind" }, item.kind === "video" ? "▶" : "▣"), h("span", { class: "ph-name" }, item.filename));
    const el = h("button", {
      class: "tile", role: "listitem", "aria-label": label, "aria-pressed": "false", title: item.filename,
      dataset: { index: String(index), id: String(item.id), kind: item.kind },
    }, inner,
      item.kind === "video" ? h("span", { class: "badge" }, "▶ ", duration(item.duration_s)) : null,
      item.live_video_id ? h("span", { class: "badge live" }, "LIVE") : null,
      h("span", { class: "check", "aria-hidden": "true" }, "✓"));
    return el;
  }

  function tileAt(i) { return list.querySelector(`.tile[data-index="${i}"]`); }

  function toggle(i, on) {
    const id = state.items[i].id;
    const want = on ?? !state.selected.has(id);
    if (want) state.selected.add(id); else state.selected.delete(id);
  }

  function refreshSelection() {
    for (const el of list.querySelectorAll(".tile")) {
      const on = state.selected.has(Number(el.dataset.id));
      el.classList.toggle("selected", on);
      el.setAttribute("aria-pressed", String(on));
    }
    bar.hidden = state.selected.size === 0;
    selCount.textContent = `${state.selected.size} selected`;
    list.classList.toggle("selecting", state.selected.size > 0);
  }

  function select(i, e) {
    if (e.shiftKey && state.anchor != null) {
      const [a, b] = [Math.min(state.anchor, i), Math.max(state.anchor, i)];
      for (let k = a; k <= b; k++) toggle(k, true);
    } else {
      toggle(i);
      state.anchor = i;
    }
    refreshSelection();
  }

  list.addEventListener("click", (e) => {
    const el = e.target.closest(".tile");
    if (!el) return;
    const i = Number(el.dataset.index);
    if (e.shiftKey || e.ctrlKey || e.metaKey || e.target.closest(".check") || state.selected.size > 0) select(i, e);
    else open(i);
  });

  list.addEventListener("keydown", (e) => {
    const el = e.target.closest(".tile");
    if (!el) return;
    const i = Number(el.dataset.index);
    const perRow = Math.max(1, Math.round(el.parentElement.clientWidth / el.offsetWidth));
    const moves = { ArrowRight: 1, ArrowLeft: -1, ArrowDown: perRow, ArrowUp: -perRow };
    if (e.key in moves) {
      e.preventDefault();
      const next = tileAt(Math.min(state.items.length - 1, Math.max(0, i + moves[e.key])));
      if (next) { next.focus(); if (e.shiftKey) select(Number(next.dataset.index), { shiftKey: true }); }
    } else if (e.key === " " || e.key === "x") {
      e.preventDefault();
      select(i, e);
    } else if (e.key === "Enter") {
      e.preventDefault();
      open(i);
    } else if (e.key === "Escape" && state.selected.size) {
      state.selected.clear();
      refreshSelection();
    } else if (e.key === "Delete" && state.selected.size) {
      trash();
    }
  });

  function open(i) {
    openViewer({
      items: state.items, index: i, originalUrl, thumbUrl,
      more: async () => { if (!state.done) await loadMore(); return state.items; },
      onClose: (at) => { const el = tileAt(at); if (el) { el.scrollIntoView({ block: "nearest" }); el.focus(); } },
    });
  }

  async function trash() {
    const ids = [...state.selected];
    try {
      const res = await api("/assets/trash", { method: "POST", body: { ids } });
      for (const el of [...list.querySelectorAll(".tile")]) if (state.selected.has(Number(el.dataset.id))) el.remove();
      state.selected.clear();
      refreshSelection();
      toast(`Moved ${res.changed} to the trash; restore from Trash within ${res.purge_after_days} days.`);
    } catch (err) {
      toast(err.text || String(err));
    }
  }

  async function download() {
    const ids = [...state.selected];
    // Short lists go as a plain link (the media cookie authenticates it, the browser streams to disk).
    if (ids.length <= 300) {
      const a = h("a", { href: `/api/v1/assets/zip?ids=${ids.join(",")}`, download: "camroll.zip" });
      document.body.append(a); a.click(); a.remove();
      return;
    }
    try {
      const resp = await fetch("/api/v1/assets/zip", { method: "POST", headers: authHeaders({ "Content-Type": "application/json" }), body: JSON.stringify({ ids }) });
      if (!resp.ok) throw await problemOf(resp);
      const url = URL.createObjectURL(await resp.blob());
      const a = h("a", { href: url, download: "camroll.zip" });
      document.body.append(a); a.click(); a.remove();
      setTimeout(() => URL.revokeObjectURL(url), 60000);
    } catch (err) {
      toast(err.text || String(err));
    }
  }

  loadMore();
  return () => observer.disconnect();
}
