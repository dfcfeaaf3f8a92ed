"""Web-hooks (issue 6): the outbox, NanoMDM/MicroMDM-compatible MDM events, compliance events,
HMAC, retries, a receiver that is down, slow or failing, and vouchd killed while delivering.

The receiver here is Python's own HTTP server (not vouchd's code): it records every POST with its
headers and answers as a test tells it. What must hold (docs/api.md, Web-hooks):
  * every event is POSTed as JSON with X-Hmac-Signature = base64(HMAC-SHA256(body, secret));
  * nothing is lost: a receiver that was down gets, once back, every event of the run, and a
    500 is retried until a 2xx;
  * the MDM events validate against NanoMDM's JSON schema and match its examples field for
    field (tests/testdata/peer-plists/nanomdm/service__webhook__*.json), for the same request bodies;
  * attestation.verified / attestation.failed / device.os_changed carry the device object;
  * a slow receiver does not slow device traffic; a vouchd killed mid-delivery delivers after a
    restart (at least once: event_id lets receivers drop the duplicate).
"""

import base64
import datetime
import hashlib
import hmac
import http.server
import json
import os
import secrets
import threading
import time

from cryptography.hazmat.primitives import serialization

import harness
from harness import VouchTestCase, peer_plist, wait_for

try:
    import jsonschema
except ImportError:  # a skip here, a failure under CI=true
    jsonschema = None

NANO = os.path.join(harness.PEER_PLISTS, "nanomdm")
DEADLINE_S = 60.0


