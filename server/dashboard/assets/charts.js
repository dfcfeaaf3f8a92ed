/*
 * The overview's charts, drawn as SVG by these functions (no library): the verdict bar, the
 * failure reasons, the age of verified attestations, OS versions and the planned checks. Each
 * takes a piece of GET /v1/fleet and returns an element; none reads or keeps anything else.
 */
import { serverNow } from "./api.js";
import { el, svg } from "./dom.js";
import { LOCALE, VERDICTS, countEl, fmtDuration, fmtNumber, fmtPercent, label } from "./format.js";

const PLAN_REASONS = ["max_age", "random", "os_change", "retry"];
const dayFormat = new Intl.DateTimeFormat(LOCALE, { weekday: "short", day: "numeric", timeZone: "UTC" });

/* The failed devices by reason: a table with a bar per reason. */
export function reasonList(reasons, failed) {
    const max = Math.max(1, ...reasons.map((r) => r[1]));
    return el("table", { class: "reasons" },
        el("thead", null, el("tr", null, el("th", { scope: "col" }, "Reason"),
            el("th", { scope: "col", class: "num" }, "Devices"), el("th", { scope: "col" }, el("span", { class: "sr-only" }, "Share")))),
        el("tbody", null, reasons.map(([reason, count]) => el("tr", null,
            el("th", { scope: "row" }, el("code", null, reason)),
            el("td", { class: "num" }, countEl(`failed:${reason}`, count)),
            el("td", { class: "barcell" }, svg("svg", {
                viewBox: "0 0 100 10", preserveAspectRatio: "none", class: "minibar", role: "img",
                "aria-label": `${fmtPercent(count, failed)} of failures`,
            }, svg("rect", { x: 0, y: 0, width: Math.max(1, (count / max) * 100), height: 10, class: "v-failed" })))))));
}

/* #verdict-bar: the fleet by verdict, one rect per verdict. */
export function verdictBar(verdicts, total) {
    const W = 1000;
    const H = 36;
    const parts = VERDICTS.map((vd) => ({ vd, count: verdicts[vd.key] || 0 }));
    /* A verdict present in the fleet stays visible however small its share. */
    let widths = parts.map((p) => (p.count > 0 && total > 0 ? Math.max(4, (p.count / total) * W) : 0));
    const sum = widths.reduce((a, b) => a + b, 0);
    if (sum > 0) widths = widths.map((w) => (w * W) / sum);
    const summaryText = parts.map((p) => `${p.vd.label} ${fmtNumber(p.count)}`).join(", ");
    const bar = svg("svg", {
        id: "verdict-bar", class: "stacked", viewBox: `0 0 ${W} ${H}`, preserveAspectRatio: "none",
        role: "img", "aria-label": `Devices by verdict: ${summaryText}`,
    });
    bar.append(svg("rect", { x: 0, y: 0, width: W, height: H, class: "track" }));
    let x = 0;
    parts.forEach((p, i) => {
        bar.append(svg("rect", {
            x: x.toFixed(2), y: 0, width: widths[i].toFixed(2), height: H,
            class: `v-${p.vd.key}`, "data-verdict": p.vd.key, "data-value": p.count,
        }, svg("title", null, `${p.vd.label}: ${fmtNumber(p.count)} (${fmtPercent(p.count, total)})`)));
        x += widths[i];
    });
    return bar;
}

/* An upper bound for an axis: 1, 2, 2.5 or 5 times a power of ten, at least max. */
function niceMax(max) {
    if (max <= 0) return 1;
    const power = 10 ** Math.floor(Math.log10(max));
    for (const m of [1, 2, 2.5, 5, 10]) {
        if (m * power >= max) return Math.max(1, m * power);
    }
    return 10 * power;
}

function yAxis(group, top, height, left, width, max) {
    /* whole numbers on every line: 1 to 4 steps of one for small axes, else 4 or 5 steps */
    const ticks = max <= 4 ? max : (max % 4 === 0 ? 4 : 5);
    for (let i = 0; i <= ticks; i++) {
        const value = (max * i) / ticks;
        const y = top + height - (height * i) / ticks;
        group.append(svg("line", { x1: left, x2: left + width, y1: y, y2: y, class: i === 0 ? "axis" : "grid" }));
        if (Number.isInteger(value)) {
            group.append(svg("text", { x: left - 6, y: y + 4, class: "tick", "text-anchor": "end" }, fmtNumber(value)));
        }
    }
}

