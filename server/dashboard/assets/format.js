/*
 * Numbers, times, reasons and verdicts as people read them. Times are relative to the server's
 * clock (api.js) and shown absolute in UTC beside it; numbers grouped by Intl.NumberFormat.
 */
import { serverNow } from "./api.js";
import { el } from "./dom.js";

export const LOCALE = document.documentElement.lang || "en";
const numberFormat = new Intl.NumberFormat(LOCALE);
const percentFormat = new Intl.NumberFormat(LOCALE, { style: "percent", maximumFractionDigits: 1 });
const relativeFormat = new Intl.RelativeTimeFormat(LOCALE, { numeric: "auto" });

/* The dashboard's verdicts (GET /v1/fleet's verdicts), in the order of the bar and its legend. */
export const VERDICTS = [
    { key: "verified_fresh", label: "Verified, fresh", filter: "verified_fresh" },
    { key: "verified_cached", label: "Verified, cached", filter: "verified_cached" },
    { key: "failed", label: "Failed", filter: "failed" },
    { key: "expired", label: "Expired", filter: "expired" },
    { key: "unsupported", label: "Unsupported", filter: "unsupported" },
    { key: "never_asked", label: "Never asked", filter: "never_asked" },
    { key: "awaiting_first", label: "Awaiting first answer", filter: "awaiting_first" },
];
const VERDICT_LABEL = Object.fromEntries(VERDICTS.map((v) => [v.key, v.label]));

const REASON_LABEL = {
    max_age: "Max age", random: "Random", os_change: "OS change", retry: "Retry",
    operator: "Operator", enrollment: "Enrollment", acme_enrollment: "ACME enrollment",
};

export function fmtNumber(n) {
    return numberFormat.format(n);
}

export function fmtPercent(part, whole) {
    return whole > 0 ? percentFormat.format(part / whole) : "–";
}

/* "2025-09-02 08:14:03 UTC": absolute, unambiguous, whatever the reader's zone. */
export function fmtAbsolute(iso) {
    const d = new Date(iso);
    if (Number.isNaN(d.getTime())) return String(iso);
    return d.toISOString().replace("T", " ").replace(/\.\d+Z$/, " UTC").replace(/Z$/, " UTC");
}

export function fmtRelative(iso, now) {
    const d = new Date(iso);
    if (Number.isNaN(d.getTime())) return "";
    const seconds = (d.getTime() - (now || serverNow())) / 1000;
    const abs = Math.abs(seconds);
    const units = [
        [60, 1, "second"], [3600, 60, "minute"], [86400, 3600, "hour"],
        [86400 * 60, 86400, "day"], [86400 * 730, 86400 * 30.44, "month"],
        [Infinity, 86400 * 365.25, "year"],
    ];
    for (const [limit, size, unit] of units) {
        if (abs < limit) return relativeFormat.format(Math.round(seconds / size), unit);
    }
    return "";
}

/* Every relative time on the page is a <time datetime> element: redraw them all. */
export function refreshTimes() {
    for (const t of document.querySelectorAll("#view time[datetime]")) {
        t.textContent = fmtRelative(t.getAttribute("datetime"));
    }
}

/* A time shown both ways: relative in the text, absolute beside it (and in the title). */
export function timeEl(iso, options) {
    if (!iso) return el("span", { class: "muted" }, (options && options.none) || "—");
    const abs = fmtAbsolute(iso);
    /* in tables, to the minute (the title keeps the second) */
    const shown = options && options.short ? abs.replace(/:\d\d UTC$/, " UTC") : abs;
    return el("span", { class: "when" },
        el("time", { datetime: iso, title: abs }, fmtRelative(iso)),
        options && options.note ? el("span", { class: "note" }, ` · ${options.note}`) : null,
        el("span", { class: "abs" }, shown));
}

/* A reason (or any other code) for people: "Max age", "os change". */
export function label(key) {
    if (key === null || key === undefined) return "—";
    return REASON_LABEL[key] || String(key).replace(/_/g, " ");
}

/* "1 day", "30 days", "1 hour": a max age for people. */
export function fmtDuration(seconds) {
    if (seconds % 86400 === 0) return `${fmtNumber(seconds / 86400)} ${seconds === 86400 ? "day" : "days"}`;
    if (seconds % 3600 === 0) return `${fmtNumber(seconds / 3600)} ${seconds === 3600 ? "hour" : "hours"}`;
    return `${fmtNumber(seconds)} s`;
}

/* The verdict of a device object, by the rules GET /v1/fleet counts with. */
function deviceVerdict(device) {
    const a = device.attestation || {};
    switch (a.status) {
    case "verified": return a.freshness === "fresh" ? "verified_fresh" : "verified_cached";
    case "failed": case "expired": case "unsupported": return a.status;
    default: return a.request ? "awaiting_first" : "never_asked";
    }
}

export function verdictBadge(device) {
    const a = device.attestation || {};
    const verdict = deviceVerdict(device);
    const parts = [el("span", { class: `badge v-${verdict}` }, VERDICT_LABEL[verdict])];
    if (verdict === "failed" && a.reason) parts.push(el("code", { class: "reason" }, a.reason));
    if (a.request && a.request.state === "pending") parts.push(el("span", { class: "badge v-pending" }, "pending"));
    return parts;
}

/* A count of the overview: data-value is the integer, the text is it for people. */
export function countEl(name, value, tag) {
    return el(tag || "span", { class: "count", "data-count": name, "data-value": value }, fmtNumber(value));
}
