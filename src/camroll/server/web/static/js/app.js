// The single-page app: hash routes (#/timeline, #/upload, ...) rendered into <main>.
import { api, token, clearSession, setUnauthorizedHandler } from "./api.js";

const PAGES = {
  login: () => import("./login.js"),
  timeline: () => import("./timeline.js"),
  albums: () => import("./albums.js"),
  album: () => import("./album.js"),
  upload: () => import("./upload.js"),
  devices: () => import("./devices.js"),
  problems: () => import("./problems.js"),
  storage: () => import("./storage.js"),
  trash: () => import("./trash.js"),
  settings: () => import("./settings.js"),
};
const TITLES = {
  login: "Log in", timeline: "Photos", albums: "Albums", album: "Album", upload: "Upload", devices: "Devices", problems: "Problems",
  storage: "Storage", trash: "Trash", settings: "Settings",
};

let cleanup = null;
let mediaCookieReady = null;

// <img> and <video> cannot send the bearer token: the server gives this tab an HttpOnly cookie that
// it accepts only for GETs of media.
export function ensureMediaCookie() {
  if (!mediaCookieReady) mediaCookieReady = api("/auth/media-cookie", { method: "POST" }).catch(() => null);
  return mediaCookieReady;
}

export function resetMediaCookie() { mediaCookieReady = null; }

function routeOf(hash) {
  const [name, query = ""] = hash.replace(/^#\/?/, "").split("?");
  return { name: name || "timeline", params: new URLSearchParams(query) };
}

export function go(hash) {
  if (location.hash === hash) route();
  else location.hash = hash;
}

async function route() {
  let { name, params } = routeOf(location.hash);
  if (!PAGES[name]) name = "timeline";
  if (!token() && name !== "login") { location.replace("#/login"); return; }
  if (token() && name === "login") { location.replace("#/timeline"); return; }
  document.getElementById("top").hidden = name === "login";
  for (const a of document.querySelectorAll("#nav a")) {
    if (a.getAttribute("href") === `#/${name === "album" ? "albums" : name}`) a.setAttribute("aria-current", "page");
    else a.removeAttribute("aria-current");
  }
  document.getElementById("nav").classList.remove("open");
  document.getElementById("menu-toggle").setAttribute("aria-expanded", "false");
  if (cleanup) { try { cleanup(); } catch { /* page already gone */ } cleanup = null; }
  const main = document.getElementById("main");
  main.replaceChildren();
  document.getElementById("toast").classList.remove("show");
  document.title = `${TITLES[name]} · camroll`;
  if (name !== "login") await ensureMediaCookie();
  const mod = await PAGES[name]();
  cleanup = (await mod.render(main, params)) || null;
  main.dataset.page = name;
}

async function logout() {
  try { await api("/auth/logout", { method: "POST" }); } catch { /* the session may be gone already */ }
  try { await api("/auth/media-cookie", { method: "DELETE" }); } catch { /* ignore */ }
  clearSession();
  resetMediaCookie();
  go("#/login");
}

setUnauthorizedHandler(() => { clearSession(); resetMediaCookie(); go("#/login"); });
document.getElementById("logout").addEventListener("click", logout);
document.getElementById("menu-toggle").addEventListener("click", (e) => {
  const nav = document.getElementById("nav");
  const open = nav.classList.toggle("open");
  e.currentTarget.setAttribute("aria-expanded", String(open));
});
window.addEventListener("hashchange", route);
route();
