/*
 * The overview (#/): the fleet at a glance from one GET /v1/fleet, whose counts the server makes,
 * polled and updated in place without a reload.
 */
import { ApiError, api, clearError, noteServerTime, serverNow, showError, token } from "./api.js";
import { ageChart, osChart, plannedChart, reasonList, verdictBar } from "./charts.js";
import { $, clear, el } from "./dom.js";
import { VERDICTS, countEl, fmtAbsolute, fmtDuration, fmtNumber, fmtPercent, fmtRelative, timeEl } from "./format.js";

/* Seconds between two reads: 10, or ?poll=SECONDS in the page's address (tests). */
function pollSeconds() {
    const value = Number.parseFloat(new URLSearchParams(location.search).get("poll"));
    return Number.isFinite(value) && value > 0 ? Math.max(value, 0.2) : 10;
}

/* The overview (#/) in root: GET /v1/fleet, read again pollSeconds() after each answer and
 * drawn in place. Returns the view: {name, stop()}. */
export function overviewView(root) {
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
            noteServerTime(fleet.generated_at);
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
