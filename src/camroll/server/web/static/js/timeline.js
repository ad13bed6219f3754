// The timeline: day sections of square tiles, paged in by cursor as the end comes near.
// Fast on a large library: the height of every row is computed from its days' item counts (the grid's
// columns and tile size are measured once per width), rows are absolutely positioned, and only those
// within a screen or two of the viewport exist in the DOM.  Days with few items share a row.  Scrolling
// through 50,000 items keeps a few dozen tiles in the page and does O(log n) work per frame.
import { api, missingFeature, authHeaders, problemOf } from "./api.js";
import { h, dayTitle, dateTime, duration, errorBox, toast, plural } from "./format.js";
import { openViewer } from "./viewer.js";

const PAGE = 200;
const BUFFER = 1200; // px rendered above and below the viewport
const AHEAD = 2000; // px before the end at which the next page is fetched

export function thumbUrl(id, size) { return `/api/v1/assets/${id}/thumbnail?size=${size}`; }
export function originalUrl(id) { return `/api/v1/assets/${id}/original`; }

// A short day title for days that share a row (their width can be one tile: then without the weekday).
function shortDay(ymd, narrow) {
  const [y, m, d] = ymd.split("-").map(Number);
  const parts = narrow ? { year: "numeric", month: "short", day: "numeric" }
    : { weekday: "short", year: "numeric", month: "short", day: "numeric" };
  return new Date(y, m - 1, d).toLocaleDateString(undefined, parts);
}

const SEP = 24; // px between days that share a row

export function render(main, params) {
  const kind = params.get("kind") || "";
  const kindSelect = h("select", { id: "kind-filter", "aria-label": "Show" },
    h("option", { value: "" }, "Photos and videos"), h("option", { value: "image" }, "Photos only"),
    h("option", { value: "video" }, "Videos only"));
  kindSelect.value = kind;
  kindSelect.addEventListener("change", () => { location.hash = kindSelect.value ? `#/timeline?kind=${kindSelect.value}` : "#/timeline"; });
  return mountTimeline(main, {
    path: "/timeline", query: kind ? { kind } : {}, heading: "Photos", headExtra: [kindSelect],
    empty: "Nothing is backed up yet. Upload photos here or run the camroll agent on a device.",
    actions: (sel) => [
      h("button", { id: "album-selected", onclick: () => addToAlbum(sel) }, "Add to album"),
      h("button", { id: "trash-selected", class: "danger", onclick: () => sel.trash() }, "Move to trash"),
    ],
  });
}

// A dialog: pick one of the user's albums or name a new one, then add the selection to it.
async function addToAlbum(sel) {
  const ids = sel.ids();
  let albums = [];
  try { albums = await api("/albums"); } catch (err) { toast(err.text || String(err)); return; }
  const choice = h("select", { id: "album-choice" },
    h("option", { value: "" }, "A new album…"), ...albums.map((a) => h("option", { value: String(a.id) }, a.name)));
  const name = h("input", { id: "album-name", maxlength: "200", autocomplete: "off" });
  const nameRow = h("div", {}, h("label", { for: "album-name" }, "New album's name"), name);
  choice.addEventListener("change", () => { nameRow.hidden = choice.value !== ""; });
  const error = h("p", { class: "error-text", role: "alert" });
  const dialog = h("dialog", { id: "album-dialog", "aria-labelledby": "album-dialog-title" },
    h("form", { method: "dialog" },
      h("h2", { id: "album-dialog-title" }, `Add ${plural(ids.length, "item")} to an album`),
      h("label", { for: "album-choice" }, "Album"), choice, nameRow, error,
      h("div", { class: "dialog-buttons" },
        h("button", { type: "submit", class: "primary", id: "album-add" }, "Add"),
        h("button", { type: "button", id: "album-cancel", onclick: () => dialog.close() }, "Cancel"))));
  dialog.addEventListener("close", () => dialog.remove());
  dialog.querySelector("form").addEventListener("submit", async (e) => {
    e.preventDefault();
    try {
      let info;
      if (choice.value) {
        info = (await api(`/albums/${choice.value}/items`, { method: "POST", body: { ids } })).album;
      } else {
        info = await api("/albums", { method: "POST", body: { name: name.value, ids } });
      }
      dialog.close();
      sel.clear();
      toast(`Added to ${info.name} (${plural(info.item_count, "item")}).`);
    } catch (err) {
      error.textContent = err.text || String(err);
    }
  });
  document.body.append(dialog);
  dialog.showModal();
  (albums.length ? choice : name).focus();
}