/* #age-chart: verified devices by the age of their verification, max_age marked. */
export function ageChart(age) {
    const buckets = age.buckets || [];
    const maxAgeDays = (age.max_age_seconds || 0) / 86400;
    const W = 560;
    const H = 230;
    const left = 48;
    const top = 22;
    const bottom = 40;
    const plotW = W - left - 10;
    const plotH = H - top - bottom;
    const max = niceMax(Math.max(0, ...buckets.map((b) => b.count)));
    const total = buckets.reduce((a, b) => a + b.count, 0);
    const chart = svg("svg", {
        id: "age-chart", class: "chart", viewBox: `0 0 ${W} ${H}`, role: "img",
        "aria-label": `Verified devices by age of verification: ${buckets.map((b) => `${bucketLabel(b)} ${fmtNumber(b.count)}`).join(", ")}`,
    });
    const g = svg("g");
    chart.append(g);
    yAxis(g, top, plotH, left, plotW, max);
    const slot = buckets.length ? plotW / buckets.length : plotW;
    let markerX = null;
    let prev = 0;
    buckets.forEach((b, i) => {
        const over = b.le_days === null || b.le_days > maxAgeDays;
        const x = left + i * slot;
        const h = (b.count / max) * plotH;
        g.append(svg("rect", {
            x: (x + slot * 0.15).toFixed(2), y: (top + plotH - h).toFixed(2), width: (slot * 0.7).toFixed(2),
            height: h.toFixed(2), class: over ? "bar over" : "bar", "data-le-days": b.le_days === null ? "older" : b.le_days,
            "data-value": b.count,
        }, svg("title", null, `${bucketLabel(b, true)}: ${fmtNumber(b.count)} devices (${fmtPercent(b.count, total)})`)));
        if (b.count > 0) {
            g.append(svg("text", { x: x + slot / 2, y: top + plotH - h - 5, class: "value", "text-anchor": "middle" }, fmtNumber(b.count)));
        }
        g.append(svg("text", { x: x + slot / 2, y: top + plotH + 16, class: "tick", "text-anchor": "middle" }, bucketLabel(b)));
        if (markerX === null && maxAgeDays > 0 && maxAgeDays > prev && (b.le_days === null || maxAgeDays <= b.le_days)) {
            /* max_age falls in this bucket: at its right edge when it is the edge, else within it */
            const frac = b.le_days === null ? 0 : (maxAgeDays - prev) / (b.le_days - prev);
            markerX = x + slot * frac;
        }
        if (b.le_days !== null) prev = b.le_days;
    });
    if (markerX !== null) {
        g.append(svg("line", { x1: markerX, x2: markerX, y1: top - 8, y2: top + plotH, class: "marker" }));
        g.append(svg("text", { x: markerX - 4, y: top - 10, class: "marker-label", "text-anchor": "end" },
            `max age ${fmtDuration(age.max_age_seconds)}`));
    }
    g.append(svg("text", { x: left + plotW / 2, y: H - 4, class: "axis-label", "text-anchor": "middle" }, "days since verified"));
    return chart;
}

function bucketLabel(b, long) {
    if (b.le_days === null) return long ? "older than the last bucket" : "older";
    return long ? `at most ${b.le_days} ${b.le_days === 1 ? "day" : "days"}` : `≤${b.le_days}`;
}