class Receiver:
    """An HTTP receiver on a fixed port that can be stopped and started again."""

    def __init__(self):
        self.port = harness.pg.free_port()
        self.lock = threading.Lock()
        self.records = []  # (headers dict, body bytes, status answered)
        self.script = []  # statuses to answer next, then 200
        self.delay = 0.0
        self.server = None
        self.thread = None

    @property
    def url(self):
        return f"http://127.0.0.1:{self.port}/hook"

    def start(self):
        receiver = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                if receiver.delay:
                    time.sleep(receiver.delay)
                with receiver.lock:
                    status = receiver.script.pop(0) if receiver.script else 200
                    receiver.records.append((dict(self.headers), body, status))
                self.send_response(status)
                self.send_header("Content-Length", "0")
                # No keep-alive: a stopped receiver must not go on answering on a connection
                # it accepted before.
                self.send_header("Connection", "close")
                self.close_connection = True
                self.end_headers()

            def log_message(self, *args):
                pass

        class Server(http.server.ThreadingHTTPServer):
            request_queue_size = 128  # vouchd sends up to 64 at once

        self.server = Server(("127.0.0.1", self.port), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()
        return self

    def stop(self):
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()
            self.server = None

    def delivered(self):
        """{event_id: [event, ...]} of the events answered 2xx."""
        out = {}
        with self.lock:
            for headers, body, status in self.records:
                if 200 <= status < 300:
                    event = json.loads(body)
                    out.setdefault(event["event_id"], []).append(event)
        return out


class WebhookCase(VouchTestCase):
    webhook_config = {}
    more_receivers = 0  # receivers in webhook_url after the first, not started

    @classmethod
    def setUpClass(cls):
        cls.receiver = Receiver().start()
        cls.others = [Receiver() for _ in range(cls.more_receivers)]
        cls.secret = secrets.token_hex(16)
        urls = ", ".join(r.url for r in [cls.receiver] + cls.others)
        # Added to what a class before this one in the MRO configured (e.g. PushTestCase).
        cls.vouchd_config = dict(cls.vouchd_config, webhook_url=urls, webhook_secret=cls.secret,
                                 webhook_timeout="2s", **cls.webhook_config)
        super().setUpClass()

    @classmethod
    def tearDownClass(cls):
        try:
            super().tearDownClass()
        finally:
            for r in [cls.receiver] + cls.others:
                r.stop()

    def sql(self, text):
        return self.pg.psql(text, self.dbname)

    def stored_events(self, udid=None):
        """{event_id: topic} of the events vouchd stored (for one device, or all)."""
        where = f"WHERE udid = '{udid}'" if udid else ""
        out = self.sql(f"SELECT event_id, topic FROM events {where}")
        return dict(line.split("|") for line in out.split())

    def assertSigned(self):
        with self.receiver.lock:
            records = list(self.receiver.records)
        self.assertTrue(records, "nothing was received")
        for headers, body, _status in records:
            want = base64.b64encode(hmac.new(self.secret.encode(), body,
                                             hashlib.sha256).digest()).decode()
            self.assertEqual(headers.get("X-Hmac-Signature"), want, f"HMAC of {body[:200]!r}")
            self.assertEqual(headers.get("Content-Type"), "application/json")

    def wait_delivered(self, event_ids, timeout=DEADLINE_S):
        wait_for(lambda: set(event_ids) <= set(self.receiver.delivered()), timeout,
                 interval=0.2, what=f"{len(event_ids)} events delivered")


class MdmEventShapeTest(WebhookCase):
    """The NanoMDM shape, for the very request bodies of NanoMDM's own examples."""

    def example(self, name):
        with open(os.path.join(NANO, f"service__webhook__testdata__{name}.json")) as f:
            return json.load(f)

    def schema(self):
        with open(os.path.join(NANO, "service__webhook__event.json")) as f:
            return json.load(f)

    def test_authenticate_and_connect_match_nanomdm(self):
        if jsonschema is None:
            harness.unavailable("python3-jsonschema")
        data, msg = peer_plist("nanomdm/mdm__testdata__Authenticate.2.plist")
        dev = self.new_device(udid=msg["UDID"])
        self.assertEmpty200(dev.checkin_bytes(data), "NanoMDM's Authenticate")
        # It answers queries with what it said there.
        dev.serial, dev.model, dev.product_name = (msg["SerialNumber"], msg["Model"],
                                                   msg["ProductName"])
        dev.os_version, dev.build_version = msg["OSVersion"], msg["BuildVersion"]
        tu_data, _ = peer_plist("nanomdm/mdm__testdata__TokenUpdate.2.plist")
        self.assertEmpty200(dev.checkin_bytes(tu_data), "NanoMDM's TokenUpdate")
        dev.settle_attestation()
        report, _ = peer_plist("nanomdm/mdm__testdata__DeviceInformation.1.plist")
        r = dev.connect_bytes(report)
        self.assertStatus(r, 200, "NanoMDM's DeviceInformation report")

        wanted = set(self.stored_events(dev.udid))
        self.wait_delivered(wanted)
        events = [e[0] for e in self.receiver.delivered().values()
                  if e[0].get("checkin_event", e[0].get("acknowledge_event", {})).get("udid")
                  == dev.udid]
        validator = jsonschema.Draft202012Validator(self.schema())
        for e in events:
            errors = [err.message for err in validator.iter_errors(e)]
            self.assertEqual(errors, [], f"{e['topic']} against NanoMDM's schema")
            datetime.datetime.strptime(e["created_at"], "%Y-%m-%dT%H:%M:%SZ")
            self.assertRegex(e["event_id"], r"^[0-9a-f-]{36}$")

        def strip(e):
            return {k: v for k, v in e.items() if k not in ("event_id", "created_at")}
        auth = [e for e in events if e["topic"] == "mdm.Authenticate"]
        self.assertEqual([strip(e) for e in auth], [strip(self.example("Authenticate.2"))])
        connect = [e for e in events if e["topic"] == "mdm.Connect"
                   and e["acknowledge_event"].get("command_uuid")
                   == "76eda240-5488-4989-8339-f2ae160113c4"]
        self.assertEqual([strip(e) for e in connect], [strip(self.example("DeviceInformation.1"))])
        tokens = [e for e in events if e["topic"] == "mdm.TokenUpdate"]
        self.assertEqual(len(tokens), 1)
        self.assertEqual(tokens[0]["checkin_event"]["token_update_tally"], 1)
        self.assertEqual(base64.b64decode(tokens[0]["checkin_event"]["raw_payload"]), tu_data)
        # Every report is an mdm.Connect: the Idle and the attestation answer too.
        statuses = sorted(e["acknowledge_event"]["status"] for e in events
                          if e["topic"] == "mdm.Connect")
        self.assertIn("Idle", statuses)
        self.assertSigned()

    def test_checkout_and_compliance_events(self):
        dev = self.enrolled_device()
        dev.settle_attestation()  # an unsupported answer: no attestation.* event
        self.assertEmpty200(dev.checkout(), "CheckOut")
        wanted = self.stored_events(dev.udid)
        self.assertIn("mdm.CheckOut", wanted.values())
        self.assertNotIn("attestation.verified", wanted.values())
        self.wait_delivered(wanted)
        checkout = [e[0] for e in self.receiver.delivered().values()
                    if e[0]["topic"] == "mdm.CheckOut"
                    and e[0]["checkin_event"]["udid"] == dev.udid]
        self.assertEqual(len(checkout), 1)


class ComplianceEventTest(WebhookCase):
    """attestation.* and device.os_changed, with the device object, from the database."""

    webhook_config = {"webhook_topics": "attestation.verified, attestation.failed, "
                                        "attestation.expired, device.os_changed, "
                                        "device.reenrolled"}

    def test_only_chosen_topics_and_device_objects(self):
        dev = self.enrolled_device()
        dev.settle_attestation(query_responses={"OSVersion": "14.5"})  # unsupported, new OS
        stored = self.stored_events(dev.udid)
        self.assertEqual(sorted(stored.values()), ["device.os_changed"],
                         "MDM events are not even stored when no receiver takes them")
        self.wait_delivered(stored)
        (event,) = self.receiver.delivered()[next(iter(stored))]
        self.assertEqual(event["topic"], "device.os_changed")
        self.assertEqual(event["previous"], {"os_version": "14.4.1",
                                             "build_version": dev.build_version})
        self.assertEqual(event["device"]["udid"], dev.udid)
        self.assertEqual(event["device"]["os_version"], "14.5")
        self.assertIn("attestation", event["device"])
        self.assertSigned()

    def test_reenrolled(self):
        dev = self.enrolled_device()
        dev.settle_attestation()
        old_cert = dev.cert
        dev.new_identity()  # erased, and enrolled again with a new certificate
        dev.enroll()
        stored = {i: t for i, t in self.stored_events(dev.udid).items()
                  if t == "device.reenrolled"}
        self.assertEqual(len(stored), 1, stored)
        self.wait_delivered(stored)
        (event,) = self.receiver.delivered()[next(iter(stored))]
        der = serialization.Encoding.DER
        self.assertEqual((event["previous_cert_sha256"], event["cert_sha256"], event["generation"]),
                         (hashlib.sha256(old_cert.public_bytes(der)).hexdigest(),
                          hashlib.sha256(dev.cert.public_bytes(der)).hexdigest(), 2), event)
        self.assertEqual(event["device"]["generation"], 2, event)
        self.assertEqual(event["device"]["attestation"]["status"], "none", event)
        self.assertSigned()


class ReceiverTroubleTest(WebhookCase):
    """Down, failing, slow: nothing is lost and devices do not wait."""

    def test_receiver_down_then_back_gets_everything(self):
        self.receiver.stop()
        try:
            devs = [self.enrolled_device() for _ in range(10)]
            for dev in devs:
                dev.settle_attestation()
            wanted = {}
            for dev in devs:
                wanted.update(self.stored_events(dev.udid))
            wait_for(lambda: int(self.sql(
                "SELECT count(*) FROM event_deliveries WHERE attempts > 0 "
                "AND status = 'pending'")) > 0, DEADLINE_S, what="failed attempts")
        finally:
            self.receiver.start()
        self.wait_delivered(wanted, timeout=90)
        self.assertSigned()
        # The receiver has them all; vouchd records each answer a moment after it came.
        wait_for(lambda: int(self.sql("SELECT count(*) FROM event_deliveries "
                                      "WHERE status <> 'delivered'")) == 0, DEADLINE_S,
                 what="every delivery recorded as delivered")
        r = self.vouchd.admin("GET", "/v1/events?status=delivered&limit=5")
        self.assertStatus(r, 200, "GET /v1/events")
        listed = r.json()
        self.assertEqual(len(listed), 5)
        self.assertTrue(all(e["status"] == "delivered" for e in listed))

    def test_500_then_200(self):
        self.receiver.script[:] = [500]
        dev = self.enrolled_device()
        wanted = self.stored_events(dev.udid)
        self.wait_delivered(wanted)
        rows = self.sql("SELECT attempts || ':' || coalesce(last_error, '-') FROM "
                        "event_deliveries d JOIN events e ON e.id = d.event_id "
                        f"WHERE e.udid = '{dev.udid}'").splitlines()
        self.assertIn("2:HTTP 500", rows, "the first event: attempt 1 got 500, then 200")
        self.assertEqual(sum(1 for r in rows if r.startswith("1:")), len(rows) - 1, rows)

    def test_slow_receiver_does_not_slow_devices(self):
        self.receiver.delay = 1.5
        try:
            started = time.monotonic()
            devs = [self.enrolled_device() for _ in range(5)]
            for dev in devs:
                dev.settle_attestation()
            took = time.monotonic() - started
            self.assertLess(took, 5.0, f"5 enrollments took {took:.1f} s behind a receiver "
                                       "taking 1.5 s per event")
        finally:
            self.receiver.delay = 0.0


class DeadAndRetryTest(WebhookCase):
    """An event older than webhook_max_age is dead; an operator sends it again."""

    webhook_config = {"webhook_max_age": "1m"}

    def test_dead_then_retried(self):
        self.receiver.script[:] = [500] * 1000
        dev = self.enrolled_device()
        wanted = self.stored_events(dev.udid)
        wait_for(lambda: int(self.sql("SELECT count(*) FROM event_deliveries "
                                      "WHERE attempts > 0")) > 0, DEADLINE_S,
                 what="a failed attempt")
        # Two minutes later (by the database's clock), the next failure makes it dead.
        self.sql("UPDATE vouch_clock SET skew = skew + interval '2 minutes'; "
                 "UPDATE event_deliveries SET next_attempt_at = vouch_now(); "
                 "NOTIFY vouch_events;")
        wait_for(lambda: len(self.vouchd.admin("GET", "/v1/events?status=dead").json())
                 == len(wanted), DEADLINE_S, what="the events dead")
        self.receiver.script[:] = []
        dead = self.vouchd.admin("GET", "/v1/events?status=dead").json()
        self.assertEqual({e["event_id"] for e in dead}, set(wanted))
        self.assertTrue(all(e["last_error"] == "HTTP 500" and e["attempts"] >= 2 for e in dead),
                        dead)
        listing = harness.vouchctl(self.vouchd, "events", "--status", "dead")
        self.assertEqual(listing.returncode, 0, listing.stderr)
        for e in dead:
            self.assertIn(e["topic"], listing.stdout)
        first, rest = dead[0], dead[1:]
        out = harness.vouchctl(self.vouchd, "events", "retry", str(first["id"]))
        self.assertEqual(out.returncode, 0, out.stderr)
        for e in rest:
            r = self.vouchd.admin("POST", f"/v1/events/{e['id']}/retry", body=b"")
            self.assertStatus(r, 200, "POST /v1/events/{id}/retry")
        self.wait_delivered(wanted)
        r = self.vouchd.admin("POST", "/v1/events/999999999/retry", body=b"")
        self.assertStatus(r, 404, "retry of an unknown event")
        # Ids beyond a bigint are refused here, not by the database (never a 500).
        r = self.vouchd.admin("POST", "/v1/events/99999999999999999999/retry", body=b"")
        self.assertStatus(r, 404, "retry of an id beyond a bigint")
        for query in ("before=99999999999999999999", "before=0", "before=x", "status=gone",
                      "limit=0"):
            r = self.vouchd.admin("GET", f"/v1/events?{query}")
            self.assertStatus(r, 400, f"GET /v1/events?{query}")
        self.assertIn('vouch_webhook_deliveries_total{result="dead"}',
                      self.vouchd.metrics().text())


class KilledMidDeliveryTest(WebhookCase):
    """vouchd SIGKILLed while the receiver holds its requests: after a restart every event
    arrives (at least once)."""

    def test_killed_then_restarted(self):
        self.receiver.delay = 3.0
        dev = self.enrolled_device()
        wanted = self.stored_events(dev.udid)
        wait_for(lambda: self.receiver.thread is not None and
                 int(self.sql("SELECT count(*) FROM event_deliveries WHERE status = 'pending' "
                              "AND next_attempt_at > vouch_now()")) > 0, DEADLINE_S,
                 what="deliveries in flight")
        self.vouchd.kill()
        in_flight = int(self.sql("SELECT count(*) FROM event_deliveries WHERE status = 'pending'"))
        self.assertGreater(in_flight, 0, "nothing was in flight when vouchd was killed")
        self.receiver.delay = 0.0
        self.vouchd.proc = None
        self.vouchd.start()
        # Once the leases of the dead instance run out, the new one sends them and records it.
        wait_for(lambda: int(self.sql("SELECT count(*) FROM event_deliveries "
                                      "WHERE status <> 'delivered'")) == 0, DEADLINE_S,
                 what="every delivery recorded after the restart")
        self.wait_delivered(wanted)
        self.assertSigned()


class TwoInstancesOutboxTest(WebhookCase):
    """Two instances share the outbox: in normal operation each event goes out once."""

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.second = harness.Vouchd(cls.vouchd.database_url, cls.vouchd.identity_ca,
                                    name=f"{cls.__module__}.{cls.__name__}.second",
                                    admin_token=cls.vouchd.admin_token,
                                    extra=cls.vouchd_config).start()

    @classmethod
    def tearDownClass(cls):
        cls.second.stop()
        super().tearDownClass()

    def test_each_event_once_and_pruned_when_old(self):
        devs = []
        for i in range(20):
            dev = self.enrolled_device()
            dev.server = self.second if i % 2 else self.vouchd  # traffic through both
            dev.settle_attestation()
            devs.append(dev)
        wanted = {}
        for dev in devs:
            wanted.update(self.stored_events(dev.udid))
        self.wait_delivered(wanted)
        wait_for(lambda: int(self.sql("SELECT count(*) FROM event_deliveries "
                                      "WHERE status <> 'delivered'")) == 0, DEADLINE_S,
                 what="every delivery recorded")
        twice = {k: len(v) for k, v in self.receiver.delivered().items()
                 if k in wanted and len(v) > 1}
        self.assertEqual(twice, {}, "events sent more than once by the two instances")
        counters = 0
        for server in (self.vouchd, self.second):
            for line in server.metrics().text().splitlines():
                if line.startswith('vouch_webhook_deliveries_total{result="delivered"}'):
                    counters += float(line.split()[-1])
        self.assertGreaterEqual(counters, len(wanted))

        # Delivered events leave after the retention (here: the clock moves past it).
        self.sql("UPDATE vouch_clock SET skew = skew + interval '31 days'")
        self.sql("SELECT vouch_prune(interval '30 days', 100000, interval '365 days')")
        left = self.sql("SELECT count(*) FROM events e WHERE EXISTS (SELECT 1 FROM "
                        "event_deliveries d WHERE d.event_id = e.id)")
        self.assertEqual(int(left), 0, "delivered events kept past the retention")


class TwoReceiversTest(WebhookCase):
    """webhook_url may list several receivers: each gets every event it takes, on its own
    schedule (one being down does not hold the other back)."""

    more_receivers = 1

    def test_each_receiver_gets_everything(self):
        dev = self.enrolled_device()  # the second receiver is down meanwhile
        wanted = self.stored_events(dev.udid)
        self.wait_delivered(wanted)
        self.others[0].start()
        wait_for(lambda: set(wanted) <= set(self.others[0].delivered()), DEADLINE_S, interval=0.2,
                 what="the second receiver, once up, to get every event")
        rows = self.sql("SELECT count(DISTINCT receiver) FROM event_deliveries")
        self.assertEqual(int(rows), 2)
