/*
 * Vouch dashboard: the operator's view of the fleet, read from the admin API with a token the
 * operator pastes once (kept in sessionStorage, sent as a Bearer token).
 *
 * Plain JavaScript, no framework and no build step: vouchd embeds this file as it is. The page's
 * Content-Security-Policy allows no inline script or style, so every handler is attached here and
 * every look is a class in app.css. Text from the server is always set as textContent, never as
 * HTML. Charts are SVG drawn by the small functions below.
 *
 * Routes (location.hash): #/ overview, #/devices?q=&attestation=&sort=&order=&page=,
 * #/device/<UDID>. docs/dashboard.md describes each view and the DOM contract the browser tests
 * rely on.
 */
"use strict";

(function () {
    const TOKEN_KEY = "vouch-token";
    const PAGE_SIZE = 50;
    const SVGNS = "http://www.w3.org/2000/svg";
    const LOCALE = document.documentElement.lang || "en";
    const numberFormat = new Intl.NumberFormat(LOCALE);
    const percentFormat = new Intl.NumberFormat(LOCALE, { style: "percent", maximumFractionDigits: 1 });
    const relativeFormat = new Intl.RelativeTimeFormat(LOCALE, { numeric: "auto" });
    const dayFormat = new Intl.DateTimeFormat(LOCALE, { weekday: "short", day: "numeric", timeZone: "UTC" });

    const VERDICTS = [
        { key: "verified_fresh", label: "Verified, fresh", filter: "verified_fresh" },
        { key: "verified_cached", label: "Verified, cached", filter: "verified_cached" },
        { key: "failed", label: "Failed", filter: "failed" },
        { key: "expired", label: "Expired", filter: "expired" },
        { key: "unsupported", label: "Unsupported", filter: "unsupported" },
        { key: "never_asked", label: "Never asked", filter: "never_asked" },
        { key: "awaiting_first", label: "Awaiting first answer", filter: "awaiting_first" },
    ];
    const VERDICT_LABEL = Object.fromEntries(VERDICTS.map((v) => [v.key, v.label]));
    const FILTERS = [
        ["", "All devices"],
        ["verified", "Verified (fresh or cached)"],
        ["verified_fresh", "Verified, fresh"],
        ["verified_cached", "Verified, cached"],
        ["failed", "Failed"],
        ["expired", "Expired"],
        ["unsupported", "Unsupported"],
        ["none", "No verdict (never asked or awaiting)"],
        ["never_asked", "Never asked"],
        ["awaiting_first", "Awaiting first answer"],
        ["pending", "Request pending"],
    ];
    const COLUMNS = [
        { sort: "udid", label: "UDID" },
        { sort: "serial", label: "Serial" },
        { sort: "model", label: "Model" },
        { sort: "os_version", label: "OS" },
        { sort: "verdict", label: "Verdict" },
        { sort: "last_seen", label: "Last seen" },
        { sort: "next_check", label: "Next check" },
    ];
    const PLAN_REASONS = ["max_age", "random", "os_change", "retry"];
    const REASON_LABEL = {
        max_age: "Max age", random: "Random", os_change: "OS change", retry: "Retry",
        operator: "Operator", enrollment: "Enrollment", acme_enrollment: "ACME enrollment",
    };

    const app = {
        view: null,        /* the current view: {name, update(route), stop()} */
        readOnce: false,   /* a read succeeded with this token */
        clockOffset: 0,    /* ms: the server's clock (the one its verdicts use) minus this browser's */
        routed: false,     /* a view was shown already: later ones take the focus */
    };

    function serverNow() {
        return Date.now() + app.clockOffset;
    }

    /* "3 hours ago" must mean the server's three hours: learn how far its clock is from this
     * browser's (its Date header, plus the test clock's skew that /healthz names), once. Never
     * fatal: without it, times are relative to this browser's clock. */
    async function learnServerClock() {
        try {
            const response = await fetch("/healthz", { cache: "no-store", credentials: "omit" });
            const date = Date.parse(response.headers.get("Date") || "");
            const health = await response.json();
            let offset = Number.isNaN(date) ? 0 : date - Date.now();
            if (Math.abs(offset) < 2000) offset = 0; /* the header has whole seconds */
            if (health && typeof health.clock_skew_s === "number") offset += health.clock_skew_s * 1000;
            app.clockOffset = offset;
        } catch (e) {
            app.clockOffset = 0;
        }
    }

    /* ---------- DOM helpers ---------- */

    /* el("p", {class: "x", "data-field": "udid"}, "text", child, ...): an element. Attributes
     * that are null, undefined or false are left out; true makes an empty attribute. */
    function el(tag, attrs, ...children) {
        const node = document.createElement(tag);
        setAttrs(node, attrs);
        append(node, children);
        return node;
    }

    function svg(tag, attrs, ...children) {
        const node = document.createElementNS(SVGNS, tag);
        setAttrs(node, attrs);
        append(node, children);
        return node;
    }

    function setAttrs(node, attrs) {
        for (const [name, value] of Object.entries(attrs || {})) {
            if (value === null || value === undefined || value === false) continue;
            node.setAttribute(name, value === true ? "" : String(value));
        }
    }

    function append(node, children) {
        for (const child of children.flat(Infinity)) {
            if (child === null || child === undefined || child === false) continue;
            node.append(child instanceof Node ? child : String(child));
        }
    }

    function clear(node) {
        while (node.firstChild) node.removeChild(node.firstChild);
        return node;
    }

    function $(selector, root) {
        return (root || document).querySelector(selector);
    }

    /* ---------- formatting ---------- */

    function fmtNumber(n) {
        return numberFormat.format(n);
    }

    function fmtPercent(part, whole) {
        return whole > 0 ? percentFormat.format(part / whole) : "–";
    }

    /* "2025-09-02 08:14:03 UTC": absolute, unambiguous, whatever the reader's zone. */
    function fmtAbsolute(iso) {
        const d = new Date(iso);
        if (Number.isNaN(d.getTime())) return String(iso);
        return d.toISOString().replace("T", " ").replace(/\.\d+Z$/, " UTC").replace(/Z$/, " UTC");
    }

    function fmtRelative(iso, now) {
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
    function refreshTimes() {
        for (const t of document.querySelectorAll("#view time[datetime]")) {
            t.textContent = fmtRelative(t.getAttribute("datetime"));
        }
    }

    /* A time shown both ways: relative in the text, absolute beside it (and in the title). */
    function timeEl(iso, options) {
        if (!iso) return el("span", { class: "muted" }, (options && options.none) || "—");
        const abs = fmtAbsolute(iso);
        /* in tables, to the minute (the title keeps the second) */
        const shown = options && options.short ? abs.replace(/:\d\d UTC$/, " UTC") : abs;
        return el("span", { class: "when" },
            el("time", { datetime: iso, title: abs }, fmtRelative(iso)),
            options && options.note ? el("span", { class: "note" }, ` · ${options.note}`) : null,
            el("span", { class: "abs" }, shown));
    }

    const PROPERTY_LABEL = {
        udid: "UDID", serial_number: "Serial number", os_version: "OS version", sepos_version: "SEPOS version",
        llb_version: "LLB version", software_update_device_id: "Software update device ID",
        sip_enabled: "SIP enabled", secure_boot: "Secure boot", third_party_kexts_allowed: "Third-party kexts allowed",
    };

    function label(key) {
        if (key === null || key === undefined) return "—";
        return REASON_LABEL[key] || String(key).replace(/_/g, " ");
    }

    /* "1 day", "30 days", "1 hour": a max age for people. */
    function fmtDuration(seconds) {
        if (seconds % 86400 === 0) return `${fmtNumber(seconds / 86400)} ${seconds === 86400 ? "day" : "days"}`;
        if (seconds % 3600 === 0) return `${fmtNumber(seconds / 3600)} ${seconds === 3600 ? "hour" : "hours"}`;
        return `${fmtNumber(seconds)} s`;
    }

    /* The verdict of a device object, by the rules GET /v1/fleet counts with. */
    function deviceVerdict(device) {
        const a = device.attestation || {};
        switch (a.status) {
        case "verified": return a.freshness === "cached" ? "verified_cached" : "verified_fresh";
        case "failed": case "expired": case "unsupported": return a.status;
        default: return a.request ? "awaiting_first" : "never_asked";
        }
    }

    function verdictBadge(device) {
        const a = device.attestation || {};
        const verdict = deviceVerdict(device);
        const parts = [el("span", { class: `badge v-${verdict}` }, VERDICT_LABEL[verdict])];
        if (verdict === "failed" && a.reason) parts.push(el("code", { class: "reason" }, a.reason));
        if (a.request && a.request.state === "pending") parts.push(el("span", { class: "badge v-pending" }, "pending"));
        return parts;
    }

    /* ---------- errors ---------- */

    class ApiError extends Error {
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
    function showError(err, source) {
        const box = $("#error");
        const text = err instanceof ApiError ? err.describe() : `Error: ${err && err.message ? err.message : err}`;
        box.textContent = text;
        box.hidden = false;
        errorSource = source || null;
    }

    function clearError(source) {
        if (source && errorSource !== source) return;
        const box = $("#error");
        box.textContent = "";
        box.hidden = true;
        errorSource = null;
    }

    /* ---------- the API ---------- */

    function token() {
        try {
            return sessionStorage.getItem(TOKEN_KEY) || "";
        } catch (e) {
            return "";
        }
    }

    /* fetch with the token; resolves to the parsed JSON, rejects with an ApiError. A 401 (or a
     * 403 before any read worked) means the token is no good here: back to the token form. */
    async function api(path, options) {
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
            if (response.status === 401 || (response.status === 403 && !app.readOnce && method === "GET")) {
                tokenRejected(err);
            }
            throw err;
        }
        if (body === null) throw new ApiError(response.status, "the answer is not JSON", method, path);
        if (method === "GET") app.readOnce = true;
        return body;
    }

    function tokenRejected(err) {
        app.readOnce = false;
        try {
            sessionStorage.removeItem(TOKEN_KEY);
        } catch (e) { /* storage refused: nothing kept anyway */ }
        showTokenForm();
        showError(err, "token");
    }

    /* ---------- shell ---------- */

    function setView(view) {
        if (app.view && app.view.stop) app.view.stop();
        app.view = view;
    }

    function markNav(name) {
        for (const a of document.querySelectorAll("[data-nav]")) {
            if (a.dataset.nav === name) a.setAttribute("aria-current", "page");
            else a.removeAttribute("aria-current");
        }
    }

    function showTokenForm() {
        setView(null);
        markNav(null);
        $("#logout").hidden = true;
        const input = el("input", {
            id: "token-input", name: "token", type: "password", autocomplete: "off",
            spellcheck: "false", required: true, "aria-describedby": "token-help",
        });
        const form = el("form", { id: "token-form", class: "card token-card", "aria-labelledby": "token-title" },
            el("h1", { id: "token-title" }, "Sign in to Vouch"),
            el("label", { for: "token-input" }, "Admin API token"),
            input,
            el("p", { id: "token-help", class: "help" },
                "A token of scope read is enough to look; re-attesting a device needs admin. ",
                "The token stays in this tab (sessionStorage) and is sent only to this server."),
            el("button", { type: "submit", class: "button primary" }, "Open the dashboard"));
        form.addEventListener("submit", (event) => {
            event.preventDefault();
            const value = input.value.trim();
            if (!value) return;
            try {
                sessionStorage.setItem(TOKEN_KEY, value);
            } catch (e) {
                showError(new Error("this browser refuses sessionStorage: the token cannot be kept"));
                return;
            }
            app.readOnce = false;
            clearError();
            route();
        });
        clear($("#view")).append(form);
        document.title = "Sign in · Vouch";
        input.focus();
    }

    function route() {
        if (!token()) {
            showTokenForm();
            return;
        }
        $("#logout").hidden = false;
        const hash = location.hash.replace(/^#/, "") || "/";
        const qmark = hash.indexOf("?");
        const path = qmark < 0 ? hash : hash.slice(0, qmark);
        const params = new URLSearchParams(qmark < 0 ? "" : hash.slice(qmark + 1));
        let name;
        let arg = null;
        if (path === "/" || path === "") {
            name = "overview";
        } else if (path === "/devices") {
            name = "devices";
        } else if (path.startsWith("/device/") && path.length > "/device/".length) {
            name = "device";
            try {
                arg = decodeURIComponent(path.slice("/device/".length));
            } catch (e) {
                arg = path.slice("/device/".length);
            }
        } else {
            name = "notfound";
        }
        markNav(name === "device" ? "devices" : name);
        /* The devices list updates itself when only its parameters change, so that the search
         * box keeps its focus and caret. */
        if (app.view && app.view.name === name && app.view.update && name === "devices") {
            app.view.update(params);
            return;
        }
        clearError();
        setView(null); /* the old view stops before the new one starts */
        const root = clear($("#view"));
        /* after a navigation, assistive technology starts reading at the new view */
        if (app.routed) root.focus({ preventScroll: true });
        app.routed = true;
        if (name === "overview") setView(overviewView(root));
        else if (name === "devices") setView(devicesView(root, params));
        else if (name === "device") setView(deviceView(root, arg));
        else {
            setView(null);
            root.append(el("section", { class: "card" }, el("h1", null, "Not found"),
                el("p", null, "No such page. ", el("a", { href: "#/" }, "Back to the overview"), ".")));
        }
    }

    /* ---------- overview ---------- */

    function pollSeconds() {
        const value = Number.parseFloat(new URLSearchParams(location.search).get("poll"));
        return Number.isFinite(value) && value > 0 ? Math.max(value, 0.2) : 10;
    }

    function countEl(name, value, tag) {
        return el(tag || "span", { class: "count", "data-count": name, "data-value": value }, fmtNumber(value));
    }

    function overviewView(root) {
        const section = el("section", { id: "overview", "aria-labelledby": "overview-title" },
            el("div", { class: "page-head" },
                el("h1", { id: "overview-title" }, "Fleet overview"),
                el("p", { class: "live", "aria-live": "off" },
                    el("span", { class: "live-dot", "aria-hidden": "true" }),
                    "Updated ", el("span", { id: "updated-at" }, "…"))),
            el("div", { class: "overview-body", "aria-busy": "true" }, el("p", { class: "loading" }, "Loading the fleet…")));
        root.append(section);
        document.title = "Overview · Vouch";
        const body = $(".overview-body", section);
        let timer = null;
        let stopped = false;
        let controller = null;
        let last = null;

        /* A hidden tab does not poll (each poll counts the whole fleet on the server); it
         * reads again as soon as it is shown. */
        let waitingForVisible = false;
        function onVisible() {
            if (!document.hidden && waitingForVisible && !stopped) {
                waitingForVisible = false;
                load();
            }
        }
        document.addEventListener("visibilitychange", onVisible);

        async function load() {
            if (document.hidden) {
                waitingForVisible = true;
                return;
            }
            controller = new AbortController();
            try {
                const fleet = await api("/v1/fleet", { signal: controller.signal });
                if (stopped) return;
                /* generated_at is the database's clock: the truest "now" there is (whole
                 * seconds, so only a difference of more than two is taken) */
                const offset = Date.parse(fleet.generated_at) - Date.now();
                if (Number.isFinite(offset) && Math.abs(offset - app.clockOffset) > 2000) app.clockOffset = offset;
                last = fleet;
                renderOverview(body, fleet);
                body.setAttribute("aria-busy", "false");
                renderUpdated(section, fleet.generated_at);
                section.classList.remove("stale");
                clearError("overview");
            } catch (err) {
                if (stopped || (err && err.name === "AbortError")) return;
                section.classList.add("stale");
                if (!(err instanceof ApiError && err.status === 401)) showError(err, "overview");
                if (!token()) return;
            }
            if (!stopped) timer = setTimeout(load, pollSeconds() * 1000);
        }

        /* The relative "updated 5 seconds ago" ages between polls too. */
        const ticker = setInterval(() => {
            if (last) renderUpdated(section, last.generated_at);
        }, 1000);

        load();
        return {
            name: "overview",
            stop() {
                stopped = true;
                clearTimeout(timer);
                clearInterval(ticker);
                document.removeEventListener("visibilitychange", onVisible);
                if (controller) controller.abort();
            },
        };
    }

    function renderUpdated(section, iso) {
        const target = $("#updated-at", section);
        clear(target);
        target.append(el("time", { datetime: iso, title: fmtAbsolute(iso) }, fmtRelative(iso)),
            el("span", { class: "abs" }, ` (${fmtAbsolute(iso)})`));
    }

    function renderOverview(body, fleet) {
        const total = fleet.devices;
        const v = fleet.verdicts || {};
        const verified = (v.verified_fresh || 0) + (v.verified_cached || 0);

        const summary = el("div", { class: "stats" },
            stat("Devices", countEl("devices", total), "enrolled or known to vouchd"),
            stat("Verified", el("span", { class: "count plain" }, fmtPercent(verified, total)),
                `${fmtNumber(verified)} proven by Apple's attestation`),
            stat("Failed", el("span", { class: "count plain" }, fmtNumber(v.failed || 0)), "the last verdict failed", v.failed > 0 ? "bad" : null),
            stat("Requests pending", countEl("pending", fleet.pending || 0), "asked, not answered yet"));

        const verdictCard = el("section", { class: "card wide", "aria-labelledby": "verdicts-title" },
            el("h2", { id: "verdicts-title" }, "Devices by verdict"),
            verdictBar(v, total),
            el("ul", { class: "legend" }, VERDICTS.map((vd) => el("li", null,
                el("a", { href: `#/devices?attestation=${vd.filter}`, class: "legend-item" },
                    el("span", { class: `swatch v-${vd.key}`, "aria-hidden": "true" }),
                    el("span", { class: "legend-label" }, vd.label),
                    countEl(vd.key, v[vd.key] || 0),
                    el("span", { class: "share" }, fmtPercent(v[vd.key] || 0, total)))))));

        const reasons = Object.entries(fleet.failed_by_reason || {}).sort((a, b) => b[1] - a[1] || a[0].localeCompare(b[0]));
        const failedCard = el("section", { class: "card", "aria-labelledby": "failed-title" },
            el("h2", { id: "failed-title" }, "Failures by reason"),
            reasons.length === 0 ? el("p", { class: "muted" }, "No device failed its last attestation.")
                : reasonList(reasons, v.failed || 0));

        const ageCard = el("section", { class: "card", "aria-labelledby": "age-title" },
            el("h2", { id: "age-title" }, "Age of verified attestations"),
            el("p", { class: "help" }, "Verified devices by the age of their verification; max age ",
                fmtDuration((fleet.attestation_age || {}).max_age_seconds || 0), "."),
            ageChart(fleet.attestation_age || { buckets: [], max_age_seconds: 0 }));

        const osCard = el("section", { class: "card", "aria-labelledby": "os-title" },
            el("h2", { id: "os-title" }, "OS versions"),
            osChart(fleet.os_versions || []));

        const planCard = el("section", { class: "card", "aria-labelledby": "plan-title" },
            el("h2", { id: "plan-title" }, "Planned checks, next 7 days"),
            el("p", { class: "help" }, "Attestation requests the scheduler will send, by day (UTC) and reason."),
            plannedChart(fleet.planned || [], fleet.generated_at));

        const push = fleet.push || {};
        const hooks = fleet.webhooks || {};
        const pushCard = el("section", { class: "card", "aria-labelledby": "push-title" },
            el("h2", { id: "push-title" }, "Push health"),
            pushHealth(push));
        const hooksCard = el("section", { class: "card", "aria-labelledby": "hooks-title" },
            el("h2", { id: "hooks-title" }, "Web-hook outbox"),
            el("p", { class: "help" }, "Events waiting for a receiver, and those given up on (GET /v1/events?status=dead)."),
            el("div", { id: "webhook-outbox", class: "minis" },
                mini("Pending", countEl("webhooks_pending", hooks.pending || 0), null),
                mini("Dead", countEl("webhooks_dead", hooks.dead || 0), hooks.dead > 0 ? "bad" : null)));

        clear(body).append(summary, verdictCard,
            el("div", { class: "grid" }, failedCard, ageCard, osCard, planCard, pushCard, hooksCard));
    }

    function stat(title, value, help, tone) {
        return el("div", { class: `stat${tone ? ` ${tone}` : ""}` },
            el("span", { class: "stat-title" }, title), value, el("span", { class: "stat-help" }, help));
    }

    function mini(title, value, tone) {
        return el("div", { class: `mini${tone ? ` ${tone}` : ""}` }, el("span", { class: "stat-title" }, title), value);
    }

    function reasonList(reasons, failed) {
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

    function verdictBar(verdicts, total) {
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

    function ageChart(age) {
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

    function osChart(versions) {
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
    function plannedChart(planned, generatedAt) {
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

    function pushHealth(push) {
        const state = push.apns || "off";
        const stateText = { ok: "OK", degraded: "Degraded", off: "Off (no push certificate)" }[state] || state;
        const notAfter = push.certificate_not_after;
        let certNote = null;
        if (notAfter) {
            const days = (new Date(notAfter).getTime() - serverNow()) / 86400000;
            if (days < 0) certNote = el("span", { class: "badge bad" }, "expired");
            else if (days < 30) certNote = el("span", { class: "badge warn" }, "renew soon");
        }
        return el("div", { id: "push-health", "data-apns": state },
            el("dl", { class: "facts" },
                el("dt", null, "APNs"), el("dd", null, el("span", { class: `badge apns-${state}` }, stateText)),
                el("dt", null, "Certificate expires"),
                el("dd", { "data-field": "certificate_not_after" }, notAfter ? [timeEl(notAfter), " ", certNote] : el("span", { class: "muted" }, "no certificate")),
                el("dt", null, "Active push tokens"), el("dd", null, countEl("active_tokens", push.active_tokens || 0)),
                el("dt", null, "Dead push tokens"),
                el("dd", { class: push.dead_tokens > 0 ? "warn" : null }, countEl("dead_tokens", push.dead_tokens || 0))));
    }

    /* ---------- devices ---------- */

    function devicesView(root, initialParams) {
        const state = readListParams(initialParams);
        const search = el("input", {
            id: "device-search", type: "search", placeholder: "UDID, serial, model or product", maxlength: 64,
            autocomplete: "off", spellcheck: "false", value: state.q,
        });
        const filter = el("select", { id: "device-filter" },
            FILTERS.map(([value, text]) => el("option", { value, selected: value === state.attestation }, text)));
        const headRow = el("tr", null, COLUMNS.map((c) => el("th", { scope: "col", "data-sort": c.sort },
            el("button", { type: "button", class: "sort" }, c.label, el("span", { class: "sort-icon", "aria-hidden": "true" })))));
        const tbody = el("tbody");
        const table = el("table", { id: "devices-table", class: "data", "aria-describedby": "page-info" },
            el("caption", { class: "sr-only" }, "Devices; the column headers sort"),
            el("thead", null, headRow), tbody);
        const prev = el("button", { type: "button", id: "prev-page", class: "button" }, "‹ Previous");
        const next = el("button", { type: "button", id: "next-page", class: "button" }, "Next ›");
        const info = el("span", { id: "page-info", "aria-live": "polite" }, "…");
        const section = el("section", { id: "devices", "aria-labelledby": "devices-title" },
            el("div", { class: "page-head" }, el("h1", { id: "devices-title" }, "Devices")),
            el("div", { class: "toolbar", role: "search" },
                el("div", { class: "field grow" }, el("label", { for: "device-search" }, "Search"), search),
                el("div", { class: "field" }, el("label", { for: "device-filter" }, "Attestation"), filter)),
            el("div", { class: "table-wrap card flush" }, table),
            el("div", { class: "pager" }, prev, info, next));
        root.append(section);
        document.title = "Devices · Vouch";

        let seq = 0;
        let controller = null;
        let debounce = null;
        let total = 0;

        function hashFor(s) {
            const p = new URLSearchParams();
            if (s.q) p.set("q", s.q);
            if (s.attestation) p.set("attestation", s.attestation);
            if (s.sort !== "udid") p.set("sort", s.sort);
            if (s.order !== "asc") p.set("order", s.order);
            if (s.page > 1) p.set("page", String(s.page));
            const qs = p.toString();
            return `#/devices${qs ? `?${qs}` : ""}`;
        }

        /* Navigation that belongs in the history (sorting, paging, filtering) goes through the
         * hash; typing replaces the entry instead of pushing one per key. */
        function go(changes, replace) {
            const next = Object.assign({}, state, changes);
            const hash = hashFor(next);
            if (replace) {
                history.replaceState(null, "", hash);
                update(new URLSearchParams(hash.split("?")[1] || ""));
            } else if (location.hash !== hash) {
                location.hash = hash;
            } else {
                update(new URLSearchParams(hash.split("?")[1] || ""));
            }
        }

        function markSort() {
            for (const th of headRow.children) {
                const active = th.dataset.sort === state.sort;
                if (active) th.setAttribute("aria-sort", state.order === "desc" ? "descending" : "ascending");
                else th.removeAttribute("aria-sort");
            }
        }

        async function load() {
            const mine = ++seq;
            if (controller) controller.abort();
            controller = new AbortController();
            const p = new URLSearchParams();
            if (state.q) p.set("q", state.q);
            if (state.attestation) p.set("attestation", state.attestation);
            p.set("sort", state.sort);
            p.set("order", state.order);
            p.set("offset", String((state.page - 1) * PAGE_SIZE));
            p.set("limit", String(PAGE_SIZE));
            table.setAttribute("aria-busy", "true");
            try {
                const answer = await api(`/v1/fleet/devices?${p}`, { signal: controller.signal });
                if (mine !== seq) return;
                total = answer.total;
                renderRows(answer.devices || []);
                const first = answer.devices.length ? answer.offset + 1 : 0;
                const last = answer.offset + answer.devices.length;
                info.textContent = answer.total === 0 ? "0 of 0"
                    : (first === 0 ? `none on this page, ${fmtNumber(answer.total)} in all`
                        : `${fmtNumber(first)}–${fmtNumber(last)} of ${fmtNumber(answer.total)}`);
                info.dataset.total = String(answer.total);
                prev.disabled = answer.offset <= 0;
                next.disabled = last >= answer.total;
                clearError("devices");
            } catch (err) {
                if (err && err.name === "AbortError") return;
                if (mine !== seq) return;
                clear(tbody).append(el("tr", null, el("td", { colspan: COLUMNS.length, class: "empty" }, "The devices could not be read.")));
                info.textContent = "—";
                prev.disabled = true;
                next.disabled = true;
                showError(err, "devices");
            } finally {
                if (mine === seq) table.setAttribute("aria-busy", "false");
            }
        }

        function renderRows(devices) {
            clear(tbody);
            if (devices.length === 0) {
                tbody.append(el("tr", null, el("td", { colspan: COLUMNS.length, class: "empty" },
                    state.q || state.attestation ? "No device matches." : "No devices yet.")));
                return;
            }
            for (const d of devices) {
                const a = d.attestation || {};
                const href = `#/device/${encodeURIComponent(d.udid)}`;
                tbody.append(el("tr", { "data-udid": d.udid },
                    el("td", { class: "mono" }, el("a", { href }, d.udid)),
                    el("td", { class: "mono" }, d.serial_number || el("span", { class: "muted" }, "—")),
                    el("td", null, d.model || el("span", { class: "muted" }, "—"),
                        d.product_name ? el("span", { class: "sub" }, d.product_name) : null),
                    el("td", null, d.os_version || el("span", { class: "muted" }, "—"),
                        d.build_version ? el("span", { class: "sub" }, d.build_version) : null),
                    el("td", null, verdictBadge(d)),
                    el("td", null, timeEl(d.last_seen_at, { none: "never", short: true })),
                    el("td", null, a.next_due_at ? timeEl(a.next_due_at, { note: label(a.next_due_reason), short: true })
                        : el("span", { class: "muted" }, a.request ? "request out" : "—"))));
            }
        }

        function update(params) {
            const s = readListParams(params);
            Object.assign(state, s);
            if (document.activeElement !== search && search.value !== state.q) search.value = state.q;
            filter.value = state.attestation;
            markSort();
            load();
        }

        search.addEventListener("input", () => {
            clearTimeout(debounce);
            debounce = setTimeout(() => {
                const q = search.value.trim().slice(0, 64);
                if (q !== state.q) go({ q, page: 1 }, true);
            }, 250);
        });
        search.addEventListener("keydown", (event) => {
            if (event.key === "Enter") {
                clearTimeout(debounce);
                go({ q: search.value.trim().slice(0, 64), page: 1 }, true);
            }
        });
        filter.addEventListener("change", () => go({ attestation: filter.value, page: 1 }));
        headRow.addEventListener("click", (event) => {
            const th = event.target.closest("th[data-sort]");
            if (!th) return;
            const sort = th.dataset.sort;
            const order = sort === state.sort && state.order === "asc" ? "desc" : "asc";
            go({ sort, order, page: 1 });
        });
        prev.addEventListener("click", () => {
            if (state.page > 1) go({ page: state.page - 1 });
        });
        next.addEventListener("click", () => {
            if (state.page * PAGE_SIZE < total) go({ page: state.page + 1 });
        });

        markSort();
        load();
        return {
            name: "devices",
            update,
            stop() {
                seq++;
                clearTimeout(debounce);
                if (controller) controller.abort();
            },
        };
    }

    function readListParams(params) {
        const page = Number.parseInt(params.get("page") || "1", 10);
        return {
            q: (params.get("q") || "").slice(0, 64),
            attestation: params.get("attestation") || "",
            /* unknown values go to the server, which names the bad parameter */
            sort: params.get("sort") || "udid",
            order: params.get("order") || "asc",
            page: Number.isFinite(page) && page > 0 ? page : 1,
        };
    }

    /* ---------- one device ---------- */

    function deviceView(root, udid) {
        const section = el("section", { id: "device", "aria-labelledby": "device-title", "aria-busy": "true" },
            el("div", { class: "page-head" },
                el("p", { class: "crumbs" }, el("a", { href: "#/devices" }, "Devices"), " / "),
                el("h1", { id: "device-title", class: "mono" }, udid)),
            el("p", { class: "loading" }, "Loading the device…"));
        root.append(section);
        document.title = `${udid} · Vouch`;
        let stopped = false;
        const base = `/v1/devices/${encodeURIComponent(udid)}`;

        async function load(keepResult) {
            /* the device first: an unknown one is one 404, not three */
            const results = [await Promise.allSettled([api(base)]).then((r) => r[0])];
            if (results[0].status === "fulfilled") {
                results.push(...await Promise.allSettled([api(`${base}/attestations`), api(`${base}/commands`)]));
            }
            if (stopped) return;
            const failure = results.find((r) => r.status === "rejected");
            if (results[0].status === "rejected") {
                section.setAttribute("aria-busy", "false");
                clear(section).append(
                    el("div", { class: "page-head" },
                        el("p", { class: "crumbs" }, el("a", { href: "#/devices" }, "Devices"), " / "),
                        el("h1", { id: "device-title", class: "mono" }, udid)),
                    el("p", { class: "card" }, "This device could not be read."));
                showError(results[0].reason, "device");
                return;
            }
            const device = results[0].value;
            const history = results[1].status === "fulfilled" ? results[1].value : null;
            const commands = results[2].status === "fulfilled" ? results[2].value : null;
            const previousResult = keepResult ? $("#reattest-result", section) : null;
            renderDevice(section, device, history, commands, base, () => load(true));
            if (previousResult) $("#reattest-result", section).replaceWith(previousResult);
            section.setAttribute("aria-busy", "false");
            if (failure) showError(failure.reason, "device");
            else clearError("device");
        }

        load(false);
        return {
            name: "device",
            stop() {
                stopped = true;
                const dialog = $("#confirm-reattest");
                if (dialog && dialog.open) dialog.close();
            },
        };
    }

    function identityText(identity) {
        if (!identity) return "none yet (no Authenticate)";
        if (identity.kind === "acme-attested") {
            return `ACME-attested${identity.hardware_bound ? ", hardware-bound" : ""}${identity.revoked ? ", revoked" : ""}`;
        }
        return `SCEP${identity.hardware_bound ? ", hardware-bound" : ""}`;
    }

    function renderDevice(section, device, history, commands, base, reload) {
        const a = device.attestation || {};
        const identity = device.identity;
        const title = [device.product_name, device.model].filter(Boolean).join(" · ") || "Device";

        const reattestButton = el("button", { type: "button", id: "reattest-button", class: "button primary" }, "Re-attest now");
        const result = el("p", { id: "reattest-result", class: "result", "aria-live": "polite" });
        const dialog = buildReattestDialog(device, base, result, reattestButton, reload);

        const facts = el("dl", { class: "facts two" },
            fact("UDID", "udid", el("span", { class: "mono" }, device.udid)),
            fact("Serial number", "serial_number", device.serial_number ? el("span", { class: "mono" }, device.serial_number) : none()),
            fact("Model", "model", device.model || none()),
            fact("Product", "product_name", device.product_name || none()),
            fact("OS version", "os_version", device.os_version || none()),
            fact("Build", "build_version", device.build_version || none()),
            fact("Verdict", "verdict", [verdictBadge(device),
                (a.status === "verified" || a.status === "expired") && a.expires_at
                    ? el("span", { class: "sub" }, a.status === "expired" ? "expired " : "expires ", timeEl(a.expires_at)) : null]),
            fact("Identity", "identity", [el("span", { class: identity && identity.kind === "acme-attested" ? "badge good" : "badge" }, identityText(identity)),
                identity && identity.not_after ? el("span", { class: "sub" }, "certificate until ", timeEl(identity.not_after)) : null,
                identity && identity.certificate_sha256 ? el("span", { class: "sub mono", title: identity.certificate_sha256 }, `SHA-256 ${identity.certificate_sha256.slice(0, 16)}…`) : null]),
            fact("Last seen", "last_seen_at", timeEl(device.last_seen_at, { none: "never" })),
            fact("Next check", "next_due_at", a.next_due_at ? [timeEl(a.next_due_at), el("span", { class: "sub" }, label(a.next_due_reason))]
                : (a.request ? [el("span", { class: "badge v-pending" }, "request out"), el("span", { class: "sub" }, "since ", timeEl(a.request.requested_at), `, ${label(a.request.reason)}`)]
                    : none())),
            fact("Enrolled", "enrolled", device.enrolled ? `yes, generation ${device.generation}` : "no"),
            fact("Push token", "push", device.push ? [device.push.token_state,
                device.push.last_push_at ? el("span", { class: "sub" }, `last push ${device.push.last_push_result || ""} `, timeEl(device.push.last_push_at)) : null] : none()));

        const head = el("div", { class: "page-head" },
            el("p", { class: "crumbs" }, el("a", { href: "#/devices" }, "Devices"), " / "),
            el("div", { class: "title-row" },
                el("div", null, el("h1", { id: "device-title" }, title), el("p", { class: "mono muted" }, device.udid)),
                el("div", { class: "actions" }, reattestButton)),
            result);

        clear(section).append(head,
            el("section", { class: "card", "aria-labelledby": "identity-title" }, el("h2", { id: "identity-title" }, "Device"), facts),
            el("div", { class: "grid two" },
                el("section", { class: "card", "aria-labelledby": "timeline-title" },
                    el("h2", { id: "timeline-title" }, "Attestation history"),
                    timeline(history)),
                el("section", { class: "card", "aria-labelledby": "props-title" },
                    el("h2", { id: "props-title" }, "Attested and reported"),
                    el("p", { class: "help" }, "What Apple's attestation states beside what the device reports. ",
                        a.status === "failed" ? "The verdict failed: the attested values are what the leaf claimed, not facts." : ""),
                    propertiesTable(device))),
            el("section", { class: "card", "aria-labelledby": "commands-title" },
                el("h2", { id: "commands-title" }, "Commands"),
                commandsTable(commands, base)),
            dialog);

        reattestButton.addEventListener("click", () => {
            dialog.showModal();
            $("#confirm-no", dialog).focus();
        });
    }

    function none() {
        return el("span", { class: "muted" }, "—");
    }

    function fact(title, field, value) {
        return el("div", { class: "fact" }, el("dt", null, title), el("dd", { "data-field": field }, value));
    }

    function buildReattestDialog(device, base, result, opener, reload) {
        const yes = el("button", { type: "button", id: "confirm-yes", class: "button primary" }, "Re-attest");
        const no = el("button", { type: "button", id: "confirm-no", class: "button" }, "Cancel");
        const dialog = el("dialog", { id: "confirm-reattest", "aria-labelledby": "confirm-title", "aria-describedby": "confirm-text" },
            el("h2", { id: "confirm-title" }, "Re-attest this device now?"),
            el("p", { id: "confirm-text" }, "Vouch queues an attestation request with a fresh nonce for ",
                el("span", { class: "mono" }, device.udid), " and pushes the device. If a request is already out, that one stands."),
            el("div", { class: "dialog-actions" }, no, yes));
        no.addEventListener("click", () => dialog.close());
        dialog.addEventListener("close", () => opener.focus());
        yes.addEventListener("click", async () => {
            yes.disabled = true;
            dialog.close();
            /* #reattest-result gets text only once the answer is in: the button says we wait */
            result.className = "result";
            result.textContent = "";
            opener.disabled = true;
            opener.textContent = "Asking vouchd…";
            try {
                const answer = await api(`${base}/attest`, { method: "POST" });
                result.className = "result ok";
                result.textContent = answer.queued
                    ? `Queued: attestation request ${answer.command_uuid}. The device has been pushed.`
                    : `A request was already pending: ${answer.command_uuid}. The device has been pushed again.`;
                result.dataset.commandUuid = answer.command_uuid;
                result.dataset.queued = String(answer.queued);
                clearError("reattest");
                reload();
            } catch (err) {
                result.className = "result bad";
                result.textContent = err instanceof ApiError ? `Not queued. ${err.describe()}` : `Not queued: ${err}`;
                showError(err, "reattest");
            } finally {
                yes.disabled = false;
                opener.disabled = false;
                opener.textContent = "Re-attest now";
            }
        });
        return dialog;
    }

    function timeline(history) {
        if (history === null) return el("p", { class: "muted" }, "The history could not be read.");
        if (history.length === 0) {
            return el("div", null, el("ol", { id: "attestation-timeline", class: "timeline empty" }),
                el("p", { class: "muted" }, "No attestation yet in this device's history."));
        }
        return el("ol", { id: "attestation-timeline", class: "timeline" }, history.map((h) => {
            const when = h.received_at || h.requested_at;
            return el("li", {
                class: `t-${h.status}`, "data-status": h.status, "data-freshness": h.freshness || null,
                "data-reason": h.reason || null, "data-id": h.id,
            },
            el("span", { class: "dot", "aria-hidden": "true" }),
            el("div", { class: "t-head" },
                el("span", { class: `badge s-${h.status}` }, h.status),
                h.freshness ? el("span", { class: `badge f-${h.freshness}` }, h.freshness) : null,
                h.reason ? el("code", { class: "reason" }, h.reason) : null,
                el("span", { class: "t-when" }, timeEl(when))),
            el("p", { class: "t-meta" },
                `${h.source === "acme" ? "ACME enrollment" : "MDM request"} · ${label(h.request_reason)}`,
                h.generation !== null && h.generation !== undefined ? ` · generation ${h.generation}` : "",
                h.device_status && h.device_status !== "Acknowledged" ? ` · device answered ${h.device_status}` : "",
                h.properties && h.properties.os_version ? ` · OS ${h.properties.os_version}` : ""),
            h.requested_at && h.received_at ? el("p", { class: "t-meta" }, "asked ", fmtAbsolute(h.requested_at),
                h.expires_at ? ` · leaf valid until ${fmtAbsolute(h.expires_at)}` : "") : null);
        }));
    }

    function propertiesTable(device) {
        const props = (device.attestation && device.attestation.properties) || null;
        const reported = {
            udid: device.udid, serial_number: device.serial_number, os_version: device.os_version,
        };
        const order = ["udid", "serial_number", "os_version", "sepos_version", "llb_version",
            "software_update_device_id", "sip_enabled", "secure_boot", "third_party_kexts_allowed"];
        const keys = order.slice();
        for (const k of Object.keys(props || {})) if (!keys.includes(k)) keys.push(k);
        const show = (v) => (v === null || v === undefined ? el("span", { class: "muted" }, "—")
            : el("span", { class: "mono" }, typeof v === "boolean" ? (v ? "yes" : "no") : String(v)));
        const rows = keys.map((k) => {
            const att = props ? props[k] : null;
            const rep = Object.prototype.hasOwnProperty.call(reported, k) ? reported[k] : undefined;
            const mismatch = att !== null && att !== undefined && rep !== null && rep !== undefined && String(att) !== String(rep);
            return el("tr", { class: mismatch ? "mismatch" : null, "data-property": k },
                el("th", { scope: "row" }, PROPERTY_LABEL[k] || label(k)),
                el("td", null, show(att)),
                el("td", null, rep === undefined ? el("span", { class: "muted", title: "the device does not report this" }, "not reported") : show(rep)),
                el("td", { class: "flag" }, mismatch ? el("span", { class: "badge bad" }, "differs") : null));
        });
        return el("table", { id: "attested-vs-reported", class: "data compact" },
            el("thead", null, el("tr", null, el("th", { scope: "col" }, "Property"), el("th", { scope: "col" }, "Attested"),
                el("th", { scope: "col" }, "Reported"), el("th", { scope: "col" }, el("span", { class: "sr-only" }, "Match")))),
            el("tbody", null, props ? rows : el("tr", null, el("td", { colspan: 4, class: "empty" }, "No attested properties (no parsable leaf yet)."))));
    }

    function commandsTable(commands, base) {
        if (commands === null) return el("p", { class: "muted" }, "The commands could not be read.");
        const answer = el("div", { id: "command-answer", class: "answer", "aria-live": "polite" },
            el("p", { class: "muted" }, commands.length ? "Choose a command to see the device's answer." : ""));
        const tbody = el("tbody", null, commands.length === 0
            ? el("tr", null, el("td", { colspan: 5, class: "empty" }, "No commands."))
            : commands.map((c) => el("tr", { "data-command-uuid": c.command_uuid, tabindex: "0", class: "clickable" },
                el("td", null, c.request_type || el("span", { class: "muted" }, "—"), el("span", { class: "sub mono" }, c.command_uuid)),
                el("td", null, el("span", { class: `badge c-${c.status}` }, c.status)),
                el("td", null, timeEl(c.queued_at)),
                el("td", null, timeEl(c.result_at, { none: "not yet" })),
                el("td", { class: "num" }, fmtNumber(c.not_now_count || 0)))));
        const table = el("table", { id: "commands-table", class: "data" },
            el("caption", { class: "sr-only" }, "Commands; choose one to see its answer"),
            el("thead", null, el("tr", null, el("th", { scope: "col" }, "Command"), el("th", { scope: "col" }, "Status"),
                el("th", { scope: "col" }, "Queued"), el("th", { scope: "col" }, "Answered"), el("th", { scope: "col", class: "num" }, "NotNow"))),
            tbody);
        let seq = 0;
        async function show(row) {
            for (const r of tbody.querySelectorAll("tr[aria-selected]")) r.removeAttribute("aria-selected");
            row.setAttribute("aria-selected", "true");
            const uuid = row.dataset.commandUuid;
            const mine = ++seq;
            clear(answer).append(el("p", { class: "loading" }, "Loading the answer…"));
            try {
                const a = await api(`${base}/commands/${encodeURIComponent(uuid)}`);
                if (mine !== seq) return;
                clear(answer).append(commandAnswer(a));
                answer.dataset.commandUuid = uuid;
                clearError("command");
            } catch (err) {
                if (mine !== seq) return;
                clear(answer).append(el("p", { class: "bad" }, err instanceof ApiError ? err.describe() : String(err)));
                showError(err, "command");
            }
        }
        tbody.addEventListener("click", (event) => {
            const row = event.target.closest("tr[data-command-uuid]");
            if (row) show(row);
        });
        tbody.addEventListener("keydown", (event) => {
            if (event.key !== "Enter" && event.key !== " ") return;
            const row = event.target.closest("tr[data-command-uuid]");
            if (row) {
                event.preventDefault();
                show(row);
            }
        });
        return el("div", { class: "commands" }, el("div", { class: "table-wrap" }, table), answer);
    }

    function commandAnswer(a) {
        return el("div", null,
            el("h3", null, `${a.request_type || "Command"} `, el("span", { class: `badge c-${a.status}` }, a.status)),
            el("dl", { class: "facts" },
                el("dt", null, "Command UUID"), el("dd", { class: "mono" }, a.command_uuid),
                el("dt", null, "Queued"), el("dd", null, timeEl(a.queued_at, { none: "not queued here" })),
                el("dt", null, "Answered"), el("dd", null, timeEl(a.result_at, { none: "not yet" })),
                el("dt", null, "NotNow answers"), el("dd", null, fmtNumber(a.not_now_count || 0))),
            a.error_chain ? [el("h4", null, "Error chain"), el("ol", { class: "errors" }, a.error_chain.map((e) =>
                el("li", null, `${e.ErrorDomain || ""} ${e.ErrorCode !== undefined ? e.ErrorCode : ""}: `,
                    e.USEnglishDescription || e.LocalizedDescription || JSON.stringify(e))))] : null,
            el("h4", null, "Report"),
            a.report === null || a.report === undefined
                ? el("p", { class: "muted" }, a.status === "queued" ? "The device has not answered yet." : "No readable report.")
                : el("pre", { class: "json" }, JSON.stringify(a.report, null, 2)));
    }

    /* ---------- start ---------- */

    function start() {
        $("#logout").addEventListener("click", () => {
            try {
                sessionStorage.removeItem(TOKEN_KEY);
            } catch (e) { /* nothing kept */ }
            app.readOnce = false;
            clearError();
            showTokenForm();
        });
        window.addEventListener("hashchange", route);
        /* The first view does not wait for the server's clock: its times are redrawn when the
         * clock is known, and every 30 s so that "2 minutes ago" stays true. */
        learnServerClock().then(refreshTimes);
        setInterval(refreshTimes, 30000);
        /* An exception nobody caught still says something on the page. */
        window.addEventListener("error", (event) => showError(new Error(event.message || "script error")));
        window.addEventListener("unhandledrejection", (event) => {
            const reason = event.reason;
            if (reason && reason.name === "AbortError") return;
            showError(reason instanceof Error ? reason : new Error(String(reason)));
        });
        route();
    }

    if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start);
    else start();
})();