// The timeline of opts.path (the library, or an album's items): day sections packed into rows.
export function mountTimeline(main, opts) {
  const state = { items: [], cursor: null, done: false, loading: false, selected: new Set(), anchor: null, total: null };
  const count = h("span", { class: "muted", id: "count" });
  const selCount = h("span", { id: "selection-count" });
  const sel = {
    ids: () => [...state.selected],
    clear: () => { state.selected.clear(); refreshSelection(); },
    trash: () => trash(),
    drop: (ids) => { const gone = new Set(ids); for (const it of state.items) if (gone.has(it.id)) it.removed = true;
      state.selected.clear(); rebuild(); refreshSelection(); },
  };
  const bar = h("div", { class: "selection-bar", id: "selection-bar", hidden: true, role: "toolbar", "aria-label": "Selection" },
    selCount,
    h("button", { id: "download-selected", onclick: download }, "Download zip"),
    ...(opts.actions ? opts.actions(sel) : []),
    h("button", { id: "clear-selection", onclick: () => sel.clear() }, "Clear"));
  const list = h("div", { id: "timeline", class: "timeline" });
  const status = h("div", { class: "status", "aria-live": "polite" });
  const headline = opts.headingEl || h("h1", {}, opts.heading);
  main.append(h("div", { class: "page-head" }, headline, count, ...(opts.headExtra || [])), ...(opts.before || []), bar, list, status);

  // days[d] = {date, start, indices, block}; indices are contiguous in state.items.  blocks[k] = {days,
  // packed, top, height, key, el}: one absolutely positioned row holding one large day, or several small
  // days side by side (like Google Photos and Immich) so a library of sparse days still fills the screen.
  const days = [];
  let blocks = [];
  let geo = null;

  function measure() {
    const grid = h("div", { class: "grid" }, h("div", { class: "tile" }));
    const probe = h("div", { class: "row", "aria-hidden": "true", style: "visibility:hidden" },
      h("section", { class: "day" }, h("h2", {}, "Probe"), grid));
    list.append(probe);
    const style = getComputedStyle(grid);
    const cols = Math.max(1, style.gridTemplateColumns.split(" ").length);
    const size = grid.firstChild.getBoundingClientRect().width;
    const header = grid.offsetTop;
    geo = { width: list.clientWidth, cols, gap: parseFloat(style.columnGap) || 0, size, header,
            pad: probe.firstChild.offsetHeight - header - grid.offsetHeight };
    probe.remove();
  }

  function visibleCount(day) {
    let n = 0;
    for (const i of day.indices) if (!state.items[i].removed) n++;
    return n;
  }

  function widthOf(n) { return n * geo.size + (n - 1) * geo.gap; }

  // Packs the days into rows; a row element whose days and counts did not change is kept.
  function relayout() {
    const old = new Map(blocks.filter((b) => b.el).map((b) => [b.key, b]));
    const out = [];
    let y = 0, cur = null;
    const push = (b, rows) => {
      b.top = y;
      b.height = geo.header + rows * geo.size + (rows - 1) * geo.gap + geo.pad;
      b.key = b.days.map((d) => `${d}:${b.counts[b.days.indexOf(d)]}`).join(",") + (b.packed ? "p" : "");
      y += b.height;
      for (const d of b.days) days[d].block = out.length;
      out.push(b);
    };
    const flush = () => { if (cur) push(cur, 1); cur = null; };
    for (let d = 0; d < days.length; d++) {
      const n = visibleCount(days[d]);
      days[d].block = -1;
      if (!n) continue;
      if (n >= geo.cols) {
        flush();
        push({ days: [d], counts: [n], packed: false, el: null }, Math.ceil(n / geo.cols));
        continue;
      }
      const w = widthOf(n);
      if (cur && cur.used + SEP + w <= geo.width + 0.5) {
        cur.days.push(d); cur.counts.push(n); cur.used += SEP + w;
      } else {
        flush();
        cur = { days: [d], counts: [n], used: w, packed: true, el: null };
      }
    }
    flush();
    for (const b of out) {
      const was = old.get(b.key);
      if (was) { b.el = was.el; b.el.style.top = `${b.top}px`; old.delete(b.key); }
    }
    for (const b of old.values()) b.el.remove();
    blocks = out;
    list.style.height = `${y}px`;
  }

  function firstAfter(y) {
    let lo = 0, hi = blocks.length;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (blocks[mid].top + blocks[mid].height <= y) lo = mid + 1; else hi = mid;
    }
    return lo;
  }

  function dayOf(i) {
    let lo = 0, hi = days.length - 1;
    while (lo < hi) {
      const mid = (lo + hi + 1) >> 1;
      if (days[mid].start <= i) lo = mid; else hi = mid - 1;
    }
    return lo;
  }

  function paint() {
    if (!geo || geo.width !== list.clientWidth) { for (const b of blocks) drop(b, true); measure(); relayout(); }
    const listTop = list.getBoundingClientRect().top + scrollY;
    const from = scrollY - listTop - BUFFER, to = scrollY - listTop + innerHeight + BUFFER;
    const want = new Set();
    for (let k = firstAfter(from); k < blocks.length && blocks[k].top < to; k++) want.add(blocks[k]);
    for (const b of blocks) if (b.el && !want.has(b)) drop(b);
    for (const b of want) if (!b.el) build(b);
    const total = blocks.length ? blocks[blocks.length - 1].top + blocks[blocks.length - 1].height : 0;
    if (!state.done && !state.loading && total - (scrollY - listTop + innerHeight) < AHEAD) loadMore();
  }

  function drop(b, force = false) {
    if (!b.el || (!force && b.el.contains(document.activeElement))) return;
    b.el.remove();
    b.el = null;
  }

  function daySection(d, n, packed) {
    const day = days[d];
    const title = dayTitle(day.date);
    const grid = h("div", { class: "grid", role: "group", "aria-label": title,
      style: packed ? `grid-template-columns:repeat(${n},${geo.size}px)` : null },
      day.indices.filter((i) => !state.items[i].removed).map((i) => tile(state.items[i], i)));
    return h("section", { class: packed ? "day packed" : "day", dataset: { date: day.date },
      style: packed ? `width:${widthOf(n)}px` : null },
      h("h2", { title }, packed ? shortDay(day.date, widthOf(n) < 170) : title), grid);
  }

  function build(b) {
    b.el = h("div", { class: "row", style: `top:${b.top}px` }, b.days.map((d, j) => daySection(d, b.counts[j], b.packed)));
    // Keep DOM order equal to visual order, for screen readers and Tab.
    let before = null;
    for (const o of blocks) if (o.el && o !== b && o.top > b.top && (before === null || o.top < before.top)) before = o;
    list.insertBefore(b.el, before === null ? null : before.el);
  }

  function rebuild() {
    for (const b of blocks) drop(b, true);
    relayout();
    paint();
  }

  // Escape clears the selection wherever the focus is (a toolbar button, say), unless the viewer is open.
  const onEscape = (e) => {
    if (e.key === "Escape" && state.selected.size && !document.getElementById("viewer") && !document.querySelector("dialog[open]")) {
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
    const q = new URLSearchParams({ limit: String(PAGE), ...(opts.query || {}) });
    if (state.cursor) q.set("cursor", state.cursor);
    try {
      const page = await api(`${opts.path}?${q}`);
      state.cursor = page.next_cursor;
      state.done = !page.next_cursor;
      state.total = page.total;
      count.textContent = plural(page.total, "item");
      for (const day of page.days) addDay(day);
      list.dataset.loaded = String(state.items.length);
      if (!geo) measure();
      relayout();
      status.textContent = state.items.length === 0 ? opts.empty : "";
    } catch (err) {
      state.done = true;
      status.replaceChildren(errorBox(err));
      if (missingFeature(err)) status.append(h("p", { class: "muted" }, `This page needs the library API (GET /api/v1${opts.path}).`));
    } finally {
      state.loading = false;
    }
    paint();
  }

  function addDay(day) {
    let sec = days[days.length - 1];
    if (!sec || sec.date !== day.date) {
      sec = { date: day.date, start: state.items.length, indices: [], block: -1 };
      days.push(sec);
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
    if (!item.has_thumbnail) awaitThumb(item, inner);
    const el = h("button", {
      class: "tile", "aria-label": label, "aria-pressed": "false", title: item.filename,
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

  // A new asset shows at once with a placeholder; its thumbnail replaces it once the server's background
  // job made it (jobs yield to uploads, so during a big backup that can take a while): asked again with
  // a growing pause (2 s, doubling), for about two minutes.
  function awaitThumb(item, placeholder, delay = 2000) {
    if (delay > 64000) return;
    setTimeout(() => {
      if (!placeholder.isConnected) return;
      const img = h("img", { alt: "", decoding: "async" });
      img.addEventListener("load", () => { item.has_thumbnail = true; placeholder.replaceWith(img); }, { once: true });
      img.addEventListener("error", () => awaitThumb(item, placeholder, delay * 2), { once: true });
      img.src = `${thumbUrl(item.id, "grid")}&t=${Date.now()}`;
    }, delay);
  }

  function tileAt(i) { return list.querySelector(`.tile[data-index="${i}"]`); }

  // The tile of item i, scrolling its row into view first if it is not in the DOM.
  function reveal(i) {
    const b = blocks[days[dayOf(i)].block];
    if (b && !b.el) {
      scrollTo({ top: list.getBoundingClientRect().top + scrollY + b.top - 120 });
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
    } else if (e.key === "Delete" && state.selected.size && opts.onDelete !== false) {
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
      sel.drop(ids);
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
