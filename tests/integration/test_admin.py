"""The admin API: bearer-token authentication, device objects, commands list, enqueue.

An enrollment's first TokenUpdate queues an attestation request ahead of everything else: tests
that need an empty queue answer it first with Device.settle_attestation()."""

import http.client
import plistlib
import re
import uuid

from harness import VouchTestCase, command_plist

DEVICE_KEYS = {"udid", "serial_number", "model", "product_name", "os_version", "build_version",
               "enrolled", "last_seen_at", "push", "attestation"}
PUSH_KEYS = {"token_state", "last_push_at", "last_push_result"}
ATTESTATION_KEYS = {"status", "freshness", "reason", "verified_at", "expires_at", "requested_at",
                    "received_at", "generated_at", "leaf_expires_at", "next_due_at", "request",
                    "properties"}
PROPERTY_KEYS = {"serial_number", "udid", "os_version", "sepos_version", "llb_version",
                 "software_update_device_id", "sip_enabled", "secure_boot",
                 "third_party_kexts_allowed"}
UUID_RE = re.compile(r"^[0-9A-Fa-f]{8}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-"
                     r"[0-9A-Fa-f]{12}$")


class AdminAuthTest(VouchTestCase):
    # These tests look at each refusal's answer, two dozen wrong tokens in a row: no login limit
    # here (AdminLoginLimitTest tests it).
    vouchd_config = {"admin_login_limit": "0"}

    def assertJsonError(self, r, status, what):
        self.assertEqual(r.status, status, f"{what}: {r!r}")
        self.assertEqual(r.media_type(), "application/json", f"{what}: {r!r}")
        body = r.json()
        self.assertIsInstance(body, dict, what)
        self.assertIsInstance(body.get("error"), str, f"{what}: no 'error' string: {body!r}")

    def test_401_without_or_with_wrong_token(self):
        v = self.vouchd
        tok = v.admin_token
        paths = [("GET", "/v1/devices"), ("GET", "/v1/devices/ABC"),
                 ("GET", "/v1/devices/ABC/commands"), ("PUT", "/v1/enqueue/ABC")]
        body = plistlib.dumps(command_plist("ProfileList"))
        for method, path in paths:
            data = body if method == "PUT" else None
            for name, headers in [
                ("no Authorization", {}),
                ("wrong token", {"Authorization": "Bearer wrong-" + tok}),
                ("token minus its last character", {"Authorization": "Bearer " + tok[:-1]}),
                ("token plus one character", {"Authorization": "Bearer " + tok + "x"}),
                ("empty bearer", {"Authorization": "Bearer "}),
                ("token without Bearer", {"Authorization": tok}),
                ("Basic scheme", {"Authorization": "Basic " + tok}),
            ]:
                r = v.request(method, path, body=data, headers=headers)
                self.assertJsonError(r, 401, f"{method} {path} with {name}")
        self.assertEqual(v.admin("GET", "/v1/devices").status, 200, "right token")

    def test_health_and_metrics_need_no_token(self):
        r = self.vouchd.healthz()
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.json().get("status"), "ok", r)
        r = self.vouchd.metrics()
        self.assertEqual(r.status, 200, r)

    def assertNullProperties(self, att, what):
        props = att["properties"]
        if props is not None:
            self.assertEqual(PROPERTY_KEYS - set(props), set(), f"{what}: properties: {props}")
            for k, v in props.items():
                self.assertIsNone(v, f"{what}: attestation.properties.{k}")

    def test_device_object_shape(self):
        dev = self.new_device()
        self.assertStatus(dev.authenticate(), 200, "Authenticate")
        att = self.vouchd.device(dev.udid).json()["attestation"]
        self.assertEqual(ATTESTATION_KEYS - set(att), set(), f"attestation keys: {att}")
        self.assertEqual(att["status"], "none", "before the first TokenUpdate")
        for k in ATTESTATION_KEYS - {"status", "properties"}:
            self.assertIsNone(att[k], f"attestation.{k} of a never-asked device")
        self.assertNullProperties(att, "a never-asked device")
        self.assertStatus(dev.token_update(), 200, "TokenUpdate")

        r = self.vouchd.device(dev.udid)
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.media_type(), "application/json")
        obj = r.json()
        self.assertEqual(DEVICE_KEYS - set(obj), set(), f"missing keys in {obj}")
        self.assertEqual(obj["udid"], dev.udid)
        self.assertEqual(obj["serial_number"], dev.serial)
        self.assertEqual(obj["model"], dev.model)
        self.assertEqual(obj["product_name"], dev.product_name)
        self.assertEqual(obj["os_version"], dev.os_version)
        self.assertEqual(obj["build_version"], dev.build_version)
        self.assertIs(obj["enrolled"], True)
        self.assertRFC3339(obj["last_seen_at"], "last_seen_at")
        self.assertEqual(PUSH_KEYS - set(obj["push"]), set(), obj["push"])
        self.assertEqual(obj["push"]["token_state"], "active")
        att = obj["attestation"]
        self.assertEqual(ATTESTATION_KEYS - set(att), set(), f"attestation keys: {att}")
        # the first TokenUpdate asked for an attestation; nothing has been answered yet
        self.assertEqual(att["status"], "none", att)
        self.assertEqual(att["request"]["state"], "pending", att)
        self.assertEqual(att["request"]["reason"], "enrollment", att)
        self.assertRFC3339(att["request"]["requested_at"], "attestation.request.requested_at")
        for k in ATTESTATION_KEYS - {"status", "properties", "request"}:
            self.assertIsNone(att[k], f"attestation.{k} of a never-attested device")
        self.assertNullProperties(att, "a never-attested device")

        # answered without an attestation: unsupported, and still nothing attested
        self.assertEmpty200(dev.settle_attestation(), "answer to the attestation request")
        att = self.vouchd.device(dev.udid).json()["attestation"]
        self.assertEqual(ATTESTATION_KEYS - set(att), set(), f"attestation keys: {att}")
        self.assertEqual(att["status"], "unsupported")
        self.assertRFC3339(att["requested_at"], "attestation.requested_at")
        self.assertRFC3339(att["received_at"], "attestation.received_at")
        for k in ("freshness", "reason", "generated_at", "expires_at"):
            self.assertIsNone(att[k], f"attestation.{k} of an unsupported device")
        self.assertNullProperties(att, "an unsupported device")

    def test_unknown_udid_404(self):
        r = self.vouchd.device("00000000-0000-0000-0000-00000000DEAD")
        self.assertJsonError(r, 404, "GET unknown device")

    def test_device_list_and_paging(self):
        devs = sorted((self.enrolled_device() for _ in range(3)), key=lambda d: d.udid)
        r = self.vouchd.admin("GET", "/v1/devices?limit=1000")
        self.assertEqual(r.status, 200, r)
        listed = r.json()
        self.assertIsInstance(listed, list)
        udids = [d["udid"] for d in listed]
        self.assertEqual(udids, sorted(udids), "the list is not ordered by udid")
        for d in devs:
            self.assertIn(d.udid, udids)
        for obj in listed:
            self.assertEqual(DEVICE_KEYS - set(obj), set(), obj)
        # paging: walk with limit=1 and after=
        walked, after = [], None
        for _ in range(len(udids) + 2):
            path = "/v1/devices?limit=1" + (f"&after={after}" if after else "")
            page = self.vouchd.admin("GET", path)
            self.assertEqual(page.status, 200, page)
            items = page.json()
            self.assertLessEqual(len(items), 1, f"limit=1 gave {len(items)}")
            if not items:
                break
            walked.append(items[0]["udid"])
            after = items[0]["udid"]
        self.assertEqual(walked, udids, "paging with after= does not walk the whole list")

    def test_device_list_of_udids(self):
        """fields=udid: the same devices, in the same pages and filters, each as {"udid"}."""
        devs = sorted((self.enrolled_device() for _ in range(3)), key=lambda d: d.udid)
        whole = self.vouchd.admin("GET", "/v1/devices?limit=1000").json()
        r = self.vouchd.admin("GET", "/v1/devices?limit=1000&fields=udid")
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.json(), [{"udid": d["udid"]} for d in whole])
        page = self.vouchd.admin("GET", f"/v1/devices?limit=1&after={devs[0].udid}&fields=udid")
        self.assertEqual(page.json(), [{"udid": u} for u in
                                       [d["udid"] for d in whole if d["udid"] > devs[0].udid][:1]])
        none = self.vouchd.admin("GET", "/v1/devices?attestation=verified&fields=udid")
        self.assertEqual(none.json(), [], "no device is verified: the filter holds")
        for bad in ("fields=serial", "fields=", "fields=udid,serial"):
            self.assertJsonError(self.vouchd.admin("GET", f"/v1/devices?{bad}"), 400, bad)


