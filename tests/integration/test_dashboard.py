"""The dashboard (GET /ui/, issue 21) in a real browser: Debian's headless chromium driven over the
DevTools protocol (cdp.py), against a vouchd whose fleet has every verdict, each produced through
the protocol (device.py, the stand-in Apple PKI of fake_apple.py, the database's clock):

  verified fresh, verified cached, failed (nonce_mismatch, attestation_withheld x2,
  udid_mismatch), expired (Apple made the leaf 31 days before the clock), unsupported (an iPhone 7
  without an attestation), never asked (Authenticate only: a request is queued at the first
  TokenUpdate), awaiting the first answer (enrolled, the enrollment's request not taken: also
  pending);

plus 55 devices that only sent Authenticate, so that the device list has more than one page.

What the page must do (the DOM contract is in the page's own comments and docs): show the counts
of GET /v1/fleet, which must agree with the device objects of GET /v1/devices; filter, search,
sort and page as GET /v1/fleet/devices does; show a device (identity, timeline, attested vs
reported, commands and their answers); queue a re-attestation after a confirmation (a new pending
attestation_requests row with reason 'operator'), or show the 403 of a read token; show a wrong
token's error; log no console error; send its security headers; and update the overview
without a reload when a verdict changes. Screenshots of the overview and a device page are
written to the run's log directory (tests/.run/integration/<run>/dashboard-*.png).
"""

import datetime
import json
import os
import re
import secrets
import time
import urllib.parse

import cdp
from harness import Vouchd, suite, unavailable, wait_for
from test_attestation import IPHONE
from test_scheduler import DEADLINE_S, SchedulerCase, db_clock, set_clock, sql

DAY = datetime.timedelta(days=1)
VERDICTS = ("verified_fresh", "verified_cached", "failed", "expired", "unsupported",
            "never_asked", "awaiting_first")
CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
       "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'")
OLD_IPHONE = dict(model="iPhone9,3", product_name="iPhone9,3")
PAGE_TIMEOUT = 15.0
MODELS = ("Mac14,2", "Mac15,3", "iPad13,4", "AppleTV14,1", "iPhone14,5")


def verdict_of(device):
    """The overview's verdict of a device object (the contract's rules)."""
    att = device["attestation"]
    status = att["status"]
    if status == "verified":
        return "verified_fresh" if att["freshness"] == "fresh" else "verified_cached"
    if status == "none":
        return "never_asked" if att["request"] is None else "awaiting_first"
    return status


def digits(text):
    return re.sub(r"\D", "", text or "")


