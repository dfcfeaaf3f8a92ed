"""Web-hooks for NanoMDM's consumers (issue 25, item 6): topics per receiver, NanoMDM's fields,
and the check-in types vouchd does not serve.

Two receivers on loopback (test_webhook.Receiver, Python's own HTTP server): "siem" takes every
topic (no topics of its own, no webhook_topics), "nano" is `URL#nanomdm`, as a NanoCMD would be
configured. What must hold (docs/api.md, Web-hooks; docs/protocol.md):
  * nano gets every mdm.* event and nothing else (never attestation.*, identity.*, trust.*,
    device.*, command.*), siem gets everything, each event once;
  * url_params: the query of the URL the device used, present only when there is one;
  * token_update_tally counts the TokenUpdates of an enrollment; an Idle is an mdm.Connect;
  * UserAuthenticate gets 410, GetBootstrapToken 200 without a token, SetBootstrapToken,
    DeclarativeManagement and GetToken 400; each is counted and, from an enrolled device, an
    mdm.<MessageType> event; an unknown device gets 403 and no event.
"""

import base64
import plistlib
import re
import secrets

from harness import VouchTestCase, wait_for
from test_edges import rejections
from test_webhook import DEADLINE_S, Receiver


class ReceiverTopicsCase(VouchTestCase):
    @classmethod
    def setUpClass(cls):
        cls.siem = Receiver().start()
        cls.nano = Receiver().start()
        cls.secret = secrets.token_hex(16)
        cls.vouchd_config = dict(cls.vouchd_config,
                                 webhook_url=f"{cls.siem.url}, {cls.nano.url}#nanomdm",
                                 webhook_secret=cls.secret, webhook_timeout="2s")
        super().setUpClass()

    @classmethod
    def tearDownClass(cls):
        try:
            super().tearDownClass()
        finally:
            cls.siem.stop()
            cls.nano.stop()

    def sql(self, text):
        return self.pg.psql(text, self.dbname)

    def stored_events(self, udid):
        """{event_id: topic} of the events vouchd stored about one device."""
        out = self.sql(f"SELECT event_id, topic FROM events WHERE udid = '{udid}'")
        return dict(line.split("|") for line in out.split())

    def events_of(self, receiver, udid):
        """The events a receiver got about one device, one per event_id, in the order they were
        stored (deliveries run concurrently: arrival says nothing)."""
        out = []
        for events in receiver.delivered().values():
            e = events[0]
            body = e.get("checkin_event") or e.get("acknowledge_event") or e.get("device") or e
            if body.get("udid") == udid:
                out.append(e)
        order = {event_id: n for n, event_id in enumerate(self.sql(
            f"SELECT event_id FROM events WHERE udid = '{udid}' ORDER BY id").split())}
        return sorted(out, key=lambda e: order.get(e["event_id"], len(order)))

    def wait_for_events(self, receiver, event_ids):
        wait_for(lambda: set(event_ids) <= set(receiver.delivered()), DEADLINE_S, interval=0.2,
                 what=f"{len(event_ids)} events delivered")

    def mdm_event(self, receiver, udid, topic, n=1):
        """The n events of topic about udid the receiver got (waits for them)."""
        def found():
            got = [e for e in self.events_of(receiver, udid) if e["topic"] == topic]
            return got if len(got) >= n else None
        wait_for(found, DEADLINE_S, interval=0.2, what=f"{n} {topic} event(s)")
        return found()


