"""Metrics and logs that tools read (issue 20, point 5; docs/api.md, Metrics and Logs):

  * a real scrape of /metrics passes Prometheus's own `promtool check metrics` (Debian package
    prometheus): every family once, with HELP and TYPE, its samples together;
  * request latency by endpoint (vouch_http_request_duration_seconds) and database query
    latency (vouch_db_query_duration_seconds) are histograms that count what was done;
  * vouch_build_info{version} 1; vouch_devices{attestation} by the status the device object
    shows, after devices enroll and attest; vouch_push_certificate_expiry_seconds is the push
    certificate's notAfter; vouch_identity_cache_total counts a new device's first signed
    message as a miss and the next ones as hits;
  * log_format = json: every line one JSON object with ts, level and msg; a request id on every
    line logged while a request is handled, database completions and PostgreSQL's own notices
    included, equal to the X-Request-Id of the reply (the client's when sane); one access line
    per request at info.
"""

import calendar
import json
import re
import shutil
import subprocess
import uuid

import harness
from harness import VOUCHD, VouchTestCase, wait_for
from test_attestation import AttestationCase
from test_metrics import parse_metrics
from test_push import PushTestCase

DEADLINE_S = 30.0
# fleet_metrics.c reads the devices by attestation status every 15 s.
FLEET_REFRESH_DEADLINE_S = 45.0
ACCESS_FIELDS = {"method", "path", "status", "bytes", "duration_s", "peer"}


def promtool():
    path = shutil.which("promtool")
    if path is None:
        harness.unavailable("promtool (Debian package prometheus: apt-get install prometheus)")
    return path


def histogram(samples, name, label, value):
    """({le: cumulative count}, sum, count) of one series of a histogram."""
    buckets = {}
    pattern = re.compile(rf'^{name}_bucket\{{{label}="{re.escape(value)}",le="([^"]+)"\}}$')
    for key, v in samples.items():
        m = pattern.match(key)
        if m:
            buckets[m.group(1)] = v
    return (buckets, samples.get(f'{name}_sum{{{label}="{value}"}}'),
            samples.get(f'{name}_count{{{label}="{value}"}}'))


