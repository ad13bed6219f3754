// Resumable uploads with tus-js-client (vendored: vendor/tus-js-client/README.md), set up for camroll:
// - fingerprint = the file's name, size and mtime, and the URL storage keeps each unfinished upload in
//   localStorage under "camroll.tus:<fingerprint>::<n>" with its URL, size and metadata (which holds the
//   file's SHA-256), so after a reload dropping the same file HEADs that URL and continues from the
//   offset the server has, without hashing the file again;
// - every request with a body carries Upload-Checksum (sha256 of that chunk, hash-wasm), which the
//   server verifies before it keeps the bytes;
// - retries (lost connection, a busy upload, a damaged chunk, a server error) with back-off.
import { authHeaders, ApiError } from "./api.js";
import { sha256Base64 } from "./hashing.js";

const PREFIX = "camroll.tus:";
export const CHUNK = 1024 * 1024 * 4;
const RETRY_DELAYS = [0, 1000, 3000, 5000, 10000];
const RETRY_STATUSES = new Set([409, 423, 460, 500, 502, 503, 504]);

function fingerprintOf(file) { return `${file.name}:${file.size}:${file.lastModified}`; }
export function fileKey(file) { return `${PREFIX}${fingerprintOf(file)}`; }

function entries(prefix) {
  const out = [];
  for (let k = 0; k < localStorage.length; k++) {
    const key = localStorage.key(k);
    if (!key || !key.startsWith(prefix)) continue;
    try { out.push({ ...JSON.parse(localStorage.getItem(key)), urlStorageKey: key }); } catch { /* a damaged entry: skip */ }
  }
  return out;
}

// tus-js-client's URL storage contract (findAllUploads, findUploadsByFingerprint, removeUpload, addUpload).
const urlStorage = {
  findAllUploads: () => Promise.resolve(entries(PREFIX)),
  findUploadsByFingerprint: (fp) => Promise.resolve(entries(`${PREFIX}${fp}::`)),
  removeUpload: (key) => { localStorage.removeItem(key); return Promise.resolve(); },
  addUpload: (fp, upload) => {
    const key = `${PREFIX}${fp}::${Math.round(Math.random() * 1e12)}`;
    localStorage.setItem(key, JSON.stringify(upload));
    return Promise.resolve(key);
  },
};

// The stored upload of this file, if any: {url, sha256, name, size}.
export function remembered(file) {
  const found = entries(`${fileKey(file)}::`)[0];
  return found ? { url: found.uploadUrl, sha256: found.metadata?.sha256, name: file.name, size: file.size } : null;
}

// Every unfinished upload this browser knows: [{key, url, name, size}].
export function unfinished() {
  return entries(PREFIX).filter((u) => u.uploadUrl)
    .map((u) => ({ key: u.urlStorageKey, url: u.uploadUrl, name: u.metadata?.filename || "?", size: u.size }));
}

// The default browser HTTP stack, with the chunk's SHA-256 added to every request that has a body.
function checksummingStack() {
  const inner = new window.tus.DefaultHttpStack();
  return {
    getName: () => "camroll-checksum",
    createRequest(method, url) {
      const req = inner.createRequest(method, url);
      const send = req.send.bind(req);
      req.send = async (body = null) => {
        if (body instanceof Blob && body.size > 0) req.setHeader("Upload-Checksum", `sha256 ${await sha256Base64(body)}`);
        return send(body);
      };
      return req;
    },
  };
}

function problemOf(err) {
  const res = err?.originalResponse;
  if (!res) return new ApiError(0, "The connection to the server was lost.", "Drop the file again: the upload resumes where it stopped.");
  let body = null;
  try { body = JSON.parse(res.getBody()); } catch { /* not JSON */ }
  return new ApiError(res.getStatus(), body?.detail || `The server answered ${res.getStatus()}.`, body?.fix, body?.code);
}

// Upload one file; `sha256` is its whole-file hash.  Calls onProgress(bytesOnServer) and resolves to
// {assetId, resumedFrom} once the server has verified and stored it.  The body travels with the
// creation request only when the server said it has room (`room`), so a refusal (quota, disk full)
// comes before any byte is sent.
export async function upload(file, sha256, { onProgress = () => {}, chunk = CHUNK, room = null } = {}) {
  if (!window.tus?.Upload) throw new ApiError(0, "The upload module did not load.", "Reload the page.");
  let assetId = null, resumedFrom = null;
  return new Promise((resolve, reject) => {
    const up = new window.tus.Upload(file, {
      endpoint: "/api/v1/uploads/",
      chunkSize: chunk,
      retryDelays: RETRY_DELAYS,
      headers: authHeaders(),
      metadata: { filename: file.name, sha256, size: String(file.size), mtime_ns: (BigInt(file.lastModified) * 1000000n).toString() },
      fingerprint: (f) => Promise.resolve(fingerprintOf(f)),
      urlStorage,
      storeFingerprintForResuming: true,
      removeFingerprintOnSuccess: true,
      uploadDataDuringCreation: file.size <= chunk && room != null && file.size <= room,
      httpStack: checksummingStack(),
      onShouldRetry: (err) => {
        const status = err?.originalResponse?.getStatus?.() ?? 0;
        return status === 0 || RETRY_STATUSES.has(status);
      },
      onAfterResponse: (req, res) => {
        const id = res.getHeader("Camroll-Asset-Id");
        if (id) assetId = Number(id);
        if (req.getMethod() === "HEAD" && res.getStatus() === 200 && resumedFrom === null) {
          resumedFrom = Number(res.getHeader("Upload-Offset"));
        }
      },
      onProgress: (sent) => onProgress(sent),
      onSuccess: () => {
        onProgress(file.size);
        if (assetId === null) reject(new ApiError(0, "The server did not say which asset it stored.", "Look for the file in Photos."));
        else resolve({ assetId, resumedFrom });
      },
      onError: (err) => {
        // A stored upload the server no longer has is forgotten; tus-js-client makes a new one next time.
        reject(problemOf(err));
      },
    });
    up.findPreviousUploads().then((previous) => {
      if (previous.length) up.resumeFromPreviousUpload(previous[0]);
      up.start();
    }, reject);
  });
}
