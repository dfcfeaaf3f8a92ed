"""What the dashboard reads (issue 21): GET /v1/fleet, GET /v1/fleet/devices, and the page
itself under /ui/ (docs/api.md, "Fleet" and "Dashboard").

What must hold:
  * a small fleet made through the real protocol, every verdict present (verified fresh,
    verified cached, failed for several reasons, expired, unsupported, never asked, awaiting
    the first answer, a request out beside a verdict), is counted by GET /v1/fleet exactly as GET /v1/devices
    describes it device by device: verdicts, failed by reason, pending, attestation ages, OS
    versions, the next 7 days of planned checks, push tokens;
  * GET /v1/fleet/devices searches (case-insensitive substring of UDID, serial, model, product
    name), filters by every attestation value, sorts by every key in both orders, pages with a
    total, and refuses each bad parameter with a 400 that names it;
  * both are reads: admin and read tokens may call them, a trust token may not, no token is 401;
  * /ui/ serves the embedded page with its security headers, /ui redirects (308) to /ui/, an
    unknown asset is 404, other methods 405, and with ui = off everything under /ui is 404.
"""

import datetime
import functools
import json
import os
import re

import harness
from harness import REPO
from test_scheduler import DEADLINE_S, SchedulerCase, db_clock, set_clock

DAY = datetime.timedelta(days=1)

CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
       "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'")
SECURITY_HEADERS = {"Content-Security-Policy": CSP, "X-Frame-Options": "DENY",
                    "X-Content-Type-Options": "nosniff", "Referrer-Policy": "no-referrer",
                    "Cache-Control": "no-cache"}
VERDICTS = ("verified_fresh", "verified_cached", "failed", "expired", "unsupported",
            "never_asked", "awaiting_first")
RANK = {"failed": 1, "expired": 2, "unsupported": 3, "never_asked": 4, "awaiting_first": 5,
        "verified_cached": 6, "verified_fresh": 7}
SORT_FIELDS = {"udid": "udid", "serial": "serial_number", "model": "model",
               "os_version": "os_version", "last_seen": "last_seen_at"}
AGE_BOUNDS = [1, 2, 3, 5, 7, 14, 21, 30, 60, 90, None]
OLD_IPHONE = dict(model="iPhone9,3", product_name="iPhone9,3", os_version="15.8")


def verdict_of(device):
    """The dashboard's verdict of a device object (docs/api.md, "Fleet")."""
    att = device["attestation"]
    if att["status"] == "verified":
        return "verified_fresh" if att["freshness"] == "fresh" else "verified_cached"
    if att["status"] == "none":
        return "never_asked" if att["request"] is None else "awaiting_first"
    return att["status"]


def version_key(text):
    if text is not None and re.fullmatch(r"[0-9]{1,9}(\.[0-9]{1,9}){0,7}", text):
        return tuple(int(x) for x in text.split("."))
    return None


def compare(a, b):
    return (a > b) - (a < b)


def expected_order(devices, sort, desc):
    """The UDIDs in the order vouch_fleet_devices gives: missing values last in either order,
    ties by UDID (byte order), text byte by byte, os_version by its numbers first."""
    def keys(d):
        if sort == "verdict":
            return [RANK[verdict_of(d)]]
        if sort == "os_version":
            return [version_key(d["os_version"]), d["os_version"]]
        if sort == "next_check":
            return [d["attestation"]["next_due_at"]]
        return [d[SORT_FIELDS[sort]]]

    def cmp(x, y):
        for a, b in zip(keys(x), keys(y)):
            if a is None or b is None:
                if (a is None) != (b is None):
                    return 1 if a is None else -1
                continue
            c = compare(a, b)
            if c:
                return -c if desc else c
        return compare(x["udid"].encode(), y["udid"].encode())
    return [d["udid"] for d in sorted(devices, key=functools.cmp_to_key(cmp))]