class MetricsToolsTest(VouchTestCase):
    """The exposition as Prometheus reads it, and the families added for operators."""

    def scrape(self):
        r = self.vouchd.metrics()
        self.assertStatus(r, 200, "GET /metrics")
        return r.text()

    def test_promtool_accepts_a_real_scrape(self):
        tool = promtool()
        # Some of everything first, so that labelled families have samples: a device enrolled and
        # attested (unsupported), an admin call, a refusal, an unknown path.
        dev = self.enrolled_device()
        self.assertEmpty200(dev.settle_attestation(), "attestation answered")
        self.assertStatus(self.vouchd.admin("GET", "/v1/devices"), 200, "GET /v1/devices")
        self.assertStatus(self.vouchd.admin("GET", "/v1/devices", token="wrong" * 8), 401,
                          "a wrong token")
        self.assertStatus(self.vouchd.request("GET", "/nowhere"), 404, "an unknown path")
        text = self.scrape()
        p = subprocess.run([tool, "check", "metrics"], input=text, capture_output=True,
                           text=True, timeout=60)
        self.assertEqual((p.returncode, p.stdout + p.stderr), (0, ""),
                         f"promtool check metrics on a real scrape:\n{p.stdout}{p.stderr}\n"
                         f"--- the scrape ---\n{text}")
        # The family promtool found misplaced before: no_token among the pushes' outcomes is
        # only there with a push certificate (PushCertificateExpiryTest scrapes that one too).
        _samples, types = parse_metrics(text)
        self.assertEqual(types.get("vouch_http_request_duration_seconds"), "histogram")
        self.assertEqual(types.get("vouch_db_query_duration_seconds"), "histogram")

    def test_request_latency_is_counted_by_endpoint(self):
        name, label, endpoint = "vouch_http_request_duration_seconds", "endpoint", "/v1/devices"
        _b, _s, count0 = histogram(parse_metrics(self.scrape())[0], name, label, endpoint)
        for _ in range(3):
            self.assertStatus(self.vouchd.admin("GET", "/v1/devices"), 200, "GET /v1/devices")
        samples, _types = parse_metrics(self.scrape())
        buckets, total, count = histogram(samples, name, label, endpoint)
        self.assertEqual(count - (count0 or 0), 3, f"three requests to {endpoint}: {buckets}")
        self.assertEqual(buckets.get("+Inf"), count, "the +Inf bucket holds every request")
        self.assertGreater(total, 0, "the sum of the durations")
        bounds = sorted((float(le), v) for le, v in buckets.items() if le != "+Inf")
        self.assertGreaterEqual(len(bounds), 10, f"buckets: {buckets}")
        counts = [v for _le, v in bounds]
        self.assertEqual(counts, sorted(counts), f"buckets are cumulative: {bounds}")
        # The scrapes themselves are counted too, under /metrics.
        self.assertIsNotNone(histogram(samples, name, label, "/metrics")[2], "/metrics counted")

    def test_database_latency_is_counted(self):
        name = "vouch_db_query_duration_seconds"
        _b, _s, count0 = histogram(parse_metrics(self.scrape())[0], name, "outcome", "ok")
        self.assertStatus(self.vouchd.admin("GET", "/v1/devices"), 200, "GET /v1/devices")
        samples, _types = parse_metrics(self.scrape())
        buckets, total, count = histogram(samples, name, "outcome", "ok")
        self.assertGreater(count, count0 or 0, f"queries counted: {buckets}")
        self.assertEqual(buckets.get("+Inf"), count)
        self.assertGreater(total, 0)
        for key in samples:
            if key.startswith(name):
                self.assertRegex(key, r'outcome="(ok|unavailable|overloaded|error)"',
                                 "a fixed set of labels, never SQL text")

    def test_identity_cache_is_counted(self):
        """A new device's first signed message costs a chain verification (miss), the next ones
        are proven with its cached certificate (hit)."""
        name = "vouch_identity_cache_total"
        before, types = parse_metrics(self.scrape())
        self.assertEqual(types.get(name), "counter")
        dev = self.enrolled_device()  # Authenticate (first sight), then TokenUpdate
        self.assertEmpty200(dev.settle_attestation(), "attestation answered")
        after, _types = parse_metrics(self.scrape())

        def delta(outcome):
            key = f'{name}{{outcome="{outcome}"}}'
            return after.get(key, 0) - before.get(key, 0)
        self.assertEqual(delta("miss"), 1, "one full verification for the new certificate")
        self.assertGreaterEqual(delta("hit"), 2, "TokenUpdate and the report: cached")
        self.assertEqual((delta("expired"), delta("evicted")), (0, 0))

    def test_build_info(self):
        version = subprocess.run([VOUCHD, "--version"], capture_output=True, text=True,
                                 check=True).stdout.split()[-1]
        samples, types = parse_metrics(self.scrape())
        self.assertEqual(types.get("vouch_build_info"), "gauge")
        self.assertEqual(samples.get(f'vouch_build_info{{version="{version}"}}'), 1.0,
                         f"vouch_build_info of vouchd {version}: "
                         f"{[k for k in samples if 'build' in k]}")


class DevicesByAttestationTest(AttestationCase):
    """vouch_devices{attestation} counts devices by their status, refreshed by a timer."""

    def test_devices_by_attestation_status(self):
        verified, failed, waiting = (self.iphone() for _ in range(3))
        unsupported = self.enrolled_device()  # a model without attestation
        cu, nonce = self.take_request(verified, "verified")
        self.answer(verified, cu, self.chain_for(verified, nonce), what="verified")
        cu, nonce = self.take_request(failed, "failed")
        self.answer(failed, cu, self.chain_for(failed, nonce, udid=verified.udid),
                    what="another device's UDID")
        self.assertEmpty200(unsupported.settle_attestation(), "unsupported")
        self.assertEqual(self.attestation(verified.udid)["status"], "verified")
        self.assertEqual(self.attestation(failed.udid)["status"], "failed")
        self.assertPending(waiting.udid, "the device that has not answered")
        want = {"verified": 1, "failed": 1, "unsupported": 1, "none": 1, "expired": 0}
        last = {}

        def counted():
            samples, types = parse_metrics(self.vouchd.metrics().text())
            last.clear()
            last.update({k: v for k, v in samples.items() if k.startswith("vouch_devices")})
            got = {s: samples.get(f'vouch_devices{{attestation="{s}"}}') for s in want}
            return (got == want and samples.get("vouch_devices_attestation_pending") == 1
                    and types.get("vouch_devices") == "gauge")

        try:
            wait_for(counted, FLEET_REFRESH_DEADLINE_S, interval=1.0,
                     what="vouch_devices by attestation status")
        except AssertionError:
            self.fail(f"expected {want} and one pending; /metrics says {last}")
        self.assertNotIn("vouch_devices", last, "no unlabelled vouch_devices beside the labelled")