class TopicsPerReceiverTest(ReceiverTopicsCase):
    def test_nanomdm_receiver_gets_only_mdm_topics(self):
        dev = self.enrolled_device()
        # device.os_changed (a new OS in the answer), then device.reenrolled (a new identity):
        # Vouch's own events, which a NanoCMD answers with 500.
        dev.settle_attestation(query_responses={"OSVersion": "14.5"})
        dev.new_identity()
        dev.enroll()
        self.assertEmpty200(dev.checkout(), "CheckOut")
        stored = self.stored_events(dev.udid)
        topics = set(stored.values())
        self.assertTrue({"device.os_changed", "device.reenrolled"} <= topics, topics)
        self.assertTrue({"mdm.Authenticate", "mdm.TokenUpdate", "mdm.Connect",
                         "mdm.CheckOut"} <= topics, topics)
        mdm_ids = {i for i, t in stored.items() if t.startswith("mdm.")}
        self.wait_for_events(self.siem, stored)
        self.wait_for_events(self.nano, mdm_ids)
        # The siem has every one; the nano receiver only the mdm.* ones, each once.
        self.assertEqual(set(stored) - set(self.siem.delivered()), set())
        nano_got = self.nano.delivered()
        self.assertEqual({i for i in nano_got if i in stored}, mdm_ids)
        for event_id, copies in nano_got.items():
            self.assertTrue(copies[0]["topic"].startswith("mdm."), copies[0]["topic"])
        self.assertEqual(sorted(self.sql("SELECT DISTINCT receiver FROM event_deliveries "
                                         "d JOIN events e ON e.id = d.event_id "
                                         "WHERE e.topic LIKE 'device.%'").split()),
                         [self.siem.url], "Vouch's events are not even queued for nano")
        # The receivers as stored: nano without the fragment, with NanoMDM's nine topics.
        rows = dict(line.split("|", 1) for line in self.sql(
            "SELECT url, coalesce(array_to_string(topics, ','), '*') FROM webhook_receivers"
        ).split())
        self.assertEqual(rows[self.siem.url], "*")
        self.assertEqual(sorted(rows[self.nano.url].split(",")),
                         sorted(["mdm.Authenticate", "mdm.TokenUpdate", "mdm.CheckOut",
                                 "mdm.Connect", "mdm.UserAuthenticate", "mdm.SetBootstrapToken",
                                 "mdm.GetBootstrapToken", "mdm.DeclarativeManagement",
                                 "mdm.GetToken"]))


class NanoMdmFieldsTest(ReceiverTopicsCase):
    def test_url_params_present_only_with_a_query(self):
        dev = self.new_device()
        self.assertEmpty200(dev.authenticate(path="/mdm/checkin?group=sales&site=paris&group=x"),
                            "Authenticate with a query")
        self.assertEmpty200(dev.token_update(), "TokenUpdate without")
        cmd = dev.take_attestation_request(path="/mdm/connect?enrollment=a%20b")
        self.assertEmpty200(dev.answer_attestation(cmd, path="/mdm?x=1"), "answer at /mdm")
        self.assertEmpty200(dev.idle(path="/mdm/connect?bad=%zz"), "a malformed query is served")
        for receiver in (self.siem, self.nano):
            (auth,) = self.mdm_event(receiver, dev.udid, "mdm.Authenticate")
            self.assertEqual(auth["checkin_event"]["url_params"],
                             {"group": "sales", "site": "paris"})
            (token,) = self.mdm_event(receiver, dev.udid, "mdm.TokenUpdate")
            self.assertNotIn("url_params", token["checkin_event"])
            connects = self.mdm_event(receiver, dev.udid, "mdm.Connect", 3)
            params = [(e["acknowledge_event"]["status"],
                       e["acknowledge_event"].get("url_params")) for e in connects]
            self.assertEqual(params, [("Idle", {"enrollment": "a b"}),
                                      ("Acknowledged", {"x": "1"}), ("Idle", None)])

    def test_token_update_tally_and_idle_connect(self):
        dev = self.enrolled_device()
        self.assertEmpty200(dev.token_update(), "a second TokenUpdate")
        dev.settle_attestation()
        self.assertEmpty200(dev.idle(), "an Idle with nothing queued")
        for receiver in (self.siem, self.nano):
            tokens = self.mdm_event(receiver, dev.udid, "mdm.TokenUpdate", 2)
            self.assertEqual([e["checkin_event"]["token_update_tally"] for e in tokens], [1, 2])
            for e in self.events_of(receiver, dev.udid):
                if e["topic"] != "mdm.TokenUpdate":
                    self.assertNotIn("token_update_tally", e.get("checkin_event", {}), e)
            connects = self.mdm_event(receiver, dev.udid, "mdm.Connect", 3)
            idles = [e["acknowledge_event"] for e in connects
                     if e["acknowledge_event"]["status"] == "Idle"]
            self.assertEqual(len(idles), 2, connects)
            for idle in idles:
                self.assertNotIn("command_uuid", idle)
                self.assertEqual(idle["udid"], dev.udid)
                self.assertEqual(plistlib.loads(base64.b64decode(idle["raw_payload"])),
                                 {"UDID": dev.udid, "Status": "Idle"})


