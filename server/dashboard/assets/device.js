/*
 * One device (#/device/<UDID>): GET /v1/devices/{udid}, its attestation history and commands;
 * the attested properties beside the reported ones; "Re-attest now" after a confirmation.
 */
import { ApiError, api, clearError, showError } from "./api.js";
import { $, clear, el } from "./dom.js";
import { fmtAbsolute, fmtNumber, label, timeEl, verdictBadge } from "./format.js";

const PROPERTY_LABEL = {
    udid: "UDID", serial_number: "Serial number", os_version: "OS version", sepos_version: "SEPOS version",
    llb_version: "LLB version", software_update_device_id: "Software update device ID",
    sip_enabled: "SIP enabled", secure_boot: "Secure boot", third_party_kexts_allowed: "Third-party kexts allowed",
};

/* One device (#/device/<UDID>) in root. Returns the view: {name, stop()}. */
export function deviceView(root, udid) {
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
