// A small resumable tus 1.0 client for camroll's server: creation (with upload for small files),
// checksummed PATCHes, and HEAD to resume.  The upload URL and the file's SHA-256 are kept in
// localStorage under the file's name, size and mtime, so after a page reload choosing or dropping the
// same file continues from the offset the server already has.
import { authHeaders, ApiError } from "./api.js";
import { sha256Base64 } from "./hashing.js";

const TUS = "1.0.0";
const PREFIX = "camroll.tus:";
export const CHUNK = 1024 * 1024 * 4;
const RETRIES = 5;

export function fileKey(file) { return `${PREFIX}${file.name}:${file.size}:${file.lastModified}`; }

export function remembered(file) {
  try { return JSON.parse(localStorage.getItem(fileKey(file)) || "null"); } catch { return null; }
}

export function unfinished() {
  const out = [];
  for (let k = 0; k < localStorage.length; k++) {
    const key = localStorage.key(k);
    if (!key.startsWith(PREFIX)) continue;
    try { out.push({ key, ...JSON.parse(localStorage.getItem(key)) }); } catch { /* skip */ }
  }
  return out;
}

function b64(text) { return btoa(String.fromCharCode(...new TextEncoder().encode(text))); }

function metadata(file, sha256) {
  const meta = { filename: file.name, sha256, size: String(file.size), mtime_ns: (BigInt(file.lastModified) * 1000000n).toString() };
  return Object.entries(meta).map(([k, v]) => `${k} ${b64(v)}`).join(",");
}

// XMLHttpRequest rather than fetch: it reports upload progress.
function send(method, url, headers, body, onProgress) {
  return new Promise((resolve, reject) => {
    const xhr = new XMLHttpRequest();
    xhr.open(method, url);
    for (const [k, v] of Object.entries({ "Tus-Resumable": TUS, ...authHeaders(), ...headers })) xhr.setRequestHeader(k, v);
    if (onProgress) xhr.upload.onprogress = (e) => onProgress(e.loaded);
    xhr.onload = () => resolve(xhr);
    xhr.onerror = () => reject(new ApiError(0, "The connection to the server was lost.", "The upload resumes by itself."));
    xhr.send(body ?? null);
  });
}

async function failure(xhr) {
  let body = null;
  try { body = JSON.parse(xhr.responseText); } catch { /* not JSON */ }
  return new ApiError(xhr.status, body?.detail || `The server answered ${xhr.status}.`, body?.fix, body?.code);
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

// Upload one file; `sha256` is its whole-file hash.  Calls onProgress(bytesOnServer) and resolves to
// {assetId, resumedFrom} once the server has verified and stored it.
export async function upload(file, sha256, { onProgress = () => {}, chunk = CHUNK, room = null } = {}) {
  const key = fileKey(file);
  let url = null, offset = 0, resumedFrom = null;
  const saved = remembered(file);
  if (saved?.url) {
    const head = await send("HEAD", saved.url, {});
    if (head.status === 200) {
      url = saved.url;
      offset = Number(head.getResponseHeader("Upload-Offset"));
      resumedFrom = offset;
      const done = head.getResponseHeader("Camroll-Asset-Id");
      if (done) { localStorage.removeItem(key); onProgress(file.size); return { assetId: Number(done), resumedFrom }; }
    } else if (head.status === 401) {
      throw await failure(head);
    }
  }
  if (!url) {
    const headers = { "Upload-Length": String(file.size), "Upload-Metadata": metadata(file, sha256) };
    let body = null;
    // The body travels with the creation only when the server said it has room: otherwise a refusal
    // (quota, disk full) comes before any byte is sent.
    if (file.size <= chunk && room != null && file.size <= room) {
      body = file;
      headers["Content-Type"] = "application/offset+octet-stream";
      headers["Upload-Checksum"] = `sha256 ${await sha256Base64(file)}`;
    }
    const created = await send("POST", "/api/v1/uploads/", headers, body, body ? onProgress : null);
    if (created.status !== 201) throw await failure(created);
    url = created.getResponseHeader("Location");
    const done = created.getResponseHeader("Camroll-Asset-Id");
    if (done) { onProgress(file.size); return { assetId: Number(done), resumedFrom }; }
    localStorage.setItem(key, JSON.stringify({ url, sha256, name: file.name, size: file.size }));
    offset = Number(created.getResponseHeader("Upload-Offset") || 0);
  }
  onProgress(offset);
  let failures = 0;
  while (true) {
    const piece = file.slice(offset, offset + chunk);
    let xhr;
    try {
      xhr = await send("PATCH", url, {
        "Upload-Offset": String(offset), "Content-Type": "application/offset+octet-stream",
        "Upload-Checksum": `sha256 ${await sha256Base64(piece)}`,
      }, piece, (n) => onProgress(offset + n));
    } catch (err) {
      xhr = null;
      if (++failures > RETRIES) throw err;
    }
    if (xhr && xhr.status === 204) {
      failures = 0;
      offset = Number(xhr.getResponseHeader("Upload-Offset"));
      onProgress(offset);
      const done = xhr.getResponseHeader("Camroll-Asset-Id");
      if (done) { localStorage.removeItem(key); return { assetId: Number(done), resumedFrom }; }
      continue;
    }
    if (xhr && ![409, 460, 500, 502, 503, 504].includes(xhr.status)) {
      if (xhr.status === 404 || xhr.status === 410) localStorage.removeItem(key);
      throw await failure(xhr);
    }
    if (xhr && ++failures > RETRIES) throw await failure(xhr);
    // Lost connection, offset conflict or a corrupted chunk: ask the server where it is and go on.
    await sleep(Math.min(30000, 500 * 2 ** failures));
    const head = await send("HEAD", url, {}).catch(() => null);
    if (head && head.status === 200) offset = Number(head.getResponseHeader("Upload-Offset"));
  }
}
