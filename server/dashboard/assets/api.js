/*
 * The admin API as the dashboard reads it: the token (kept in sessionStorage, sent as a Bearer
 * token), fetch with errors as ApiError, #error, and the server's clock (so that "3 hours ago"
 * means the server's three hours).
 */
import { $ } from "./dom.js";

const TOKEN_KEY = "vouch-token";

let readOnce = false;      /* a read succeeded with this token */
let clockOffset = 0;       /* ms: the server's clock (the one its verdicts use) minus this browser's */
let tokenRejectedHandler = null;

/* ---------- the server's clock ---------- */

export function serverNow() {
    return Date.now() + clockOffset;
}

/* "3 hours ago" must mean the server's three hours: learn how far its clock is from this
 * browser's (its Date header, plus the test clock's skew that /healthz names), once. Never
 * fatal: without it, times are relative to this browser's clock. */
export async function learnServerClock() {
    try {
        const response = await fetch("/healthz", { cache: "no-store", credentials: "omit" });
        const date = Date.parse(response.headers.get("Date") || "");
        const health = await response.json();
        let offset = Number.isNaN(date) ? 0 : date - Date.now();
        if (Math.abs(offset) < 2000) offset = 0; /* the header has whole seconds */
        if (health && typeof health.clock_skew_s === "number") offset += health.clock_skew_s * 1000;
        clockOffset = offset;
    } catch (e) {
        clockOffset = 0;
    }
}

/* generated_at of GET /v1/fleet is the database's clock: the truest "now" there is (whole
 * seconds, so only a difference of more than two is taken). */
export function noteServerTime(iso) {
    const offset = Date.parse(iso) - Date.now();
    if (Number.isFinite(offset) && Math.abs(offset - clockOffset) > 2000) clockOffset = offset;
}

/* ---------- errors ---------- */

export class ApiError extends Error {
    constructor(status, message, method, path) {
        super(message);
        this.status = status;
        this.method = method;
        this.path = path;
    }
    describe() {
        const where = `${this.method} ${this.path}`;
        if (this.status === 0) return `Cannot reach vouchd: ${this.message} (${where})`;
        return `HTTP ${this.status}: ${this.message} (${where})`;
    }
}

let errorSource = null;

/* Shows err in #error. source names who reported it, so that the same source's next
 * success clears it and nobody else's does. */
export function showError(err, source) {
    const box = $("#error");
    const text = err instanceof ApiError ? err.describe() : `Error: ${err && err.message ? err.message : err}`;
    box.textContent = text;
    box.hidden = false;
    errorSource = source || null;
}

export function clearError(source) {
    if (source && errorSource !== source) return;
    const box = $("#error");
    box.textContent = "";
    box.hidden = true;
    errorSource = null;
}

/* ---------- the token ---------- */

export function token() {
    try {
        return sessionStorage.getItem(TOKEN_KEY) || "";
    } catch (e) {
        return "";
    }
}

/* Keeps the token the operator pasted; false when this browser refuses sessionStorage. */
export function keepToken(value) {
    try {
        sessionStorage.setItem(TOKEN_KEY, value);
    } catch (e) {
        return false;
    }
    readOnce = false;
    return true;
}

export function forgetToken() {
    readOnce = false;
    try {
        sessionStorage.removeItem(TOKEN_KEY);
    } catch (e) { /* storage refused: nothing kept anyway */ }
}

/* handler() is called when the server refuses the token (forgotten by then): the router shows
 * the token form again. */
export function onTokenRejected(handler) {
    tokenRejectedHandler = handler;
}

/* ---------- the API ---------- */

/* fetch with the token; resolves to the parsed JSON, rejects with an ApiError. A 401 (or a
 * 403 before any read worked) means the token is no good here: back to the token form. */
export async function api(path, options) {
    const method = (options && options.method) || "GET";
    let response;
    try {
        response = await fetch(path, {
            method,
            headers: { Authorization: `Bearer ${token()}`, Accept: "application/json" },
            cache: "no-store",
            credentials: "omit",
            signal: options && options.signal,
        });
    } catch (e) {
        if (e && e.name === "AbortError") throw e;
        throw new ApiError(0, e && e.message ? e.message : "network error", method, path);
    }
    const text = await response.text();
    let body = null;
    try {
        body = text ? JSON.parse(text) : null;
    } catch (e) {
        body = null;
    }
    if (!response.ok) {
        const message = body && typeof body.error === "string" ? body.error
            : (text.split("\n")[0].slice(0, 200) || response.statusText || "request failed");
        const err = new ApiError(response.status, message, method, path);
        if (response.status === 401 || (response.status === 403 && !readOnce && method === "GET")) {
            tokenRejected(err);
        }
        throw err;
    }
    if (body === null) throw new ApiError(response.status, "the answer is not JSON", method, path);
    if (method === "GET") readOnce = true;
    return body;
}

function tokenRejected(err) {
    forgetToken();
    if (tokenRejectedHandler) tokenRejectedHandler();
    showError(err, "token");
}