/* #os-chart: devices by OS version, a bar each. */
export function osChart(versions) {
    if (versions.length === 0) return el("p", { id: "os-chart", class: "muted" }, "No OS version known yet.");
    const W = 560;
    const row = 24;
    const labelW = 110;
    const H = versions.length * row + 8;
    const max = Math.max(1, ...versions.map((v) => v.count));
    const total = versions.reduce((a, v) => a + v.count, 0);
    const barW = W - labelW - 80;
    const chart = svg("svg", {
        id: "os-chart", class: "chart", viewBox: `0 0 ${W} ${H}`, role: "img",
        "aria-label": `OS versions: ${versions.map((v) => `${osLabel(v.os_version)} ${fmtNumber(v.count)}`).join(", ")}`,
    });
    versions.forEach((v, i) => {
        const y = 4 + i * row;
        const w = Math.max(v.count > 0 ? 2 : 0, (v.count / max) * barW);
        chart.append(svg("text", { x: labelW - 8, y: y + 16, class: "tick", "text-anchor": "end" }, osLabel(v.os_version)));
        chart.append(svg("rect", {
            x: labelW, y: y + 3, width: w.toFixed(2), height: row - 8,
            class: v.os_version === "other" || v.os_version === null ? "bar muted-bar" : "bar",
            "data-os-version": v.os_version === null ? "unknown" : v.os_version, "data-value": v.count,
        }, svg("title", null, `${osLabel(v.os_version)}: ${fmtNumber(v.count)} devices (${fmtPercent(v.count, total)})`)));
        chart.append(svg("text", { x: labelW + w + 6, y: y + 16, class: "value" },
            `${fmtNumber(v.count)} · ${fmtPercent(v.count, total)}`));
    });
    return chart;
}

function osLabel(version) {
    if (version === null || version === undefined) return "unknown";
    if (version === "other") return "other";
    return version;
}

/* The seven days from generated_at's date (UTC), each stacked by reason. */
export function plannedChart(planned, generatedAt) {
    const start = new Date(generatedAt || serverNow());
    const days = [];
    for (let i = 0; i < 7; i++) {
        const d = new Date(Date.UTC(start.getUTCFullYear(), start.getUTCMonth(), start.getUTCDate() + i));
        days.push(d.toISOString().slice(0, 10));
    }
    const reasons = PLAN_REASONS.slice();
    for (const p of planned) if (!reasons.includes(p.reason)) reasons.push(p.reason);
    const cell = {};
    for (const p of planned) {
        cell[p.date] = cell[p.date] || {};
        cell[p.date][p.reason] = (cell[p.date][p.reason] || 0) + p.count;
    }
    const dayTotal = (d) => Object.values(cell[d] || {}).reduce((a, b) => a + b, 0);
    const max = niceMax(Math.max(0, ...days.map(dayTotal)));
    const W = 560;
    const H = 230;
    const left = 48;
    const top = 18;
    const bottom = 36;
    const plotW = W - left - 10;
    const plotH = H - top - bottom;
    const slot = plotW / 7;
    const chart = svg("svg", {
        id: "planned-chart", class: "chart", viewBox: `0 0 ${W} ${H}`, role: "img",
        "aria-label": `Planned attestation requests: ${days.map((d) => `${d} ${fmtNumber(dayTotal(d))}`).join(", ")}`,
    });
    const g = svg("g");
    chart.append(g);
    yAxis(g, top, plotH, left, plotW, max);
    days.forEach((d, i) => {
        const x = left + i * slot;
        const column = svg("g", { "data-date": d, "data-value": dayTotal(d) });
        let y = top + plotH;
        for (const reason of reasons) {
            const count = (cell[d] || {})[reason] || 0;
            if (count === 0) continue;
            const h = (count / max) * plotH;
            y -= h;
            column.append(svg("rect", {
                x: (x + slot * 0.18).toFixed(2), y: y.toFixed(2), width: (slot * 0.64).toFixed(2), height: h.toFixed(2),
                class: `r-${PLAN_REASONS.includes(reason) ? reason : "other"}`, "data-reason": reason, "data-value": count,
            }, svg("title", null, `${d}, ${label(reason)}: ${fmtNumber(count)}`)));
        }
        g.append(column);
        const t = dayTotal(d);
        if (t > 0) g.append(svg("text", { x: x + slot / 2, y: y - 5, class: "value", "text-anchor": "middle" }, fmtNumber(t)));
        g.append(svg("text", { x: x + slot / 2, y: top + plotH + 16, class: "tick", "text-anchor": "middle" },
            i === 0 ? "today" : dayFormat.format(new Date(`${d}T00:00:00Z`))));
    });
    const legend = el("ul", { class: "legend small" }, reasons.map((r) => el("li", null,
        el("span", { class: `swatch r-${PLAN_REASONS.includes(r) ? r : "other"}`, "aria-hidden": "true" }), label(r))));
    return el("div", null, chart, legend);
}