class UnsupportedCheckinTest(ReceiverTopicsCase):
    ANSWERS = {"UserAuthenticate": 410, "GetBootstrapToken": 200, "SetBootstrapToken": 400,
               "DeclarativeManagement": 400, "GetToken": 400}

    def message(self, dev, message_type):
        m = {"MessageType": message_type, "UDID": dev.udid}
        if message_type == "UserAuthenticate":
            m.update(UserID="5DF1182E-C70B-4A3A-BADC-DD3E775040FB", UserShortName="user",
                     UserLongName="A User")
        elif message_type == "SetBootstrapToken":
            m["BootstrapToken"] = b"not kept"
        elif message_type == "DeclarativeManagement":
            m["Endpoint"] = "tokens"
        elif message_type == "GetToken":
            m["TokenServiceType"] = "com.apple.maid"
        return m

    def checkins_counted(self, message_type):
        m = re.search(r'^vouch_checkins_total\{message_type="' + message_type + r'"\} (\d+)$',
                      self.vouchd.metrics().text(), re.M)
        return int(m.group(1)) if m else 0

    def test_answers_and_events(self):
        dev = self.enrolled_device()
        for message_type, status in self.ANSWERS.items():
            before = self.checkins_counted(message_type)
            refused = rejections(self.vouchd, "unsupported_message_type")
            r = dev.checkin(self.message(dev, message_type), path="/mdm/checkin?via=test")
            self.assertEqual(r.status, status, f"{message_type}: {r!r}")
            if status == 200:
                # Apple: no bootstrap token is a success without BootstrapToken.
                self.assertEqual(r.media_type(), "application/xml")
                self.assertEqual(plistlib.loads(r.body), {}, message_type)
                self.assertEqual(rejections(self.vouchd, "unsupported_message_type"), refused)
            else:
                self.assertEqual(r.text().strip(), "unsupported_message_type", message_type)
                self.assertEqual(rejections(self.vouchd, "unsupported_message_type"),
                                 refused + 1, message_type)
            self.assertEqual(self.checkins_counted(message_type), before + 1, message_type)
            for receiver in (self.siem, self.nano):
                (event,) = self.mdm_event(receiver, dev.udid, f"mdm.{message_type}")
                c = event["checkin_event"]
                self.assertEqual(plistlib.loads(base64.b64decode(c["raw_payload"])),
                                 self.message(dev, message_type))
                self.assertEqual(c["url_params"], {"via": "test"})
                self.assertEqual(c["ids"], {"id": dev.udid, "type": "Device"})
        # ReturnToService has no web-hook topic (NanoMDM has none): refused, and no event even
        # for siem, which takes every topic.
        r = dev.checkin({"MessageType": "ReturnToService", "UDID": dev.udid})
        self.assertEqual((r.status, r.text().strip()), (400, "unsupported_message_type"))
        self.assertEqual(self.sql("SELECT count(*) FROM events WHERE topic NOT IN ("
                                  + ", ".join(f"'mdm.{t}'" for t in self.ANSWERS) +
                                  ", 'mdm.Authenticate', 'mdm.TokenUpdate', 'mdm.Connect') "
                                  f"AND udid = '{dev.udid}'").strip(), "0")
        # Still enrolled and served: nothing of these changed the enrollment.
        self.assertEmpty200(dev.settle_attestation(), "the device goes on")
        self.assertTrue(self.vouchd.device(dev.udid).json()["enrolled"])

    def test_unknown_or_foreign_device(self):
        stranger = self.new_device()
        for message_type in self.ANSWERS:
            r = stranger.checkin(self.message(stranger, message_type))
            self.assertEqual((r.status, r.text().strip()), (403, "unknown_device"), message_type)
        dev = self.enrolled_device()
        other = self.new_device()
        # Another device's identity speaking for dev's UDID.
        r = dev.checkin(self.message(dev, "GetBootstrapToken"), signer=other.identity)
        self.assertEqual((r.status, r.text().strip()), (403, "identity_mismatch"))
        stored = self.sql("SELECT count(*) FROM events WHERE topic IN ("
                          + ", ".join(f"'mdm.{t}'" for t in self.ANSWERS) + ") "
                          f"AND udid IN ('{stranger.udid}', '{dev.udid}')")
        self.assertEqual(int(stored), 0, "no event for a device that did not prove itself")
        r = dev.checkin({"MessageType": "GetToken"})
        self.assertEqual((r.status, r.text().strip()), (400, "missing_field"), "no UDID")


del ReceiverTopicsCase  # a base, not a test of its own
