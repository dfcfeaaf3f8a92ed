/*
 * The device list (#/devices): GET /v1/fleet/devices searched, filtered, sorted and paged by the
 * server, 50 devices a page; the list's state lives in the route, so it can be bookmarked.
 */
import { api, clearError, showError } from "./api.js";
import { clear, el } from "./dom.js";
import { fmtNumber, label, timeEl, verdictBadge } from "./format.js";

const PAGE_SIZE = 50;
/* The attestation values of GET /v1/fleet/devices the filter offers. */
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

/* The device list (#/devices?q=&attestation=&sort=&order=&page=) in root. Returns the view:
 * {name, update(params) for a change of the list's parameters alone, stop()}. */
export function devicesView(root, initialParams) {
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