class DashboardTest(SchedulerCase):
    vouchd_config = {"attestation_retry_limit": "1", "attestation_retry_delay": "1s",
                     "attestation_mean_interval": "365d", "attestation_max_age": "30d",
                     # the wrong-token test must not lock the browser's address out
                     "admin_login_limit": "1000"}

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        try:
            try:
                cls.browser = cdp.Chromium(
                    log_path=os.path.join(suite().run_dir, f"{cls.__name__}.chromium.log"))
            except cdp.Unavailable as exc:
                unavailable(str(exc))
            cls.fleet = cls("_seed")._seed()
            r = cls.vouchd.admin("POST", "/v1/tokens", body=json.dumps(
                {"name": "dashboard-read", "scope": "read"}).encode(),
                content_type="application/json")
            if r.status != 201:
                raise AssertionError(f"POST /v1/tokens (read): {r!r}")
            cls.read_token = r.json()["token"]
        except BaseException:
            if getattr(cls, "browser", None) is not None:
                cls.browser.close()
            cls._teardown_servers()
            raise

    @classmethod
    def tearDownClass(cls):
        if getattr(cls, "browser", None) is not None:
            cls.browser.close()
        super().tearDownClass()

    # -- the fleet ----------------------------------------------------------------------------
    def _seed(self):
        """Every verdict through the protocol; returns {role: Device}."""
        f = {}
        # Expired: verified with a leaf made now, then the clock moves 31 days on.
        f["expired"] = self.iphone()
        self.attest_at_clock(f["expired"], "expired, at first verified")
        set_clock(self, db_clock(self) + 31 * DAY)
        self.wait_status(f["expired"], "expired")

        f["fresh"] = self.iphone()
        self.attest_at_clock(f["fresh"], "verified fresh")
        f["reattest"] = self.iphone(os_version="17.5")
        self.attest_at_clock(f["reattest"], "verified fresh, to be asked again")

        f["cached"] = self.iphone()
        _cu, _n, chain = self.attest_fresh(f["cached"], "first, fresh", **self.now_leaf())
        self.post_attest(f["cached"].udid)
        cu, _n = self.take_request(f["cached"], "the re-check")
        self.answer(f["cached"], cu, chain, what="the cached chain")
        self.assertVerdict(f["cached"], cu, "verified", None, "cached", "verified cached")

        f["nonce_mismatch"] = self.iphone()
        cu, _n = self.take_request(f["nonce_mismatch"], "nonce_mismatch")
        self.answer(f["nonce_mismatch"], cu,
                    self.chain_for(f["nonce_mismatch"], secrets.token_bytes(32),
                                   **self.now_leaf()), what="another nonce")
        self.assertVerdict(f["nonce_mismatch"], cu, "failed", "nonce_mismatch", "unknown",
                           "another nonce")
        for name in ("withheld_1", "withheld_2"):
            f[name] = self.iphone()
            cu, _n = self.take_request(f[name], name)
            self.answer(f[name], cu, omit_attestation=True, what=name)
            self.assertVerdict(f[name], cu, "failed", "attestation_withheld", None, name)
        f["udid_mismatch"] = self.iphone()
        cu, nonce = self.take_request(f["udid_mismatch"], "udid_mismatch")
        self.answer(f["udid_mismatch"], cu,
                    self.chain_for(f["udid_mismatch"], nonce, udid="00008030-0000000000000000",
                                   **self.now_leaf()), what="another UDID")
        self.assertVerdict(f["udid_mismatch"], cu, "failed", "udid_mismatch", "fresh",
                           "another UDID")

        f["unsupported"] = self.iphone(os_version="15.8", **OLD_IPHONE)
        cu, _n = self.take_request(f["unsupported"], "unsupported")
        self.answer(f["unsupported"], cu, omit_attestation=True, what="unsupported")
        self.assertVerdict(f["unsupported"], cu, "unsupported", None, None, "unsupported")

        f["pending"] = self.iphone()      # awaiting_first: the enrollment's request stays out
        f["live"] = self.iphone()         # answered while the overview watches
        f["never_asked"] = self.new_device(**IPHONE, os_version="17.4")
        self.assertEmpty200(f["never_asked"].authenticate(), "Authenticate only")
        # Enough devices for more than one page; a few models and OS versions to sort by.
        for i in range(55):
            dev = self.new_device(model=MODELS[i % len(MODELS)],
                                  product_name=MODELS[i % len(MODELS)],
                                  os_version=("14.4.1", "14.5", "17.4", "17.5.1")[i % 4])
            self.assertEmpty200(dev.authenticate(), f"Authenticate {i}")
        return f

    def wait_status(self, dev, status, reason=None):
        def reached():
            att = self.attestation(dev.udid)
            return att if (att["status"], att["reason"]) == (status, reason) else None
        return wait_for(reached, DEADLINE_S, what=f"{dev.udid}: {status} ({reason})")

    def now_leaf(self):
        return {"not_before": db_clock(self).replace(microsecond=0)
                - datetime.timedelta(minutes=5)}

    # -- the API --------------------------------------------------------------------------------
    def api(self, path):
        r = self.vouchd.admin("GET", path)
        self.assertStatus(r, 200, f"GET {path}")
        return r.json()

    def fleet_devices(self, **params):
        return self.api("/v1/fleet/devices?" + urllib.parse.urlencode(params))

    # -- the browser ------------------------------------------------------------------------------
    @property
    def ui_url(self):
        return f"{self.vouchd.url}/ui/"

    def open_page(self, token=None, query="", route="#/"):
        """A new tab (its own sessionStorage) on the dashboard; with token, signed in through
        the token form."""
        page = self.browser.new_page()
        self.addCleanup(page.close_socket)
        status = page.navigate(self.ui_url + query + route)
        self.assertEqual(status, 200, f"GET /ui/: {status}")
        if token is not None:
            self.sign_in(page, token)
        return page

    def sign_in(self, page, token):
        page.wait_for_selector("#token-form", visible=True, timeout=PAGE_TIMEOUT)
        page.type("#token-input", token)
        page.click("#token-form [type=submit]")

    def count(self, page, name):
        """(data-value as int, text) of [data-count=name] in #overview, or None."""
        got = page.query(f'#overview [data-count="{name}"]',
                         "e => [e.getAttribute('data-value'), e.textContent]")
        if got is None:
            return None
        return (int(got[0]) if got[0] is not None and got[0].lstrip("-").isdigit() else got[0],
                got[1])

    def wait_overview(self, page):
        page.wait_for_selector('#overview [data-count="devices"][data-value]',
                               timeout=PAGE_TIMEOUT)

    def rows(self, page):
        return page.query_all("#devices-table tbody tr[data-udid]",
                              "e => e.getAttribute('data-udid')")

    def wait_rows(self, page, params, what):
        """The table lists, in order, the UDIDs GET /v1/fleet/devices answers for params (asked
        again at each look: the fleet may change under a test). Returns them."""
        deadline = time.monotonic() + PAGE_TIMEOUT
        while True:
            shown = self.rows(page)
            expected = [d["udid"] for d in self.fleet_devices(**params)["devices"]]
            if shown == expected or time.monotonic() >= deadline:
                self.assertEqual(shown, expected, f"{what} ({params})")
                return expected
            page.pump(0.1)

    def page_sort(self, page):
        """The list's sort as the page shows it: {"sort": key, "order": asc|desc}, or {}."""
        got = page.query("#devices-table th[data-sort][aria-sort]:not([aria-sort=none])",
                         "e => [e.getAttribute('data-sort'), e.getAttribute('aria-sort')]")
        if not got:
            return {}
        return {"sort": got[0], "order": {"ascending": "asc", "descending": "desc"}[got[1]]}

    def assertNoProblems(self, page, ignore_http_status=(), what=""):
        page.pump(0.2)
        problems = page.problems(ignore_http_status=ignore_http_status)
        self.assertEqual(problems, [], f"{what}: the console is not clean")

    def screenshot(self, page, name):
        path = os.path.join(suite().run_dir, f"dashboard-{name}.png")
        page.screenshot(path)
        self.assertGreater(os.path.getsize(path), 1000, path)
        return path

    def pending_operator_requests(self, udid):
        return int(sql(self, "SELECT count(*) FROM attestation_requests WHERE udid = "
                             f"'{udid}' AND reason = 'operator' AND answered_at IS NULL").strip())

    # -- the tests --------------------------------------------------------------------------------
    def test_headers_and_static_files(self):
        page = self.open_page()
        h = page.document_headers or {}
        self.assertEqual(h.get("content-security-policy"), CSP, h)
        self.assertEqual(h.get("x-frame-options"), "DENY", h)
        self.assertEqual(h.get("x-content-type-options"), "nosniff", h)
        self.assertEqual(h.get("referrer-policy"), "no-referrer", h)
        self.assertEqual(h.get("cache-control"), "no-cache", h)
        for path in ("/ui/app.js", "/ui/app.css"):
            r = self.vouchd.request("GET", path)
            self.assertStatus(r, 200, path)
            self.assertEqual(r.header("X-Frame-Options"), "DENY", path)
            self.assertEqual(r.header("Content-Security-Policy"), CSP, path)
        r = self.vouchd.request("GET", "/ui")
        self.assertStatus(r, 308, "GET /ui")
        self.assertEqual(urllib.parse.urlsplit(r.header("Location", "")).path, "/ui/", repr(r))
        self.assertStatus(self.vouchd.request("GET", "/ui/no-such-asset.js"), 404, "unknown")
        # No inline script or style: the CSP would block them (and the console would say so).
        inline = page.evaluate(
            "[document.querySelectorAll('script:not([src])').length,"
            " document.querySelectorAll('[style]').length,"
            " document.querySelectorAll('style').length]")
        self.assertEqual(inline, [0, 0, 0], "inline scripts, style attributes, style elements")
        self.assertNoProblems(page, what="the token form")

    def test_wrong_token_shows_an_error(self):
        page = self.open_page(token="vouch_" + "0" * 64)
        page.wait_for_selector("#error", visible=True, timeout=PAGE_TIMEOUT)
        text = page.query("#error")
        self.assertRegex(text, r"401", f"#error: {text!r}")
        self.assertIn("unauthorized", text.lower(), f"#error: {text!r}")
        page.wait_for_selector("#token-form", visible=True, timeout=PAGE_TIMEOUT)
        self.assertTrue(page.evaluate("document.body.innerText.trim().length > 0"), "blank")
        self.assertIsNone(page.evaluate("sessionStorage.getItem('vouch-token')"),
                          "a refused token is kept")
        self.assertNoProblems(page, ignore_http_status=(401,), what="a wrong token")

    def test_overview_counts_equal_the_api(self):
        page = self.open_page(self.vouchd.admin_token)
        self.wait_overview(page)
        fleet = self.api("/v1/fleet")
        devices = self.api("/v1/devices?limit=1000")
        # The fleet has every verdict, and GET /v1/fleet agrees with the device objects.
        truth = {v: 0 for v in VERDICTS}
        reasons = {}
        for d in devices:
            truth[verdict_of(d)] += 1
            if d["attestation"]["status"] == "failed":
                reasons[d["attestation"]["reason"]] = reasons.get(d["attestation"]["reason"],
                                                                  0) + 1
        pending = sum(1 for d in devices if d["attestation"]["request"] is not None)
        self.assertEqual(fleet["devices"], len(devices), fleet)
        self.assertEqual(fleet["verdicts"], truth, "GET /v1/fleet vs the device objects")
        self.assertEqual(fleet["failed_by_reason"], reasons, fleet)
        self.assertEqual(fleet["pending"], pending, fleet)
        for v in VERDICTS + ("pending",):
            self.assertGreater(truth.get(v, pending), 0, f"the seeded fleet has no {v}")
        self.assertGreaterEqual(len(reasons), 2, reasons)

        want = {"devices": fleet["devices"], "pending": fleet["pending"],
                "dead_tokens": fleet["push"]["dead_tokens"],
                "webhooks_pending": fleet["webhooks"]["pending"],
                "webhooks_dead": fleet["webhooks"]["dead"]}
        want.update(fleet["verdicts"])
        want.update({f"failed:{r}": n for r, n in fleet["failed_by_reason"].items()})
        for name, value in want.items():
            with self.subTest(name):
                got = self.count(page, name)
                self.assertIsNotNone(got, f'no [data-count="{name}"] in #overview')
                self.assertEqual(got[0], value, f"{name}: data-value {got}")
                self.assertEqual(digits(got[1]), str(value), f"{name}: text {got[1]!r}")
        # The pictures: one rect per verdict, the charts, push health, the time.
        bar = page.query_all("#verdict-bar rect[data-verdict]",
                             "e => e.getAttribute('data-verdict')")
        self.assertTrue(set(v for v in VERDICTS if truth[v]) <= set(bar), bar)
        for sel in ("#age-chart", "#os-chart", "#planned-chart"):
            self.assertTrue(page.exists(sel), f"{sel} missing")
        self.assertTrue(page.exists("#age-chart svg, svg#age-chart"), "#age-chart is no SVG")
        push = page.query("#push-health") or ""
        self.assertIn(fleet["push"]["apns"], push.lower(), f"#push-health: {push!r}")
        self.assertTrue((page.query("#updated-at") or "").strip(), "#updated-at is empty")
        self.screenshot(page, "overview")
        self.assertNoProblems(page, what="the overview")

    def test_device_list_filters_search_sort_and_pages(self):
        page = self.open_page(self.vouchd.admin_token, route="#/devices")
        page.wait_for_selector("#devices-table tbody tr[data-udid]", timeout=PAGE_TIMEOUT)
        first = self.rows(page)
        size = len(first)
        api = self.fleet_devices(limit=size)
        self.assertGreater(api["total"], size, "the fleet fits on one page")
        self.assertEqual(first, [d["udid"] for d in api["devices"]], "page 1, by UDID")
        info = page.query("#page-info") or ""
        self.assertIn(f"{api['total']:,}", info, f"#page-info {info!r}")
        self.assertTrue(info.startswith(f"1–{size}") or info.startswith(f"1-{size}"), info)

        page.click("#next-page")
        self.wait_rows(page, {"limit": size, "offset": size}, "page 2")
        self.assertIn(f"{size + 1}", page.query("#page-info") or "", "#page-info on page 2")
        page.click("#prev-page")
        self.wait_rows(page, {"limit": size}, "back to page 1")

        # Sorting: a click sorts by the column, a second one reverses it.
        for key in ("serial", "model", "os_version", "verdict", "last_seen", "next_check"):
            with self.subTest(sort=key):
                th = f'#devices-table th[data-sort="{key}"]'
                for _ in range(2):
                    page.click(th)
                    aria = page.wait_for(f"document.querySelector({json.dumps(th)})"
                                         ".getAttribute('aria-sort')", timeout=PAGE_TIMEOUT)
                    order = {"ascending": "asc", "descending": "desc"}.get(aria)
                    self.assertIsNotNone(order, f"aria-sort {aria!r}")
                    self.wait_rows(page, {"sort": key, "order": order, "limit": size},
                                   f"sorted by {key} {order}")

        # Every filter the select offers lists what the API lists.
        options = page.query_all("#device-filter option", "e => e.value")
        for value in ("verified_fresh", "verified_cached", "failed", "expired", "unsupported",
                      "never_asked", "awaiting_first", "none", "pending"):
            self.assertIn(value, options, "#device-filter options")
        for value in options:
            with self.subTest(filter=value):
                page.select("#device-filter", value)
                params = {"attestation": value} if value else {}
                params.update(self.page_sort(page))
                params["limit"] = size
                self.wait_rows(page, params, f"filter {value!r}")
        page.select("#device-filter", "")

        # Search as you type: a piece of a serial, in lower case.
        dev = self.fleet["udid_mismatch"]
        q = dev.serial[3:9].lower()
        page.type("#device-search", q)
        params = dict(q=q, limit=size, **self.page_sort(page))
        found = self.wait_rows(page, params, f"search {q!r}")
        self.assertIn(dev.udid, found, params)
        # The route keeps the state: a reload shows the same list.
        self.assertIn("q=" + q, urllib.parse.unquote(page.evaluate("location.hash")))
        page.reload()
        page.wait_for_selector("#devices-table tbody tr[data-udid]", timeout=PAGE_TIMEOUT)
        self.wait_rows(page, params, f"search {q!r} after a reload")
        # A row's link opens the device page.
        page.click(f'#devices-table tbody tr[data-udid="{dev.udid}"] a')
        page.wait_for(f"(document.querySelector('#device [data-field=udid]') || {{}})"
                      f".textContent?.includes({json.dumps(dev.udid)})", timeout=PAGE_TIMEOUT,
                      what="the device page from the list")
        self.assertIn(f"#/device/{dev.udid}", page.evaluate("location.hash"))
        self.assertNoProblems(page, what="the device list")

    def test_unknown_device_shows_an_error(self):
        page = self.open_page(self.vouchd.admin_token, route="#/device/NO-SUCH-DEVICE")
        page.wait_for_selector("#error", visible=True, timeout=PAGE_TIMEOUT)
        text = page.query("#error")
        self.assertIn("404", text)
        self.assertIn("unknown device", text.lower())
        self.assertTrue(page.evaluate("document.body.innerText.trim().length > 0"), "blank")
        self.assertNoProblems(page, ignore_http_status=(404,), what="an unknown device")

    def test_ui_off(self):
        other = Vouchd(self.vouchd.database_url, self.vouchd.identity_ca,
                       name=f"{self.id()}.ui-off", extra={"ui": "off"})
        other.start()
        try:
            for path in ("/ui/", "/ui/app.js"):
                self.assertStatus(other.request("GET", path), 404, f"ui = off: {path}")
        finally:
            other.stop()

    def test_device_page(self):
        dev = self.fleet["cached"]
        page = self.open_page(self.vouchd.admin_token, route=f"#/device/{dev.udid}")
        page.wait_for_selector('#device [data-field="udid"]', timeout=PAGE_TIMEOUT)
        obj = self.device_obj(dev.udid)

        def field(name):
            return (page.query(f'#device [data-field="{name}"]', "e => e.innerText")
                    or "").strip()

        def shows(name, value):
            """The field shows value as a word of its own (a detail may follow it)."""
            self.assertRegex(field(name), rf"(^|\s){re.escape(value)}(\s|$)", name)

        page.wait_for(f"document.querySelector('#device [data-field=udid]').textContent"
                      f".includes({json.dumps(dev.udid)})", timeout=PAGE_TIMEOUT)
        shows("serial_number", dev.serial)
        shows("model", dev.model)
        shows("os_version", dev.os_version)
        verdict = field("verdict").lower()
        self.assertIn("verified", verdict)
        self.assertIn("cached", verdict)
        identity = field("identity").lower()
        self.assertIn((obj["identity"] or {}).get("kind", "scep").split("-")[0], identity)
        self.assertTrue(field("last_seen_at"), "last_seen_at")
        self.assertTrue(page.exists('#device [data-field="next_due_at"]'), "next_due_at")

        history = self.history(dev.udid)
        items = page.query_all("#attestation-timeline li", "e => e.textContent")
        self.assertEqual(len(items), len(history), items)
        for li, entry in zip(items, history):
            self.assertIn(entry["status"], li.lower(), li)
            if entry["freshness"]:
                self.assertIn(entry["freshness"], li.lower(), li)
        rows = page.query_all("#attested-vs-reported tbody tr, #attested-vs-reported tr",
                              "e => e.className")
        self.assertTrue(rows, "#attested-vs-reported has no rows")
        self.assertFalse(page.exists("#attested-vs-reported tr.mismatch"),
                         "a mismatch on a verified device")

        commands = self.vouchd.commands(dev.udid)
        shown = page.query_all("#commands-table tr[data-command-uuid]",
                               "e => e.getAttribute('data-command-uuid')")
        self.assertEqual(sorted(shown), sorted(c["command_uuid"] for c in commands))
        cu = history[0]["command_uuid"]
        page.click(f'#commands-table tr[data-command-uuid="{cu}"]')
        # The device's answer: its Status and what it reported (the serial it was asked).
        answer = page.wait_for(
            "(t => t.includes('Acknowledged') && t)((document.querySelector('#command-answer')"
            " || {}).textContent || '')", timeout=PAGE_TIMEOUT,
            what="the answer (Acknowledged) in #command-answer")
        self.assertIn(dev.serial, answer, answer[:1000])
        self.screenshot(page, "device")
        self.assertNoProblems(page, what="the device page")

        # A failed answer for another UDID: the attested UDID is a mismatch row.
        bad = self.fleet["udid_mismatch"]
        page.navigate(self.ui_url + f"#/device/{bad.udid}")
        page.wait_for_selector("#attested-vs-reported tr.mismatch", timeout=PAGE_TIMEOUT)
        verdict = (page.query('#device [data-field="verdict"]') or "").lower()
        self.assertIn("failed", verdict)
        self.assertIn("udid mismatch", verdict.replace("_", " "))
        self.assertNoProblems(page, what="a failed device's page")

        # No verdict yet, the first request out: awaiting, not "never asked".
        waiting = self.fleet["pending"]
        self.assertEqual(verdict_of(self.device_obj(waiting.udid)), "awaiting_first")
        page.navigate(self.ui_url + f"#/device/{waiting.udid}")
        verdict = page.wait_for(
            f"(e => e && e.closest('#device').querySelector('[data-field=udid]').textContent"
            f".includes({json.dumps(waiting.udid)}) && e.textContent)"
            f"(document.querySelector('#device [data-field=verdict]'))",
            timeout=PAGE_TIMEOUT, what="the verdict of a device awaiting its first answer")
        self.assertIn("awaiting first answer", verdict.lower())
        self.assertNotIn("never asked", verdict.lower())
        self.assertNoProblems(page, what="the page of a device awaiting its first answer")

    def test_reattest_queues_a_request(self):
        dev = self.fleet["reattest"]
        before = self.pending_operator_requests(dev.udid)
        page = self.open_page(self.vouchd.admin_token, route=f"#/device/{dev.udid}")
        page.wait_for_selector("#reattest-button", visible=True, timeout=PAGE_TIMEOUT)
        # No is no.
        page.click("#reattest-button")
        page.wait_for("document.querySelector('#confirm-reattest').open", timeout=PAGE_TIMEOUT)
        page.click("#confirm-no")
        page.wait_for("!document.querySelector('#confirm-reattest').open", timeout=PAGE_TIMEOUT)
        page.pump(0.5)
        self.assertEqual(self.pending_operator_requests(dev.udid), before, "after No")
        # Yes queues one.
        page.click("#reattest-button")
        page.wait_for("document.querySelector('#confirm-reattest').open", timeout=PAGE_TIMEOUT)
        page.click("#confirm-yes")
        wait_for(lambda: self.pending_operator_requests(dev.udid) == before + 1, 10,
                 what="a pending operator request in attestation_requests")
        [cu] = sql(self, "SELECT command_uuid FROM attestation_requests WHERE udid = "
                         f"'{dev.udid}' AND answered_at IS NULL").split()
        # The result says so: queued, or the request's CommandUUID.
        result = page.wait_for(
            f"(t => (/queued/i.test(t) || t.toUpperCase().includes({json.dumps(cu.upper())}))"
            f" && t)((document.querySelector('#reattest-result') || {{}}).textContent || '')",
            timeout=PAGE_TIMEOUT, what="#reattest-result saying the request is queued")
        self.assertNotRegex(result, r"\b(40\d|50\d)\b", result)
        request = self.attestation(dev.udid)["request"]
        self.assertEqual((request["command_uuid"], request["reason"]), (cu, "operator"), request)
        self.assertNoProblems(page, what="re-attest")

    def test_reattest_with_a_read_token_shows_403(self):
        dev = self.fleet["fresh"]
        before = sql(self, f"SELECT count(*) FROM attestation_requests WHERE udid = '{dev.udid}'")
        page = self.open_page(self.read_token, route=f"#/device/{dev.udid}")
        page.wait_for_selector("#reattest-button", visible=True, timeout=PAGE_TIMEOUT)
        page.click("#reattest-button")
        page.wait_for("document.querySelector('#confirm-reattest').open", timeout=PAGE_TIMEOUT)
        page.click("#confirm-yes")
        text = page.wait_for("(t => /\\b[45]\\d\\d\\b/.test(t) && t)((document.querySelector("
                             "'#reattest-result') || {}).textContent || '')",
                             timeout=PAGE_TIMEOUT, what="an HTTP status in #reattest-result")
        self.assertIn("403", text)
        self.assertIn("scope (read)", text)
        self.assertEqual(sql(self, "SELECT count(*) FROM attestation_requests WHERE udid = "
                                   f"'{dev.udid}'"), before, "a read token queued a request")
        self.assertNoProblems(page, ignore_http_status=(403,), what="re-attest, read token")

    def test_overview_updates_without_a_reload(self):
        dev = self.fleet["live"]
        page = self.open_page(self.vouchd.admin_token, query="?poll=1")
        self.wait_overview(page)
        page.evaluate("window.__vouchSameDocument = 'yes'")
        fresh = self.api("/v1/fleet")["verdicts"]["verified_fresh"]
        page.wait_for(f"document.querySelector('#overview [data-count=\"verified_fresh\"]')"
                      f".getAttribute('data-value') === '{fresh}'", timeout=PAGE_TIMEOUT)
        updated = page.query("#updated-at")
        self.attest_at_clock(dev, "the live device answers")
        now = self.api("/v1/fleet")["verdicts"]["verified_fresh"]
        self.assertEqual(now, fresh + 1)
        page.wait_for(f"document.querySelector('#overview [data-count=\"verified_fresh\"]')"
                      f".getAttribute('data-value') === '{now}'", timeout=PAGE_TIMEOUT,
                      what="verified_fresh counted without a reload")
        self.assertEqual(page.evaluate("window.__vouchSameDocument"), "yes", "the page reloaded")
        self.assertNotEqual(page.query("#updated-at"), updated, "#updated-at did not move")
        self.assertNoProblems(page, what="live overview")

    def test_logout_forgets_the_token(self):
        page = self.open_page(self.vouchd.admin_token)
        self.wait_overview(page)
        self.assertEqual(page.evaluate("sessionStorage.getItem('vouch-token')"),
                         self.vouchd.admin_token)
        page.click("#logout")
        page.wait_for_selector("#token-form", visible=True, timeout=PAGE_TIMEOUT)
        self.assertIsNone(page.evaluate("sessionStorage.getItem('vouch-token')"))
        self.assertNoProblems(page, what="logout")