class PushCertificateExpiryTest(PushTestCase):
    """vouch_push_certificate_expiry_seconds is the push certificate's notAfter."""

    push_cert_days = 40

    def test_expiry_is_the_certificates_not_after(self):
        not_after = calendar.timegm(self.identity.cert.not_valid_after.utctimetuple())
        text = self.metrics_text()
        samples, types = parse_metrics(text)
        self.assertEqual(types.get("vouch_push_certificate_expiry_seconds"), "gauge")
        self.assertEqual(samples.get("vouch_push_certificate_expiry_seconds"), not_after,
                         "the certificate's notAfter as Unix time")
        # And with a push certificate, the exposition still passes promtool (the push families).
        self.enroll()
        text = self.metrics_text()
        self.assertIn('vouch_pushes_total{outcome="no_token"}', text)
        p = subprocess.run([promtool(), "check", "metrics"], input=text, capture_output=True,
                           text=True, timeout=60)
        self.assertEqual((p.returncode, p.stdout + p.stderr), (0, ""), f"promtool:\n{text}")


class JsonLogTest(VouchTestCase):
    """log_format = json: one object per line; request ids on every line of a request."""

    vouchd_config = {"log_format": "json"}

    def log_objects(self, since=0):
        """Every line vouchd wrote since the offset, parsed (the harness's own '===' lines
        left out); a line that is not one JSON object fails the test."""
        with open(self.vouchd.log_path, "rb") as f:
            f.seek(since)
            data = f.read()
        out = []
        for n, raw in enumerate(data.split(b"\n"), 1):
            if not raw or raw.startswith(b"=== "):
                continue
            try:
                obj = json.loads(raw.decode("utf-8"))
            except ValueError as exc:
                self.fail(f"log line {n} is not JSON ({exc}): {raw[:300]!r}")
            self.assertIsInstance(obj, dict, f"log line {n}: {raw[:300]!r}")
            for key in ("ts", "level", "msg"):
                self.assertIn(key, obj, f"log line {n} without {key}: {obj}")
            self.assertIn(obj["level"], ("debug", "info", "warn", "error"), obj)
            self.assertRegex(obj["ts"], r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")
            out.append(obj)
        return out

    def wait_lines(self, since, predicate, what):
        found = []

        def look():
            found[:] = [o for o in self.log_objects(since) if predicate(o)]
            return found

        wait_for(look, DEADLINE_S, what=what)
        return list(found)

    def access_lines(self, since, request_id):
        return self.wait_lines(since, lambda o: o.get("request_id") == request_id
                               and o["msg"] == "access", f"the access line of {request_id}")

    def test_every_line_is_json(self):
        self.enrolled_device()
        lines = self.log_objects()
        self.assertTrue(any("listening" in o["msg"] for o in lines), "the start-up line")

    def test_request_id_from_the_client_is_echoed_and_logged(self):
        since = self.vouchd.log_size()
        rid = f"obs-{uuid.uuid4()}"
        r = self.vouchd.request("GET", "/v1/devices", headers={
            "Authorization": f"Bearer {self.vouchd.admin_token}", "X-Request-Id": rid})
        self.assertStatus(r, 200, "GET /v1/devices")
        self.assertEqual(r.header("X-Request-Id"), rid, "the client's id echoed")
        (access,) = self.access_lines(since, rid)
        self.assertEqual(access["level"], "info", access)
        self.assertEqual(ACCESS_FIELDS - set(access), set(), f"access line fields: {access}")
        self.assertEqual((access["method"], access["path"], access["status"]),
                         ("GET", "/v1/devices", 200), access)
        self.assertEqual(access["bytes"], len(r.body), access)
        self.assertGreaterEqual(access["duration_s"], 0)
        self.assertRegex(access["peer"], r"^127\.0\.0\.1:\d+$")

    def test_ids_vouchd_makes(self):
        for sent in (None, "x" * 65, "has space", "quote\"d"):
            since = self.vouchd.log_size()
            headers = {} if sent is None else {"X-Request-Id": sent}
            r = self.vouchd.request("GET", "/healthz", headers=headers)
            self.assertStatus(r, 200, "GET /healthz")
            rid = r.header("X-Request-Id")
            self.assertRegex(rid or "", r"^[0-9a-f]{16}$", f"an id made by vouchd for {sent!r}")
            self.assertNotEqual(rid, sent)
            self.access_lines(since, rid)
        # Each request its own.
        r = harness.http_request(self.vouchd.host, self.vouchd.port, "GET", "/healthz")
        a = r.header("X-Request-Id")
        b = harness.http_request(self.vouchd.host, self.vouchd.port, "GET", "/healthz")
        self.assertNotEqual(a, b.header("X-Request-Id"), "each request its own id")

    def test_query_string_is_not_logged(self):
        since = self.vouchd.log_size()
        r = self.vouchd.request("GET", "/mdm/enroll?token=secret-enroll-token-1234")
        rid = r.header("X-Request-Id")
        (access,) = self.access_lines(since, rid)
        self.assertEqual(access["path"], "/mdm/enroll", access)
        self.assertNotIn(b"secret-enroll-token-1234", open(self.vouchd.log_path, "rb").read())

    def test_database_notices_are_folded_in_with_the_request_id(self):
        """A PostgreSQL NOTICE and WARNING raised inside a function the server calls for a
        request come out as vouchd's own lines (info, warn) carrying the request's id."""
        dev = self.enrolled_device()
        marker = f"observability-{uuid.uuid4().hex[:8]}"
        self.pg.psql(f"""
            CREATE OR REPLACE FUNCTION vouch_device_get(p_udid text) RETURNS text
            LANGUAGE plpgsql STABLE AS $$
            BEGIN
                RAISE NOTICE '{marker} notice for %', p_udid;
                RAISE WARNING '{marker} warning';
                RETURN (SELECT vouch_device_object(d)::text FROM devices d WHERE d.udid = p_udid);
            END $$;""", self.dbname)
        since = self.vouchd.log_size()
        rid = f"notice-{uuid.uuid4().hex}"
        r = self.vouchd.request("GET", f"/v1/devices/{dev.udid}", headers={
            "Authorization": f"Bearer {self.vouchd.admin_token}", "X-Request-Id": rid})
        self.assertStatus(r, 200, "GET /v1/devices/{udid} through the noisy function")
        self.assertEqual(r.header("X-Request-Id"), rid)
        self.access_lines(since, rid)
        lines = [o for o in self.log_objects(since) if marker in o["msg"]]
        levels = {o["level"]: o for o in lines}
        self.assertEqual(set(levels), {"info", "warn"}, f"the notice and the warning: {lines}")
        self.assertIn(f"notice for {dev.udid}", levels["info"]["msg"])
        for o in lines:
            self.assertEqual(o.get("request_id"), rid, f"the request's id on {o}")
        # Nothing of libpq's own printing ("NOTICE:  ...") is left outside our lines.
        with open(self.vouchd.log_path, "rb") as f:
            f.seek(since)
            self.assertNotIn(b"NOTICE:  ", f.read())


class TextLogTest(VouchTestCase):
    """The default text format: the access line and the request id on text lines too."""

    def test_access_line_in_text(self):
        since = self.vouchd.log_size()
        rid = f"text-{uuid.uuid4().hex[:12]}"
        r = self.vouchd.request("GET", "/nowhere", headers={"X-Request-Id": rid})
        self.assertStatus(r, 404, "an unknown path")
        self.assertEqual(r.header("X-Request-Id"), rid)
        pattern = re.compile(rf"^\S+Z info request_id={rid} access method=GET path=/nowhere "
                             rf"status=404 bytes=\d+ duration_s=[0-9.e-]+ peer=127\.0\.0\.1:\d+$",
                             re.M)
        wait_for(lambda: pattern.search(self.vouchd.log_tail(200, since=since)), DEADLINE_S,
                 what="the access line in text")
