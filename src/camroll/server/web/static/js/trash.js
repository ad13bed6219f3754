// Trash: assets moved here stay 30 days; select and restore.
import { api } from "./api.js";
import { h, dateTime, errorBox, toast, plural } from "./format.js";
import { thumbUrl } from "./timeline.js";

function itemsOf(page) {
  if (Array.isArray(page)) return page;
  if (page.days) return page.days.flatMap((d) => d.items);
  return page.items || [];
}

export async function render(main) {
  const selected = new Set();
  const restore = h("button", { id: "restore-selected", class: "primary", disabled: true }, "Restore");
  main.append(h("div", { class: "page-head" }, h("h1", {}, "Trash"), restore),
    h("p", { class: "muted" }, "Items in the trash are removed for good 30 days after they were trashed."));
  let items;
  try {
    items = itemsOf(await api("/trash?limit=1000"));
  } catch (err) {
    main.append(errorBox(err));
    return;
  }
  if (!items.length) { main.append(h("p", { class: "muted", id: "trash-empty" }, "The trash is empty.")); return; }
  const grid = h("div", { class: "grid", id: "trash", role: "group", "aria-label": "Trashed items" });
  for (const it of items) {
    const el = h("button", { class: "tile", "aria-pressed": "false", dataset: { id: String(it.id) },
      "aria-label": `${it.filename}${it.trashed_at ? `, trashed ${dateTime(it.trashed_at)}` : ""}` },
      it.has_thumbnail ? h("img", { src: thumbUrl(it.id, "grid"), alt: "", loading: "lazy" })
        : h("span", { class: "placeholder" }, h("span", { class: "ph-name" }, it.filename)),
      h("span", { class: "check", "aria-hidden": "true" }, "✓"));
    el.addEventListener("click", () => {
      if (selected.has(it.id)) selected.delete(it.id); else selected.add(it.id);
      el.classList.toggle("selected", selected.has(it.id));
      el.setAttribute("aria-pressed", String(selected.has(it.id)));
      restore.disabled = selected.size === 0;
      restore.textContent = selected.size ? `Restore ${selected.size}` : "Restore";
    });
    grid.append(el);
  }
  grid.classList.add("selecting");
  main.append(grid);
  restore.addEventListener("click", async () => {
    try {
      const res = await api("/assets/restore", { method: "POST", body: { ids: [...selected] } });
      for (const id of selected) grid.querySelector(`[data-id="${id}"]`)?.remove();
      selected.clear();
      restore.disabled = true;
      restore.textContent = "Restore";
      toast(`Restored ${plural(res.changed, "item")} to the timeline.`);
    } catch (err) {
      toast(err.text || String(err));
    }
  });
}
