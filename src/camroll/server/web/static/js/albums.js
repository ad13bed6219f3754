// Albums: the list (#/albums) with a form for a new one, and one album (#/album?id=N) shown like the
// timeline, with rename, delete (never the photos), remove from album and set as cover.
import { api } from "./api.js";
import { go } from "./app.js";
import { h, errorBox, toast, plural } from "./format.js";
import { mountTimeline, thumbUrl } from "./timeline.js";

export async function render(main) {
  const name = h("input", { id: "new-album-name", maxlength: "200", autocomplete: "off", required: true });
  const form = h("form", { class: "new-album", id: "new-album" },
    h("div", {}, h("label", { for: "new-album-name" }, "New album"), name),
    h("button", { type: "submit", class: "primary" }, "Create"));
  const grid = h("ul", { class: "albums", id: "albums", "aria-label": "Albums" });
  main.append(h("div", { class: "page-head" }, h("h1", {}, "Albums")), form, grid);
  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    try {
      const album = await api("/albums", { method: "POST", body: { name: name.value } });
      go(`#/album?id=${album.id}`);
    } catch (err) {
      toast(err.text || String(err));
    }
  });
  let albums;
  try {
    albums = await api("/albums");
  } catch (err) {
    main.append(errorBox(err));
    return;
  }
  if (!albums.length) {
    main.append(h("p", { class: "muted", id: "albums-empty" },
      "No albums yet. Create one here, or select photos in the timeline and choose Add to album."));
  }
  for (const a of albums) {
    grid.append(h("li", {}, h("a", { class: "album-card", href: `#/album?id=${a.id}`, dataset: { id: String(a.id) } },
      h("span", { class: "cover" }, a.cover_asset_id ? h("img", { src: thumbUrl(a.cover_asset_id, "grid"), alt: "", loading: "lazy" }) : null),
      h("span", { class: "name" }, a.name),
      h("span", { class: "muted" }, plural(a.item_count, "item")))));
  }
}

export async function renderAlbum(main, params) {
  const id = Number(params.get("id"));
  let album;
  try {
    album = await api(`/albums/${id}`);
  } catch (err) {
    main.append(h("div", { class: "page-head" }, h("h1", {}, "Album")), errorBox(err),
      h("p", {}, h("a", { href: "#/albums" }, "All albums")));
    return null;
  }
  const title = h("h1", { id: "album-title" }, album.name);
  document.title = `${album.name} · camroll`;
  const rename = h("button", { id: "album-rename", onclick: () => renameAlbum() }, "Rename");
  const remove = h("button", { id: "album-delete", class: "danger", onclick: () => deleteAlbum() }, "Delete album");
  const back = h("a", { href: "#/albums" }, "All albums");

  async function renameAlbum() {
    const name = prompt("New name for the album", album.name);
    if (name == null) return;
    try {
      album = await api(`/albums/${id}`, { method: "PATCH", body: { name } });
      title.textContent = album.name;
      document.title = `${album.name} · camroll`;
    } catch (err) {
      toast(err.text || String(err));
    }
  }

  async function deleteAlbum() {
    if (!confirm(`Delete the album "${album.name}"? Its photos stay in your library.`)) return;
    try {
      await api(`/albums/${id}`, { method: "DELETE" });
      toast(`Deleted the album ${album.name}; its photos are still in Photos.`);
      go("#/albums");
    } catch (err) {
      toast(err.text || String(err));
    }
  }

  return mountTimeline(main, {
    path: `/albums/${id}/items`, headingEl: title, headExtra: [h("div", { class: "album-tools" }, back, rename, remove)],
    empty: "This album is empty. Select photos in the timeline and choose Add to album.", onDelete: false,
    actions: (sel) => [
      h("button", { id: "cover-selected", onclick: async () => {
        const ids = sel.ids();
        if (ids.length !== 1) { toast("Select exactly one item to make it the cover."); return; }
        try {
          album = await api(`/albums/${id}`, { method: "PATCH", body: { cover_asset_id: ids[0] } });
          sel.clear();
          toast("This is the album's cover now.");
        } catch (err) { toast(err.text || String(err)); }
      } }, "Set as cover"),
      h("button", { id: "remove-selected", onclick: async () => {
        const ids = sel.ids();
        try {
          const res = await api(`/albums/${id}/items/remove`, { method: "POST", body: { ids } });
          album = res.album;
          sel.drop(ids);
          toast(`Removed ${plural(res.changed, "item")} from ${album.name}; they are still in Photos.`);
        } catch (err) { toast(err.text || String(err)); }
      } }, "Remove from album"),
    ],
  });
}