class FleetApiTest(SchedulerCase):
    # No retries and a long mean interval: the devices keep the verdicts given here; verdicts
    # count for 30 days.
    vouchd_config = {"attestation_mean_interval": "365d", "attestation_max_age": "30d",
                     "attestation_retry_limit": "0", "admin_login_limit": "0"}
    fleet = None

    # -- the fleet ------------------------------------------------------------------------------
    def seed(self):
        """The fleet, made once for the class through the device protocol."""
        cls = type(self)
        if cls.fleet is not None:
            return cls.fleet
        f = {}
        # Expired first: the clock then moves past its verdict's 30 days, before any other
        # device is made (their leaves are made at the moved clock).
        f["expired"] = self.iphone(os_version="17.10")
        _cu, generated = self.attest_at_clock(f["expired"], "to expire")
        set_clock(self, generated + 30 * DAY + datetime.timedelta(minutes=5))
        harness.wait_for(lambda: self.attestation(f["expired"].udid)["status"] == "expired",
                         DEADLINE_S, what="the verdict past attestation_max_age")

        f["fresh"] = self.iphone(os_version="18.1")
        self.attest_at_clock(f["fresh"], "verified fresh")
        # Verified, with a re-check out beside the verdict.
        f["fresh_pending"] = self.iphone(os_version="17.4")
        self.attest_at_clock(f["fresh_pending"], "verified, then asked again")
        self.post_attest(f["fresh_pending"].udid)

        f["cached"] = self.iphone(os_version="17.4")
        generated = db_clock(self).replace(microsecond=0) - datetime.timedelta(minutes=5)
        _cu, _nonce, chain = self.attest_fresh(f["cached"], "first, fresh", not_before=generated)
        self.post_attest(f["cached"].udid)
        cu, _nonce = self.take_request(f["cached"], "the re-check")
        self.answer(f["cached"], cu, chain, what="the cached chain")
        self.assertVerdict(f["cached"], cu, "verified", None, "cached", "cached")

        f["udid_mismatch"] = self.iphone(os_version="17.10")
        cu, nonce = self.take_request(f["udid_mismatch"], "udid mismatch")
        self.answer(f["udid_mismatch"], cu,
                    self.chain_for(f["udid_mismatch"], nonce, udid=f["fresh"].udid,
                                   not_before=generated),
                    what="another device's UDID")
        self.assertVerdict(f["udid_mismatch"], cu, "failed", "udid_mismatch", "fresh", "udid")
        for name in ("withheld", "withheld_too"):
            f[name] = self.iphone(os_version="18.1")
            self.fail_one(f[name], None, "attestation_withheld", what=name,
                          omit_attestation=True)

        f["unsupported"] = self.iphone(**OLD_IPHONE)
        cu, _ = self.take_request(f["unsupported"], "unsupported device")
        self.answer(f["unsupported"], cu, omit_attestation=True, what="no attestation key")
        self.assertVerdict(f["unsupported"], cu, "unsupported", None, None, "unsupported")

        # Enrolled, its first request out and not answered: awaiting the first answer.
        f["awaiting_first"] = self.iphone(os_version="17.4")
        self.assertPending(f["awaiting_first"].udid, "the device that has not answered")
        # Authenticate only (a request is queued at the first TokenUpdate): never asked.
        f["never_asked"] = self.iphone(os_version="17.4", enroll=False)
        self.assertEmpty200(f["never_asked"].authenticate(), "Authenticate only")
        self.assertIsNone(self.attestation(f["never_asked"].udid)["request"], "never asked")
        cls.fleet = f
        return f

    def devices(self):
        r = self.vouchd.admin("GET", "/v1/devices?limit=1000")
        self.assertStatus(r, 200, "GET /v1/devices")
        return r.json()

    def get(self, path, token=harness._DEFAULT, status=200):
        r = self.vouchd.admin("GET", path, token=token)
        self.assertStatus(r, status, f"GET {path}")
        self.assertEqual(r.media_type(), "application/json", repr(r))
        return r.json()

    # -- GET /v1/fleet ----------------------------------------------------------------------------
    def test_fleet_counts_what_the_device_list_says(self):
        f = self.seed()
        devices = self.devices()
        self.assertEqual(len(devices), len(f))
        fleet = self.get("/v1/fleet")
        self.assertEqual(set(fleet), {"generated_at", "devices", "verdicts", "failed_by_reason",
                                      "pending", "attestation_age", "os_versions", "planned",
                                      "push", "webhooks"}, fleet)
        self.assertRFC3339(fleet["generated_at"], "generated_at")
        self.assertEqual(fleet["devices"], len(devices))

        verdicts = {v: 0 for v in VERDICTS}
        reasons, versions = {}, {}
        for d in devices:
            verdicts[verdict_of(d)] += 1
            if d["attestation"]["status"] == "failed":
                reasons[d["attestation"]["reason"]] = reasons.get(d["attestation"]["reason"],
                                                                  0) + 1
            versions[d["os_version"]] = versions.get(d["os_version"], 0) + 1
        self.assertEqual(fleet["verdicts"], verdicts)
        self.assertEqual(sum(fleet["verdicts"].values()), fleet["devices"])
        self.assertTrue(all(verdicts.values()), f"every verdict present: {verdicts}")
        by_udid = {d["udid"]: d for d in devices}
        for role in ("never_asked", "awaiting_first"):
            self.assertEqual(verdict_of(by_udid[f[role].udid]), role, role)
        self.assertEqual(fleet["failed_by_reason"], reasons)
        self.assertEqual(fleet["failed_by_reason"],
                         {"udid_mismatch": 1, "attestation_withheld": 2})
        self.assertEqual(fleet["pending"],
                         sum(1 for d in devices if d["attestation"]["request"] is not None))
        self.assertGreaterEqual(fleet["pending"], 2)

        age = fleet["attestation_age"]
        self.assertEqual(age["max_age_seconds"], 30 * 86400)
        self.assertEqual([b["le_days"] for b in age["buckets"]], AGE_BOUNDS)
        verified = verdicts["verified_fresh"] + verdicts["verified_cached"]
        self.assertEqual(sum(b["count"] for b in age["buckets"]), verified)
        self.assertEqual(age["buckets"][0]["count"], verified, "every verdict is minutes old")

        self.assertEqual({o["os_version"]: o["count"] for o in fleet["os_versions"]}, versions)
        counts = [o["count"] for o in fleet["os_versions"]]
        self.assertEqual(counts, sorted(counts, reverse=True), "most common first")

        today = db_clock(self).date()
        planned = {}
        for d in devices:
            due = d["attestation"]["next_due_at"]
            if due is None:
                continue
            day = max(datetime.date.fromisoformat(due[:10]), today)
            if day < today + datetime.timedelta(days=7):
                key = (day.isoformat(), d["attestation"]["next_due_reason"])
                planned[key] = planned.get(key, 0) + 1
        self.assertEqual({(p["date"], p["reason"]): p["count"] for p in fleet["planned"]},
                         planned)
        self.assertEqual(fleet["planned"], sorted(fleet["planned"],
                                                  key=lambda p: (p["date"], p["reason"])))

        active = sum(1 for d in devices if d["push"]["token_state"] == "active")
        self.assertEqual(fleet["push"], {"dead_tokens": 0, "active_tokens": active,
                                         "apns": "off", "certificate_not_after": None})
        self.assertEqual(fleet["webhooks"], {"pending": 0, "dead": 0})

    # -- GET /v1/fleet/devices -------------------------------------------------------------------
    def listed(self, query):
        page = self.get(f"/v1/fleet/devices?{query}")
        self.assertEqual(set(page), {"total", "offset", "limit", "devices"}, page)
        return page

    def test_device_objects_default_page_and_filters(self):
        self.seed()
        devices = self.devices()
        page = self.listed("")
        self.assertEqual((page["total"], page["offset"], page["limit"]), (len(devices), 0, 50))
        by_udid = {d["udid"]: d for d in devices}
        self.assertEqual([d["udid"] for d in page["devices"]], expected_order(devices, "udid",
                                                                              False))
        for d in page["devices"]:
            # The device object of GET /v1/devices (last_seen_at and times alike).
            self.assertEqual(d, by_udid[d["udid"]])

        def udids(pred):
            return {d["udid"] for d in devices if pred(d)}
        expect = {v: udids(lambda d, v=v: verdict_of(d) == v) for v in VERDICTS}
        expect["verified"] = expect["verified_fresh"] | expect["verified_cached"]
        expect["none"] = expect["never_asked"] | expect["awaiting_first"]
        expect["pending"] = udids(lambda d: d["attestation"]["request"] is not None)
        for value, want in expect.items():
            with self.subTest(attestation=value):
                page = self.listed(f"attestation={value}&limit=200")
                self.assertEqual({d["udid"] for d in page["devices"]}, want)
                self.assertEqual(page["total"], len(want))
                self.assertTrue(want, f"{value}: no device to find")
        # The old GET /v1/devices?attestation= agrees where the values are the same.
        for value in ("verified", "failed", "expired", "unsupported", "none", "pending"):
            r = self.get(f"/v1/devices?attestation={value}&limit=1000")
            self.assertEqual({d["udid"] for d in r}, expect[value], value)

    def test_search(self):
        f = self.seed()
        devices = self.devices()
        target = f["cached"]
        cases = {
            target.serial[3:9].lower(): {target.udid},        # serial, any case
            target.udid[-12:].lower(): {target.udid},         # UDID, any case
            "IPHONE9": {f["unsupported"].udid},               # model and product name
            "iphone": {d["udid"] for d in devices},
            "no-such-device": set(),
        }
        for q, want in cases.items():
            with self.subTest(q=q):
                page = self.listed(f"q={q}&limit=200")
                self.assertEqual({d["udid"] for d in page["devices"]}, want)
                self.assertEqual(page["total"], len(want))
        # Search and filter together; an empty q is no filter.
        page = self.listed("q=iphone&attestation=failed&limit=200")
        self.assertEqual(page["total"], 3)
        self.assertEqual(self.listed("q=")["total"], len(devices))
        # Characters that mean something to LIKE mean nothing here.
        self.assertEqual(self.listed("q=%25")["total"], 0)
        self.assertEqual(self.listed("q=_")["total"], 0)

    def test_every_sort_key_both_orders_and_paging(self):
        self.seed()
        devices = self.devices()
        for sort in ("udid", "serial", "model", "os_version", "verdict", "last_seen",
                     "next_check"):
            for order in ("asc", "desc"):
                with self.subTest(sort=sort, order=order):
                    page = self.listed(f"sort={sort}&order={order}&limit=200")
                    got = [d["udid"] for d in page["devices"]]
                    if sort in ("last_seen", "next_check"):
                        # Stored to the microsecond, shown to the second: the shown times
                        # must be in order, missing ones last.
                        field = (lambda d: d["last_seen_at"]) if sort == "last_seen" else \
                            (lambda d: d["attestation"]["next_due_at"])
                        shown = [field(d) for d in page["devices"]]
                        present = [s for s in shown if s is not None]
                        self.assertEqual(shown[:len(present)], present, "missing ones last")
                        self.assertEqual(present, sorted(present, reverse=order == "desc"))
                        self.assertEqual(set(got), {d["udid"] for d in devices})
                    else:
                        self.assertEqual(got, expected_order(devices, sort, order == "desc"))
                    # Paging: pages of 3 give the same order, the total on each.
                    paged = []
                    for offset in range(0, len(devices) + 3, 3):
                        p = self.listed(f"sort={sort}&order={order}&limit=3&offset={offset}")
                        self.assertEqual((p["total"], p["offset"], p["limit"]),
                                         (len(devices), offset, 3))
                        paged += [d["udid"] for d in p["devices"]]
                    self.assertEqual(paged, got)
        # Numbers, not text: 17.10 after 17.4.
        order = [d["os_version"] for d in self.listed("sort=os_version&limit=200")["devices"]]
        self.assertLess(order.index("17.4"), order.index("17.10"))
        page = self.listed("offset=1000")
        self.assertEqual((page["total"], page["devices"]), (len(devices), []))

    def test_bad_parameters_are_400_naming_them(self):
        for query, name in [("q=" + "x" * 65, "q"), ("attestation=maybe", "attestation"),
                            ("attestation=", "attestation"), ("sort=name", "sort"),
                            ("sort=", "sort"), ("order=up", "order"), ("offset=-1", "offset"),
                            ("offset=x", "offset"), ("offset=10000001", "offset"),
                            ("limit=0", "limit"), ("limit=201", "limit"), ("limit=", "limit"),
                            ("limit=1.5", "limit"), ("after=x", "unknown query parameter"),
                            ("q=%01", "q")]:
            with self.subTest(query=query):
                body = self.get(f"/v1/fleet/devices?{query}", status=400)
                self.assertTrue(body["error"].startswith(name), body)
        # 64 characters (not bytes) are fine.
        self.assertEqual(self.listed("q=" + "%C3%A9" * 64)["total"], 0)
        for path in ("/v1/fleet", "/v1/fleet/devices"):
            r = self.vouchd.admin("POST", path, body=b"")
            self.assertStatus(r, 405, f"POST {path}")
            self.assertEqual(r.json(), {"error": "use GET"})

    def test_scopes(self):
        def create(name, scope):
            r = self.vouchd.admin("POST", "/v1/tokens",
                                  body=json.dumps({"name": name, "scope": scope}).encode(),
                                  content_type="application/json")
            self.assertStatus(r, 201, f"POST /v1/tokens {name}")
            return r.json()["token"]
        read, trust = create("fleet-read", "read"), create("fleet-trust", "trust")
        for path in ("/v1/fleet", "/v1/fleet/devices"):
            with self.subTest(path=path):
                self.get(path, token=read)
                body = self.get(path, token=trust, status=403)
                self.assertEqual(body, {"error": "this token's scope (trust) does not allow "
                                                 "this request"})
                self.get(path, token=None, status=401)

    # -- /ui/ ------------------------------------------------------------------------------------
    def assertSecurityHeaders(self, r, what):
        for name, value in SECURITY_HEADERS.items():
            self.assertEqual(r.header(name), value, f"{what}: {name}")

    def test_ui_serves_the_embedded_page(self):
        assets = os.path.join(REPO, "server", "dashboard", "assets")
        types = {".html": "text/html", ".js": "text/javascript", ".css": "text/css"}
        # Every file of assets/ (app.js imports the other modules; a browser runs a module only
        # when it is served as JavaScript), and index.html at /ui/.
        served = [("/ui/", "index.html")] + [(f"/ui/{name}", name)
                                             for name in sorted(os.listdir(assets))]
        self.assertIn(("/ui/app.js", "app.js"), served)
        for path, name in served:
            with self.subTest(path=path):
                r = self.vouchd.request("GET", path)
                self.assertStatus(r, 200, path)
                with open(os.path.join(assets, name), "rb") as fh:
                    self.assertEqual(r.body, fh.read(), f"{path} is assets/{name} byte for byte")
                self.assertEqual(r.media_type(), types[os.path.splitext(name)[1]])
                self.assertSecurityHeaders(r, path)
        r = self.vouchd.request("GET", "/ui")
        self.assertStatus(r, 308, "GET /ui")
        self.assertEqual(r.header("Location"), "/ui/")
        self.assertSecurityHeaders(r, "GET /ui")
        for path in ("/ui/nothing.js", "/ui/app.js/x", "/ui/index.htm"):
            r = self.vouchd.request("GET", path)
            self.assertStatus(r, 404, path)
            self.assertSecurityHeaders(r, path)
        for method in ("POST", "PUT", "DELETE"):
            r = self.vouchd.request(method, "/ui/", body=b"")
            self.assertStatus(r, 405, f"{method} /ui/")
            self.assertEqual(r.json(), {"error": "use GET"})
        # No token is needed, and one that is wrong changes nothing.
        r = self.vouchd.request("GET", "/ui/", headers={"Authorization": "Bearer wrong"})
        self.assertStatus(r, 200, "GET /ui/ with a wrong token")

    def test_ui_off(self):
        off = harness.Vouchd(self.vouchd.database_url, self.vouchd.identity_ca,
                             name=f"{type(self).__module__}.{type(self).__name__}.off",
                             admin_token=self.vouchd.admin_token,
                             extra=dict(self.vouchd_config, ui="off")).start()
        try:
            for path in ("/ui", "/ui/", "/ui/app.js"):
                r = off.request("GET", path)
                self.assertStatus(r, 404, f"ui = off: GET {path}")
            # The API the page reads stays.
            self.assertStatus(off.admin("GET", "/v1/fleet"), 200, "ui = off: GET /v1/fleet")
        finally:
            off.stop()


class UiConfigTest(harness.VouchTestCase):
    """ui takes on or off, nothing else."""

    def test_ui_value_is_checked(self):
        bad = harness.Vouchd(self.vouchd.database_url, self.vouchd.identity_ca,
                             name=f"{type(self).__module__}.bad", extra={"ui": "maybe"})
        bad.port = harness.pg.free_port()
        bad.write_config()
        p = harness.run_tool([harness.VOUCHD, "--config", bad.config_path], timeout=30)
        self.assertNotEqual(p.returncode, 0)
        self.assertIn("ui: expected on or off, not 'maybe'", p.stderr + p.stdout)