class AdminLoginLimitTest(VouchTestCase):
    """admin_login_limit (default 10): after that many wrong tokens from one address within a
    minute, the address gets 429 with Retry-After for the rest of the minute, right token or
    not; requests without a token are no guesses; other addresses are not affected."""

    def request_from(self, source, token):
        conn = http.client.HTTPConnection(self.vouchd.host, self.vouchd.port, timeout=10,
                                          source_address=(source, 0))
        try:
            conn.request("GET", "/v1/devices",
                         headers={"Authorization": f"Bearer {token}"} if token else {})
            resp = conn.getresponse()
            resp.read()
            return resp.status, resp.getheader("Retry-After")
        finally:
            conn.close()

    def test_wrong_tokens_are_limited_per_address(self):
        attacker, operator = "127.0.0.2", "127.0.0.3"
        right = self.vouchd.admin_token
        for i in range(5):
            self.assertEqual(self.request_from(attacker, None)[0], 401, "no token: no guess")
        for i in range(10):
            self.assertEqual(self.request_from(attacker, f"guess-{i}")[0], 401, f"guess {i}")
        for token in ("guess-10", right):
            status, retry = self.request_from(attacker, token)
            self.assertEqual(status, 429, f"after 10 wrong tokens, with {token!r}")
            self.assertIsNotNone(retry, "429 without Retry-After")
            self.assertTrue(0 < int(retry) <= 60, retry)
        self.assertEqual(self.request_from(operator, right)[0], 200, "another address")
        limited = [line for line in self.vouchd.metrics().text().splitlines()
                   if line.startswith('vouch_rejections_total{reason="admin_rate_limited"}')]
        self.assertEqual(limited, ['vouch_rejections_total{reason="admin_rate_limited"} 2'])


