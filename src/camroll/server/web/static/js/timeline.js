// The timeline: day sections of square tiles, paged in by cursor as the end comes near.
// Fast on a large library: the height of every day section is computed from its item count (the
// grid's columns and tile size are measured once per width), sections are absolutely positioned, and
// only those within a screen or two of the viewport exist in the DOM.  Scrolling through 50,000 items
// keeps a few dozen tiles in the page and does O(log n) work per frame.
import { api, missingFeature, authHeaders, problemOf } from "./api.js";
import { h, dayTitle, dateTime, duration, errorBox, toast, plural } from "./format.js";
import { openViewer } from "./viewer.js";

const PAGE = 200;
const BUFFER = 1200; // px rendered above and below the viewport
const AHEAD = 2000; // px before the end at which the next page is fetched

export function thumbUrl(id, size) { return `/api/v1/assets/${id}/thumbnail?size=${size}`; }
export function originalUrl(id) { return `/api/v1/assets/${id}/original`; }

export function render(main, params) {
  const state = { items: [], cursor: null, done: false, loading: false, selected: new Set(), anchor: null,
                  kind: params.get("kind") || "", total: null };
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
  main.append(h("div", { class: "page-head" }, h("h1", {}, "Photos"), count, kind), bar, list, status);

  // sections[k] = {date, start, indices, top, height, el}; indices are contiguous in state.items.
  const sections = [];
  let geo = null;

  function measure() {
    const grid = h("div", { class: "grid" }, h("div", { class: "tile" }));
    const probe = h("section", { class: "day", "aria-hidden": "true", style: "visibility:hidden" }, h("h2", {}, "Probe"), grid);
    list.append(probe);
    const style = getComputedStyle(grid);
    const cols = Math.max(1, style.gridTemplateColumns.split(" ").length);
    const size = grid.firstChild.getBoundingClientRect().width;
    const header = grid.offsetTop;
    geo = { width: list.clientWidth, cols, gap: parseFloat(style.rowGap) || 0, size, header,
            pad: probe.offsetHeight - header - grid.offsetHeight };
    probe.remove();
  }

  function visibleCount(sec) {
    let n = 0;
    for (const i of sec.indices) if (!state.items[i].removed) n++;
    return n;
  }

  function heightOf(sec) {
    const rows = Math.ceil(visibleCount(sec) / geo.cols);
    return rows ? geo.header + rows * geo.size + (rows - 1) * geo.gap + geo.pad : 0;
  }

  // Positions from section k on (a new page only moves the last section and adds new ones).
  function relayout(k = 0) {
    let y = k > 0 ? sections[k - 1].top + sections[k - 1].height : 0;
    for (; k < sections.length; k++) {
      const sec = sections[k];
      sec.top = y;
      sec.height = heightOf(sec);
      y += sec.height;
      if (sec.el) sec.el.style.top = `${sec.top}px`;
    }
    list.style.height = `${y}px`;
  }

  function firstAfter(y) {
    let lo = 0, hi = sections.length;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (sections[mid].top + sections[mid].height <= y) lo = mid + 1; else hi = mid;
    }
    return lo;
  }

  function sectionOf(i) {
    let lo = 0, hi = sections.length - 1;
    while (lo < hi) {
      const mid = (lo + hi + 1) >> 1;
      if (sections[mid].start <= i) lo = mid; else hi = mid - 1;
    }
    return lo;
  }

  const rendered = new Set();

  function paint() {
    if (!geo || geo.width !== list.clientWidth) { measure(); relayout(); for (const k of rendered) drop(k, true); }
    const listTop = list.getBoundingClientRect().top + scrollY;
    const from = scrollY - listTop - BUFFER, to = scrollY - listTop + innerHeight + BUFFER;
    const want = new Set();
    for (let k = firstAfter(from); k < sections.length && sections[k].top < to; k++) want.add(k);
    for (const k of [...rendered]) if (!want.has(k)) drop(k);
    for (const k of want) if (!sections[k].el) build(k);
    const total = sections.length ? sections[sections.length - 1].top + sections[sections.length - 1].height : 0;
    if (!state.done && !state.loading && total - (scrollY - listTop + innerHeight) < AHEAD) loadMore();
  }

  function drop(k, force = false) {
    const sec = sections[k];
    if (!sec.el || (!force && sec.el.contains(document.activeElement))) return;
    sec.el.remove();
    sec.el = null;
    rendered.delete(k);
  }

  function build(k) {
    const sec = sections[k];
    if (!visibleCount(sec)) return;
    const grid = h("div", { class: "grid", role: "list", "aria-label": dayTitle(sec.date) },
      sec.indices.filter((i) => !state.items[i].removed).map((i) => tile(state.items[i], i)));
    sec.el = h("section", { class: "day", dataset: { date: sec.date }, style: `top:${sec.top}px` }, h("h2", {}, dayTitle(sec.date)), grid);
    // Keep DOM order equal to visual order, for screen readers and Tab.
    let before = null;
    for (const j of rendered) if (j > k && (before === null || j < before)) before = j;
    list.insertBefore(sec.el, before === null ? null : sections[before].el);
    rendered.add(k);
  }

  function rebuild() {
    for (const k of [...rendered]) drop(k, true);
    relayout();
    paint();
  }

  // Escape clears the selection wherever the focus is (a toolbar button, say), unless the viewer is open.
  const onEscape = (e) => {
    if (e.key === "Escape" && state.selected.size && !document.getElementById("viewer")) {
      state.selected.clear();
      refreshSelection();
    }
  };
  document.addEventListener("keydown", onEscape);

  let queued = false;
  const onScroll = () => { if (!queued) { queued = true; requestAnimationFrame(() => { queued = false; paint(); }); } };
  addEventListener("scroll", onScroll, { passive: true });
  addEventListener("resize", onScroll);

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
      count.textContent = plural(page.total, "item");
      const changed = Math.max(0, sections.length - 1);
      for (const day of page.days) addDay(day);
      list.dataset.loaded = String(state.items.length);
      if (!geo) measure();
      relayout(changed);
      // The last section may have grown: build it again if it is on screen.
      if (sections[changed]?.el) drop(changed, true);
      status.textContent = state.items.length === 0
        ? "Nothing is backed up yet. Upload photos here or run the camroll agent on a device." : "";
    } catch (err) {
      state.done = true;
      status.replaceChildren(errorBox(err));
      if (missingFeature(err)) status.append(h("p", { class: "muted" }, "The timeline needs the library API (GET /api/v1/timeline)."));
    } finally {
      state.loading = false;
    }
    paint();
  }

  function addDay(day) {
    let sec = sections[sections.length - 1];
    if (!sec || sec.date !== day.date) {
      sec = { date: day.date, start: state.items.length, indices: [], top: 0, height: 0, el: null };
      sections.push(sec);
    }
    for (const item of day.items) {
      sec.indices.push(state.items.length);
      state.items.push(item);
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
    const on = state.selected.has(item.id);
    el.classList.toggle("selected", on);
    el.setAttribute("aria-pressed", String(on));
    return el;
  }

  function tileAt(i) { return list.querySelector(`.tile[data-index="${i}"]`); }

  // The tile of item i, scrolling its day into view first if it is not in the DOM.
  function reveal(i) {
    const sec = sections[sectionOf(i)];
    if (!sec.el) {
      scrollTo({ top: list.getBoundingClientRect().top + scrollY + sec.top - 120 });
      paint();
    }
    return tileAt(i);
  }

  function toggle(i, on) {
    if (state.items[i].removed) return;
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
      let j = Math.min(state.items.length - 1, Math.max(0, i + moves[e.key]));
      while (state.items[j].removed && j > 0 && j < state.items.length - 1) j += Math.sign(moves[e.key]);
      const next = reveal(j);
      if (next) { next.focus(); if (e.shiftKey) select(Number(next.dataset.index), { shiftKey: true }); }
    } else if (e.key === " " || e.key === "x") {
      e.preventDefault();
      select(i, e);
    } else if (e.key === "Enter") {
      e.preventDefault();
      open(i);
    } else if (e.key === "Delete" && state.selected.size) {
      trash();
    }
  });

  function shown() { return state.items.filter((it) => !it.removed); }

  function open(i) {
    const items = shown();
    openViewer({
      items, index: items.indexOf(state.items[i]), originalUrl, thumbUrl,
      more: async () => { if (!state.done) await loadMore(); return shown(); },
      onClose: (item) => {
        const el = reveal(state.items.indexOf(item));
        if (el) { el.scrollIntoView({ block: "nearest" }); el.focus(); }
      },
    });
  }

  async function trash() {
    const ids = [...state.selected];
    try {
      const res = await api("/assets/trash", { method: "POST", body: { ids } });
      for (const it of state.items) if (state.selected.has(it.id)) it.removed = true;
      state.selected.clear();
      rebuild();
      refreshSelection();
      toast(`Moved ${plural(res.changed, "item")} to the trash; restore from Trash within ${plural(res.purge_after_days, "day")}.`);
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
  return () => {
    removeEventListener("scroll", onScroll);
    removeEventListener("resize", onScroll);
    document.removeEventListener("keydown", onEscape);
  };
}
