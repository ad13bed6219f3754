// The JSON API: bearer token from storage, RFC 9457 problems turned into ApiError with a sentence.
const TOKEN_KEY = "camroll.token";
const USER_KEY = "camroll.user";

export class ApiError extends Error {
  constructor(status, detail, fix, code) {
    super(detail);
    this.status = status;
    this.fix = fix || "";
    this.code = code || "";
  }
  get text() { return this.fix ? `${this.message} ${this.fix}` : this.message; }
}

export function token() { return localStorage.getItem(TOKEN_KEY); }
export function user() {
  try { return JSON.parse(localStorage.getItem(USER_KEY) || "null"); } catch { return null; }
}
export function saveSession(login) {
  localStorage.setItem(TOKEN_KEY, login.token);
  localStorage.setItem(USER_KEY, JSON.stringify(login.user));
}
export function clearSession() {
  localStorage.removeItem(TOKEN_KEY);
  localStorage.removeItem(USER_KEY);
}

let onUnauthorized = () => {};
export function setUnauthorizedHandler(fn) { onUnauthorized = fn; }

export async function problemOf(resp) {
  let body = null;
  try { body = await resp.json(); } catch { /* not JSON */ }
  // A 404 for the route itself (not for one asset) means this server does not have the feature yet.
  if (resp.status === 404 && (!body || !body.detail || body.detail.startsWith("There is nothing at"))) {
    return new ApiError(404, `This camroll server does not offer ${new URL(resp.url).pathname} yet.`,
      "Update the camroll server to a version with this feature.", "missing_feature");
  }
  if (body && body.detail) return new ApiError(resp.status, body.detail, body.fix, body.code);
  return new ApiError(resp.status, `The server answered ${resp.status} ${resp.statusText}.`, "Try again.");
}

export function authHeaders(extra = {}) {
  const t = token();
  return t ? { Authorization: `Bearer ${t}`, ...extra } : extra;
}

export async function api(path, { method = "GET", body, headers = {}, raw = false } = {}) {
  const init = { method, headers: authHeaders(headers) };
  if (body !== undefined) {
    init.body = JSON.stringify(body);
    init.headers["Content-Type"] = "application/json";
  }
  let resp;
  try {
    resp = await fetch(`/api/v1${path}`, init);
  } catch {
    throw new ApiError(0, "The camroll server cannot be reached.", "Check that it is running and try again.");
  }
  if (resp.status === 401 && path !== "/auth/login") {
    onUnauthorized();
    throw await problemOf(resp);
  }
  if (!resp.ok) throw await problemOf(resp);
  if (raw) return resp;
  if (resp.status === 204) return null;
  return resp.json();
}

export function missingFeature(err) {
  return err instanceof ApiError && err.code === "missing_feature";
}