class EnqueueTest(VouchTestCase):

    def test_enqueue_bad_plist(self):
        dev = self.enrolled_device()
        self.assertEmpty200(dev.settle_attestation(), "attestation request answered")
        before = self.vouchd.commands(dev.udid)
        self.assertEqual([(c["command_uuid"], c["status"]) for c in before],
                         [(dev.last_attestation_request["CommandUUID"], "Acknowledged")],
                         "commands of a device whose only command is the attestation request")
        for name, body in [
            ("not a plist", b"this is not a plist"),
            ("truncated plist", plistlib.dumps(command_plist("ProfileList"))[:-20]),
            ("plist array", plistlib.dumps([1, 2, 3])),
            ("no Command", plistlib.dumps({"CommandUUID": str(uuid.uuid4())})),
            ("Command without RequestType",
             plistlib.dumps({"CommandUUID": str(uuid.uuid4()), "Command": {"Foo": 1}})),
            ("Command not a dict", plistlib.dumps({"Command": "ProfileList"})),
            ("empty body", b""),
        ]:
            r = self.vouchd.enqueue(dev.udid, body)
            self.assertEqual(r.status, 400, f"enqueue {name}: {r!r}")
            self.assertIsInstance(r.json().get("error"), str, f"enqueue {name}: {r!r}")
        self.assertEqual(self.vouchd.commands(dev.udid), before, "a bad enqueue queued something")
        self.assertEmpty200(dev.idle())

    def test_enqueue_to_several_udids(self):
        a, b = self.enrolled_device(), self.enrolled_device()
        for d in (a, b):
            self.assertEmpty200(d.settle_attestation(), f"attestation request of {d.udid}")
        ghost = "00000000-0000-0000-0000-0000000000AA"
        cmd = command_plist("ProfileList")
        r = self.vouchd.enqueue([a.udid, b.udid, ghost], cmd)
        self.assertEqual(r.status, 200, r)
        out = r.json()
        self.assertEqual(out["command_uuid"], cmd["CommandUUID"])
        self.assertEqual(out["request_type"], "ProfileList")
        self.assertEqual(out["status"][a.udid], {"queued": True})
        self.assertEqual(out["status"][b.udid], {"queued": True})
        self.assertIs(out["status"][ghost]["queued"], False)
        self.assertIsInstance(out["status"][ghost].get("error"), str)
        for d in (a, b):
            self.assertCommand(d.idle(), cmd["CommandUUID"], f"Idle of {d.udid}")
            self.assertEmpty200(d.report("Acknowledged", cmd["CommandUUID"], ProfileList=[]))
            self.assertEqual(self.command_status(d.udid, cmd["CommandUUID"])[0]["status"],
                             "Acknowledged")

    def test_enqueue_names_each_device_once(self):
        a = self.enrolled_device()
        self.assertEmpty200(a.settle_attestation(), "attestation request")
        ghost = "00000000-0000-0000-0000-0000000000AB"
        cmd = command_plist("ProfileList")
        r = self.vouchd.enqueue([a.udid, ghost, a.udid, ghost], cmd)
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.body.count(a.udid.encode()), 1, f"{a.udid} answered twice: {r!r}")
        self.assertEqual(r.body.count(ghost.encode()), 1, f"{ghost} answered twice: {r!r}")
        self.assertEqual(r.json()["status"][a.udid], {"queued": True})
        self.assertCommand(a.idle(), cmd["CommandUUID"], "Idle")
        self.assertEmpty200(a.report("Acknowledged", cmd["CommandUUID"], ProfileList=[]),
                            "the command was queued once")

    def test_enqueue_only_unknown_udids(self):
        ghost = "00000000-0000-0000-0000-0000000000BB"
        r = self.vouchd.enqueue([ghost], command_plist("ProfileList"))
        self.assertEqual(r.status, 404, r)
        out = r.json()
        self.assertIs(out["status"][ghost]["queued"], False, out)

    def test_enqueue_adds_command_uuid(self):
        dev = self.enrolled_device()
        self.assertEmpty200(dev.settle_attestation(), "attestation request answered")
        r = self.vouchd.enqueue(dev.udid, command_plist("SecurityInfo", command_uuid=None))
        self.assertEqual(r.status, 200, r)
        cu = r.json()["command_uuid"]
        self.assertIsInstance(cu, str)
        self.assertTrue(cu, "empty command_uuid")
        self.assertRegex(cu, UUID_RE, "a generated CommandUUID should be a UUID")
        got = self.assertCommand(dev.idle(), cu, "the device gets the generated CommandUUID")
        self.assertEqual(got["Command"]["RequestType"], "SecurityInfo")
        self.assertEmpty200(dev.report("Acknowledged", cu, SecurityInfo={}))

    def test_enqueue_keeps_command_keys(self):
        dev = self.enrolled_device()
        self.assertEmpty200(dev.settle_attestation(), "attestation request answered")
        payload = b"\x00\x01binary payload\xff"
        cmd = command_plist("InstallProfile", Payload=payload)
        self.enqueue_ok(dev.udid, cmd)
        got = self.assertCommand(dev.idle(), cmd["CommandUUID"])
        self.assertEqual(got["Command"]["Payload"], payload, "command keys changed on the way")
