// Upload page: drop files (or choose them), each hashed, checked against the library, then sent over
// resumable tus with its own progress bar.  Three files go at a time.
import { api, authHeaders } from "./api.js";
import { h, size, errorBox } from "./format.js";
import { sha256File } from "./hashing.js";
import { upload, remembered, unfinished, fileKey } from "./tus.js";

const PARALLEL = 3;
const queue = [];
let running = 0;

export function render(main) {
  // No "accept" filter: RAW files have no image/* type in most browsers; the server names what it refuses.
  const input = h("input", { type: "file", id: "file-input", multiple: true, class: "visually-hidden" });
  const zone = h("label", { for: "file-input", class: "dropzone", id: "dropzone", tabindex: "0" },
    h("strong", {}, "Drop photos and videos here"), h("span", {}, "or press Enter to choose files"));
  const list = h("ul", { class: "uploads", id: "upload-list", "aria-label": "Uploads" });
  const pending = h("div", { id: "unfinished" });
  main.append(h("div", { class: "page-head" }, h("h1", {}, "Upload")),
    h("p", { class: "muted" }, "Uploads resume where they stopped: after a lost connection or a reload, drop the same files again."),
    input, zone, pending, list);

  zone.addEventListener("keydown", (e) => { if (e.key === "Enter" || e.key === " ") { e.preventDefault(); input.click(); } });
  input.addEventListener("change", () => { add([...input.files], list); input.value = ""; });
  for (const t of ["dragenter", "dragover"]) zone.addEventListener(t, (e) => { e.preventDefault(); zone.classList.add("over"); });
  zone.addEventListener("dragleave", () => zone.classList.remove("over"));
  zone.addEventListener("drop", (e) => {
    e.preventDefault();
    zone.classList.remove("over");
    add([...(e.dataTransfer?.files || [])], list);
  });
  showUnfinished(pending);
}

async function showUnfinished(box) {
  const left = unfinished();
  if (!left.length) return;
  const items = h("ul", {});
  box.append(h("div", { class: "card notice" }, h("h2", {}, "Unfinished uploads"),
    h("p", {}, "Drop or choose these files again to continue where they stopped:"), items));
  for (const u of left) {
    const li = h("li", { dataset: { key: u.key } }, `${u.name} (${size(u.size)})`);
    items.append(li);
    try {
      const r = await fetch(u.url, { method: "HEAD", headers: authHeaders({ "Tus-Resumable": "1.0.0" }) });
      if (r.ok) li.append(` — ${Math.floor((100 * Number(r.headers.get("Upload-Offset"))) / u.size)}% on the server`);
      else { li.remove(); localStorage.removeItem(u.key); }
    } catch { /* offline: keep the line */ }
  }
}

function add(files, list) {
  for (const file of files) {
    const bar = h("progress", { max: String(Math.max(1, file.size)), value: "0", "aria-label": `${file.name} progress` });
    const note = h("span", { class: "note" }, "Waiting");
    const li = h("li", { class: "upload", dataset: { name: file.name } },
      h("span", { class: "name" }, file.name), h("span", { class: "muted" }, size(file.size)), bar, note);
    list.append(li);
    queue.push({ file, bar, note, li });
  }
  pump();
}

function pump() {
  while (running < PARALLEL && queue.length) {
    const job = queue.shift();
    running++;
    one(job).finally(() => { running--; pump(); });
  }
}

async function one({ file, bar, note, li }) {
  try {
    let sha = remembered(file)?.sha256;
    let room = null;  // bytes the server has room for; only then does the body go with the creation
    if (!sha) {
      note.textContent = "Checking…";
      sha = await sha256File(file, (n) => { note.textContent = `Checking ${Math.floor((100 * n) / Math.max(1, file.size))}%`; });
      const check = await api("/assets/check", { method: "POST", body: { items: [{ sha256: sha, filename: file.name }] } });
      if (check.present[sha]) {
        bar.value = file.size;
        note.textContent = "Already backed up";
        li.classList.add("done");
        return;
      }
      if (check.room) room = check.room.quota_left == null ? check.room.disk_left : Math.min(check.room.quota_left, check.room.disk_left);
    }
    const started = performance.now();
    const res = await upload(file, sha, {
      room,
      onProgress: (n) => {
        bar.value = n;
        const pct = Math.floor((100 * n) / Math.max(1, file.size));
        note.textContent = `${pct}% · ${size(n)} of ${size(file.size)}`;
      },
    });
    li.dataset.assetId = String(res.assetId);
    if (res.resumedFrom) li.dataset.resumedFrom = String(res.resumedFrom);
    const secs = ((performance.now() - started) / 1000).toFixed(1);
    note.textContent = res.resumedFrom ? `Backed up (resumed at ${size(res.resumedFrom)}, ${secs} s)` : `Backed up (${secs} s)`;
    li.classList.add("done");
    forget(fileKey(file));
  } catch (err) {
    note.replaceChildren(errorBox(err));
    li.classList.add("failed");
  }
}

// A resumed file is no longer unfinished: take it off the notice (and the notice away when empty);
// its stored uploads are "<fileKey>::<n>" (tus.js).
function forget(key) {
  const box = document.getElementById("unfinished");
  if (!box) return;
  for (const li of box.querySelectorAll("li")) if (li.dataset.key?.startsWith(`${key}::`)) li.remove();
  if (!box.querySelector("li")) box.replaceChildren();
}
