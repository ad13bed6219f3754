// SHA-256 in the browser without holding a file in memory.
// crypto.subtle.digest takes one whole buffer and exists only on HTTPS or localhost pages, while camroll
// is often reached over plain HTTP on a home network; hash-wasm (vendored, see vendor/hash-wasm/README.md)
// hashes incrementally anywhere, at several hundred MB/s, reading the file 8 MiB at a time.
const STEP = 8 * 1024 * 1024;

async function hasher() {
  if (!window.hashwasm) throw new Error("The SHA-256 module did not load; reload the page.");
  const h = await window.hashwasm.createSHA256();
  h.init();
  return h;
}

export async function sha256File(file, onProgress = () => {}) {
  const h = await hasher();
  for (let off = 0; off < file.size; off += STEP) {
    const buf = new Uint8Array(await file.slice(off, off + STEP).arrayBuffer());
    h.update(buf);
    onProgress(off + buf.length);
  }
  return h.digest("hex");
}

// base64 of the SHA-256 of one chunk, for tus's Upload-Checksum header.
export async function sha256Base64(blob) {
  const h = await hasher();
  h.update(new Uint8Array(await blob.arrayBuffer()));
  const bytes = h.digest("binary");
  let s = "";
  for (const b of bytes) s += String.fromCharCode(b);
  return btoa(s);
}
