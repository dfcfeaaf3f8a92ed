/*
 * Vouch dashboard: the operator's view of the fleet, read from the admin API with a token the
 * operator pastes once (kept in sessionStorage, sent as a Bearer token).
 *
 * Plain JavaScript modules, no framework and no build step: vouchd embeds these files as they
 * are. This one is the router and the sign-in form; the views are overview.js, devices.js and
 * device.js, drawn with charts.js, format.js and dom.js, reading the API through api.js. The
 * page's Content-Security-Policy allows no inline script or style, so every handler is attached
 * in the modules and every look is a class in app.css. Text from the server is always set as
 * textContent, never as HTML.
 *
 * Routes (location.hash): #/ overview, #/devices?q=&attestation=&sort=&order=&page=,
 * #/device/<UDID>. docs/dashboard.md describes each view and the DOM contract the browser tests
 * rely on.
 */
import { clearError, forgetToken, keepToken, learnServerClock, onTokenRejected, showError, token } from "./api.js";
import { deviceView } from "./device.js";
import { devicesView } from "./devices.js";
import { $, clear, el } from "./dom.js";
import { refreshTimes } from "./format.js";
import { overviewView } from "./overview.js";

const app = {
    view: null,        /* the current view: {name, update(route), stop()} */
    routed: false,     /* a view was shown already: later ones take the focus */
};

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
        if (!keepToken(value)) {
            showError(new Error("this browser refuses sessionStorage: the token cannot be kept"));
            return;
        }
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

function start() {
    onTokenRejected(showTokenForm);
    $("#logout").addEventListener("click", () => {
        forgetToken();
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
