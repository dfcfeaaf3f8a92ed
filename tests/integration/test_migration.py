"""NanoMDM's /migration (issue 25) and how a migrated identity is proven.

Migrated plists go as nano2nano sends them (NanoMDM's cmd/nano2nano: PUT of the raw check-in
plist, HTTP Basic nanomdm:KEY, one Authenticate then one TokenUpdate per enrollment). The device
then speaks with its existing identity certificate at NanoMDM's /mdm; its first signed request
binds that certificate provisionally, the scheduler asks for an attestation at once, and only a
verified attestation naming the migrated UDID and serial makes the binding permanent."""

import base64
import json
import os
import plistlib
import signal
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import secrets

from device import cert_sha256, raw_exchange
from fake_apple import AttestationPKI
from harness import VouchTestCase, suite, wait_for
from test_push import PushTestCase

WEBHOOK = "http://127.0.0.1:9/hook"  # nobody listens: events stay in the outbox, countable


def metric(vouchd, sample):
    """The value of one sample of /metrics (0 when absent)."""
    for line in vouchd.metrics().text().splitlines():
        if line.startswith(sample + " "):
            return int(float(line.split()[-1]))
    return 0


def basic(key):
    return "Basic " + base64.b64encode(f"nanomdm:{key}".encode()).decode()


class MigrationCase(VouchTestCase):
    vouchd_config = {"migration": "on", "webhook_url": WEBHOOK, "webhook_secret": "s" * 32,
                     "attestation_rate_limit": "100000", "scheduler_batch": "1000"}

    def migrate(self, body, key=None, method="PUT", headers=None):
        h = {"Authorization": basic(key or self.vouchd.admin_token)}
        h.update(headers or {})
        return self.vouchd.request(method, "/migration", body=body, headers=h)

    def migrate_device(self, dev, what=""):
        """nano2nano's two requests for one enrollment: Authenticate, then TokenUpdate."""
        for msg in (dev.authenticate_message(), dev.token_update_message()):
            r = self.migrate(plistlib.dumps(msg))
            self.assertEqual((r.status, r.body), (200, b""), f"{what} {msg['MessageType']}: {r!r}")

    def rows(self):
        """Every row /migration may write, as text: devices, enrollments, events."""
        return self.psql(
            "SELECT (SELECT string_agg(d::text, E'\\n' ORDER BY udid) FROM devices d),"
            " (SELECT string_agg(e::text, E'\\n' ORDER BY udid) FROM enrollments e),"
            " (SELECT count(*) FROM events), (SELECT count(*) FROM identity_certs)")

    def events(self, udid, topic):
        return int(self.psql(f"SELECT count(*) FROM events WHERE udid = '{udid}' "
                             f"AND topic = '{topic}'").strip())

    def rejections(self, reason):
        return metric(self.vouchd, f'vouch_rejections_total{{reason="{reason}"}}')

    def status(self):
        r = self.vouchd.admin("GET", "/v1/migration")
        self.assertStatus(r, 200, "GET /v1/migration")
        return r.json()


class MigrationRouteTest(MigrationCase):

    def test_migrated_device_object_and_status(self):
        dev = self.new_device()
        before = self.status()["devices"]
        self.migrate_device(dev)
        obj = self.vouchd.device(dev.udid).json()
        ident = obj["identity"]
        self.assertEqual(ident["kind"], "migrated", obj)
        self.assertIs(ident["bound"], False, obj)
        self.assertIs(ident["provisional"], False, obj)
        self.assertIsNone(ident["reason"], obj)
        self.assertIsNone(ident["certificate_sha256"], obj)
        self.assertEqual(obj["serial_number"], dev.serial)
        self.assertEqual(obj["attestation"]["status"], "none")
        self.assertIs(obj["enrolled"], True, "a TokenUpdate enables it (it can be pushed)")
        self.assertEqual(obj["push"]["token_state"], "active", "no push certificate anywhere")
        row = self.psql(f"SELECT topic, encode(push_token, 'hex'), push_magic FROM enrollments "
                        f"WHERE udid = '{dev.udid}'").strip()
        self.assertEqual(row, f"{dev.topic}|{dev.token.hex()}|{dev.push_magic}")
        after = self.status()
        self.assertEqual(after["migration"], "on")
        self.assertEqual(after["devices"]["migrated"], before["migrated"] + 1)
        self.assertEqual(after["devices"]["waiting"], before["waiting"] + 1)
        self.assertEqual(set(after["devices"]), {"migrated", "waiting", "provisional", "bound",
                                                 "attested", "refused"})
        self.assertEqual(self.events(dev.udid, "mdm.Authenticate"), 1)
        self.assertEqual(self.events(dev.udid, "mdm.TokenUpdate"), 1)

    def test_the_same_plists_twice_change_nothing(self):
        dev = self.new_device()
        self.migrate_device(dev)
        rows = self.rows()
        self.migrate_device(dev, "again")
        self.assertEqual(self.rows(), rows, "a second migration of the same plists wrote")
        self.assertEqual(self.events(dev.udid, "mdm.Authenticate"), 1)
        self.assertEqual(self.events(dev.udid, "mdm.TokenUpdate"), 1)

    def test_post_and_bearer(self):
        dev = self.new_device()
        r = self.migrate(plistlib.dumps(dev.authenticate_message()), method="POST")
        self.assertEqual(r.status, 200, r)
        r = self.vouchd.request("PUT", "/migration",
                                body=plistlib.dumps(dev.token_update_message()),
                                headers={"Authorization": f"Bearer {self.vouchd.admin_token}"})
        self.assertEqual(r.status, 200, r)
        self.assertEqual(self.vouchd.device(dev.udid).json()["identity"]["kind"], "migrated")

    def assertRefused(self, r, status, reason, rows, counter, counted_before, what):
        self.assertEqual((r.status, r.text().strip()), (status, reason), f"{what}: {r!r}")
        self.assertEqual(self.rows(), rows, f"{what}: something was written")
        self.assertEqual(self.rejections(counter), counted_before + 1, f"{what}: {counter}")

    def test_each_bad_input_refused_with_nothing_written(self):
        dev = self.new_device()
        auth = dev.authenticate_message()
        cases = [
            ("a TokenUpdate without an Authenticate", plistlib.dumps(dev.token_update_message()),
             409, "no_authenticate"),
            ("another MessageType", plistlib.dumps({"MessageType": "CheckOut", "UDID": dev.udid,
                                                    "Topic": dev.topic}),
             400, "unsupported_message_type"),
            ("SetBootstrapToken (nano2nano sends it)",
             plistlib.dumps({"MessageType": "SetBootstrapToken", "UDID": dev.udid,
                             "BootstrapToken": b"x"}), 400, "unsupported_message_type"),
            ("an unknown MessageType", plistlib.dumps(dict(auth, MessageType="Hello")), 400,
             "unsupported_message_type"),
            ("not a plist", b"{\"MessageType\": \"Authenticate\"}", 400, "malformed"),
            ("a truncated plist", plistlib.dumps(auth)[:-20], 400, "malformed"),
            ("a binary plist", plistlib.dumps(auth, fmt=plistlib.FMT_BINARY), 400,
             "binary_plist"),
            ("a user channel's TokenUpdate",
             plistlib.dumps(dict(dev.token_update_message(), UserID="U-1")), 400,
             "user_channel"),
            ("an empty body", b"", 400, "malformed"),
            ("no UDID", plistlib.dumps({k: v for k, v in auth.items() if k != "UDID"}), 400,
             "missing_field"),
            ("no Topic", plistlib.dumps({k: v for k, v in auth.items() if k != "Topic"}), 400,
             "missing_field"),
            ("a TokenUpdate without Token",
             plistlib.dumps({k: v for k, v in dev.token_update_message().items()
                             if k != "Token"}), 400, "missing_field"),
            ("a UDID of the wrong type", plistlib.dumps(dict(auth, UDID=5)), 400, "bad_field"),
        ]
        for what, body, status, reason in cases:
            rows = self.rows()
            counter = f"migration_{reason}"
            n = self.rejections(counter)
            self.assertRefused(self.migrate(body), status, reason, rows, counter, n, what)
        # Too large: the front's 413 (max_body_bytes), nothing written.
        rows = self.rows()
        big = plistlib.dumps(dict(auth, DeviceName="x" * (2 << 20)))
        v = self.vouchd
        head = (f"PUT /migration HTTP/1.1\r\nHost: {v.host}:{v.port}\r\n"
                f"Authorization: {basic(v.admin_token)}\r\n"
                f"Content-Length: {len(big)}\r\nConnection: close\r\n\r\n").encode()
        status, reply = raw_exchange(v.host, v.port, head + big)
        self.assertEqual(status, 413, reply[:300])
        self.assertEqual(self.rows(), rows)

    def test_already_enrolled_device_is_left_alone(self):
        dev = self.enrolled_device()
        rows = self.rows()
        n = self.rejections("migration_already_enrolled")
        for msg in (dev.authenticate_message(), dev.token_update_message(Token=b"other")):
            r = self.migrate(plistlib.dumps(msg))
            self.assertRefused(r, 409, "already_enrolled", rows, "migration_already_enrolled", n,
                               msg["MessageType"])
            n += 1

    def test_credentials(self):
        body = plistlib.dumps(self.new_device().authenticate_message())
        r = self.vouchd.request("PUT", "/migration", body=body)
        self.assertEqual(r.status, 401, r)
        self.assertEqual(r.header("WWW-Authenticate"), 'Basic realm="nanomdm"')
        r = self.migrate(body, key="wrong" * 8)
        self.assertEqual(r.status, 401, r)
        self.assertEqual(r.header("WWW-Authenticate"), 'Basic realm="nanomdm"')
        # A device's identity alone (its Mdm-Signature) is no way in.
        dev = self.new_device()
        r = dev.send("/migration", plistlib.dumps(dev.authenticate_message()),
                     "application/x-apple-aspen-mdm-checkin")
        self.assertEqual(r.status, 401, r)
        # A read token may look, not migrate.
        r = self.vouchd.admin("POST", "/v1/tokens", body=b'{"name": "reader", "scope": "read"}',
                              content_type="application/json")
        self.assertStatus(r, 201, "a read token")
        reader = r.json()["token"]
        self.assertEqual(self.migrate(body, key=reader).status, 403)
        r = self.vouchd.admin("GET", "/v1/migration", token=reader)
        self.assertStatus(r, 200, "GET /v1/migration with a read token")
        self.assertEqual(self.vouchd.request("GET", "/migration",
                                             headers={"Authorization": basic(
                                                 self.vouchd.admin_token)}).status, 405)
        self.assertEqual(self.vouchd.request("GET", "/v1/migration").status, 401)


IPHONE = dict(model="iPhone15,2", product_name="iPhone15,2", os_version="17.4",
              build_version="21E219")
LEAF = dict(sepos_version="17.4", llb_version="iBoot-10151.101.3",
            software_update_device_id="D73AP")
MDM = "/mdm"  # NanoMDM's one URL, which migrated devices keep using


class MigrationBindingCase(MigrationCase):
    """vouchd trusting a stand-in Apple root: migrated devices prove themselves."""

    @classmethod
    def setUpClass(cls):
        cls.pki = AttestationPKI()
        path = os.path.join(suite().run_dir, f"attestation-roots-{secrets.token_hex(4)}.pem")
        cls.pki.write_roots(path)
        cls.vouchd_config = dict(cls.vouchd_config, attestation_roots=path,
                                 **{"policy.enrolled.require": "enrolled"})
        super().setUpClass()

    def trust(self, policy, subject):
        r = self.vouchd.admin("POST", f"/v1/trust/{policy}", body=json.dumps(subject).encode(),
                              content_type="application/json")
        self.assertStatus(r, 200, f"POST /v1/trust/{policy}")
        return r.json()

    def iphone(self, **kw):
        return self.new_device(**dict(IPHONE, **kw))

    def identity(self, udid):
        r = self.vouchd.device(udid)
        self.assertStatus(r, 200, f"GET /v1/devices/{udid}")
        return r.json()

    def take_request(self, dev, what="", timeout=30):
        """Idles at /mdm until the scheduler's attestation request comes: (uuid, nonce)."""
        found = []

        def fetched():
            r = dev.idle(path=MDM)
            if r.status != 200:
                raise AssertionError(f"{what}: Idle: {r!r}")
            if r.body:
                found.append(dev.check_attestation_request(r, what))
                return True
            return False
        wait_for(fetched, timeout=timeout, interval=0.05, what=f"{what}: the attestation request")
        cmd = found[0]
        return cmd["CommandUUID"], cmd["Command"]["DeviceAttestationNonce"]

    def answer(self, dev, cu, chain, udid=None, serial=None):
        qr = {"UDID": udid or dev.udid, "SerialNumber": serial or dev.serial,
              "OSVersion": dev.os_version, "BuildVersion": dev.build_version,
              "ProductName": dev.product_name, "Model": dev.model,
              "DevicePropertiesAttestation": chain}
        return dev.report("Acknowledged", cu, _opts={"path": MDM}, QueryResponses=qr)

    def prove(self, dev, what=""):
        """The migrated device's first Idle, its attestation request, a right answer."""
        r = dev.idle(path=MDM)
        self.assertEqual(r.status, 200, f"{what}: first Idle: {r!r}")
        cu, nonce = self.take_request(dev, what)
        chain = self.pki.chain(nonce=nonce, serial=dev.serial, udid=dev.udid,
                               os_version=dev.os_version, **LEAF)
        r = self.answer(dev, cu, chain)
        self.assertEqual((r.status, r.body), (200, b""), f"{what}: answer: {r!r}")
        return cu


class MigrationBindingTest(MigrationBindingCase):

    def test_first_request_binds_provisionally_then_attestation_proves(self):
        dev = self.iphone()
        before = self.status()["devices"]
        self.migrate_device(dev)
        r = dev.idle(path=MDM)
        self.assertEqual(r.status, 200, r)
        obj = self.identity(dev.udid)
        self.assertEqual((obj["identity"]["bound"], obj["identity"]["provisional"]),
                         (True, True), obj)
        self.assertEqual(obj["identity"]["certificate_sha256"], cert_sha256(dev.cert).hex())
        self.assertEqual(obj["attestation"]["status"], "none", obj)
        self.assertEqual(self.status()["devices"]["provisional"], before["provisional"] + 1)
        # The trust API does not believe a provisional identity, even where only enrollment
        # is required.
        for policy in ("default", "enrolled"):
            for subject in ({"udid": dev.udid},
                            {"certificate_sha256": cert_sha256(dev.cert).hex()}):
                d = self.trust(policy, subject)
                self.assertEqual(d["decision"], "deny", d)
                self.assertIn("identity_provisional", d["reasons"], d)
        # Another certificate for the UDID meanwhile: 403, as for any bound device.
        other = self.iphone(udid=dev.udid, serial=dev.serial)
        self.assertEqual(other.idle(path=MDM).status, 403)
        cu, nonce = self.take_request(dev, "the migration request")
        reason = self.psql(f"SELECT reason FROM attestation_requests "
                           f"WHERE command_uuid = '{cu}'").strip()
        self.assertEqual(reason, "migration")
        chain = self.pki.chain(nonce=nonce, serial=dev.serial, udid=dev.udid,
                               os_version=dev.os_version, **LEAF)
        r = self.answer(dev, cu, chain)
        self.assertEqual((r.status, r.body), (200, b""), r)
        obj = self.identity(dev.udid)
        self.assertEqual(obj["attestation"]["status"], "verified", obj)
        self.assertEqual((obj["identity"]["kind"], obj["identity"]["bound"],
                          obj["identity"]["provisional"], obj["identity"]["reason"]),
                         ("migrated", True, False, None), obj)
        st = self.status()["devices"]
        self.assertEqual((st["bound"], st["attested"], st["provisional"]),
                         (before["bound"] + 1, before["attested"] + 1, before["provisional"]),
                         st)

    def test_impostor_is_released_and_the_real_device_binds_after_it(self):
        dev = self.iphone()
        refused = self.status()["devices"]["refused"]
        self.migrate_device(dev)
        # Another valid identity certificate claims the UDID first, and can only attest itself.
        impostor = self.iphone(udid=dev.udid)
        self.assertEqual(impostor.idle(path=MDM).status, 200)
        self.assertIs(self.identity(dev.udid)["identity"]["provisional"], True)
        cu, nonce = self.take_request(impostor, "the impostor's request")
        other_udid = "00008110-" + secrets.token_hex(8).upper()
        chain = self.pki.chain(nonce=nonce, serial=impostor.serial, udid=other_udid,
                               os_version=dev.os_version, **LEAF)
        r = self.answer(impostor, cu, chain, udid=other_udid, serial=impostor.serial)
        self.assertEqual(r.status, 200, r)
        obj = self.identity(dev.udid)
        self.assertEqual((obj["identity"]["bound"], obj["identity"]["provisional"],
                          obj["identity"]["reason"], obj["identity"]["certificate_sha256"]),
                         (False, False, "identity_unproven", None), obj)
        self.assertEqual(obj["attestation"]["status"], "none", obj)
        self.assertEqual(self.events(dev.udid, "identity.unproven"), 1)
        self.assertEqual(self.status()["devices"]["refused"], refused + 1)
        # The released certificate never claims this UDID again.
        self.assertEqual(impostor.idle(path=MDM).status, 403)
        self.assertEqual(impostor.token_update(path=MDM).status, 403)
        self.assertEqual(impostor.authenticate(path=MDM).status, 403)
        self.assertEqual(self.identity(dev.udid)["identity"]["bound"], False)
        # The real device binds after it.
        self.prove(dev, "the real device")
        obj = self.identity(dev.udid)
        self.assertEqual((obj["identity"]["bound"], obj["identity"]["provisional"],
                          obj["identity"]["reason"], obj["attestation"]["status"]),
                         (True, False, None, "verified"), obj)
        self.assertEqual(obj["identity"]["certificate_sha256"], cert_sha256(dev.cert).hex())

    def test_trust_denies_a_migrated_device_that_has_not_spoken(self):
        dev = self.iphone()
        self.migrate_device(dev)
        for policy in ("default", "enrolled"):
            d = self.trust(policy, {"udid": dev.udid})
            self.assertEqual(d["decision"], "deny", d)
            self.assertIn("identity_unproven", d["reasons"], d)

    def test_an_authenticate_binds_provisionally_too(self):
        """A migrated device enrolling again (its profile installed anew) is still proven by
        its attestation: the claim's request, reason migration."""
        dev = self.iphone()
        self.migrate_device(dev)
        self.assertEqual(dev.authenticate(path=MDM).status, 200)
        obj = self.identity(dev.udid)
        self.assertEqual((obj["identity"]["kind"], obj["identity"]["bound"],
                          obj["identity"]["provisional"]), ("migrated", True, True), obj)
        self.assertEqual(self.events(dev.udid, "device.reenrolled"), 0)
        # Another certificate meanwhile, even with an Authenticate: refused.
        other = self.iphone(udid=dev.udid)
        self.assertEqual(other.authenticate(path=MDM).status, 403)
        self.assertEqual(dev.token_update(path=MDM).status, 200)
        cu, nonce = self.take_request(dev, "the enrollment's request")
        chain = self.pki.chain(nonce=nonce, serial=dev.serial, udid=dev.udid,
                               os_version=dev.os_version, **LEAF)
        self.assertEqual(self.answer(dev, cu, chain).status, 200)
        obj = self.identity(dev.udid)
        self.assertEqual((obj["identity"]["bound"], obj["identity"]["provisional"],
                          obj["attestation"]["status"]), (True, False, "verified"), obj)

    def test_a_canceled_request_is_asked_again(self):
        dev = self.iphone()
        self.migrate_device(dev)
        self.assertEqual(dev.idle(path=MDM).status, 200)
        first, _ = self.take_request(dev, "the first request")
        r = self.vouchd.admin("DELETE", f"/v1/devices/{dev.udid}/commands/{first}")
        self.assertStatus(r, 200, "cancel the migration request")
        self.assertIs(self.identity(dev.udid)["identity"]["provisional"], True)
        cu, nonce = self.take_request(dev, "asked again")
        self.assertNotEqual(cu, first)
        chain = self.pki.chain(nonce=nonce, serial=dev.serial, udid=dev.udid,
                               os_version=dev.os_version, **LEAF)
        self.assertEqual(self.answer(dev, cu, chain).status, 200)
        self.assertIs(self.identity(dev.udid)["identity"]["provisional"], False)

    def test_a_checked_out_device_is_migrated_afresh(self):
        """A device that checked out of Vouch and enrolled elsewhere comes back by migration:
        unbound, and its old certificate must attest like any other."""
        dev = self.iphone().enroll()
        self.assertEqual(dev.checkout().status, 200)
        self.migrate_device(dev)
        obj = self.identity(dev.udid)
        self.assertEqual((obj["identity"]["kind"], obj["identity"]["bound"], obj["enrolled"]),
                         ("migrated", False, True), obj)
        self.assertEqual(self.events(dev.udid, "mdm.Authenticate"), 2)
        self.prove(dev, "the device back")
        obj = self.identity(dev.udid)
        self.assertEqual((obj["identity"]["bound"], obj["identity"]["provisional"],
                          obj["attestation"]["status"]), (True, False, "verified"), obj)

    def test_silence_releases_never_verified(self):
        dev = self.iphone()
        self.migrate_device(dev)
        self.assertEqual(dev.idle(path=MDM).status, 200)
        cu, _nonce = self.take_request(dev, "the request left unanswered")
        self.psql("UPDATE vouch_clock SET skew = skew + interval '25 hours'; "
                  "NOTIFY vouch_scheduler;")
        try:
            def released():
                return self.identity(dev.udid)["identity"]["reason"] == "identity_unproven"
            wait_for(released, timeout=30, what="the provisional binding released")
        finally:
            self.psql("UPDATE vouch_clock SET skew = interval '0'")
        obj = self.identity(dev.udid)
        self.assertEqual((obj["identity"]["bound"], obj["attestation"]["status"]),
                         (False, "none"), obj)
        # Silence proves nothing, but bans nobody: an iPad back from a weekend in a drawer.
        # Its late answer first claims the UDID again (a new generation) and proves nothing.
        chain = self.pki.chain(nonce=_nonce, serial=dev.serial, udid=dev.udid,
                               os_version=dev.os_version, **LEAF)
        self.assertEqual(self.answer(dev, cu, chain).status, 200)
        obj = self.identity(dev.udid)
        self.assertEqual((obj["identity"]["bound"], obj["identity"]["provisional"]),
                         (True, True), obj)
        self.assertNotEqual(obj["attestation"]["status"], "verified", obj)
        # The new generation's own request, answered, proves it.
        cu2, nonce2 = self.take_request(dev, "the request after the release")
        self.assertNotEqual(cu2, cu)
        chain = self.pki.chain(nonce=nonce2, serial=dev.serial, udid=dev.udid,
                               os_version=dev.os_version, **LEAF)
        self.assertEqual(self.answer(dev, cu2, chain).status, 200)
        obj = self.identity(dev.udid)
        self.assertEqual((obj["identity"]["bound"], obj["identity"]["provisional"],
                          obj["attestation"]["status"]), (True, False, "verified"), obj)

    def test_an_error_answer_releases_without_a_ban(self):
        dev = self.iphone()
        self.migrate_device(dev)
        self.assertEqual(dev.idle(path=MDM).status, 200)
        cu, _nonce = self.take_request(dev, "the request answered with an error")
        r = dev.report("Error", cu, _opts={"path": MDM},
                       ErrorChain=[{"ErrorCode": 12021, "ErrorDomain": "MCMDMErrorDomain"}])
        self.assertEqual(r.status, 200, r)
        obj = self.identity(dev.udid)
        self.assertEqual((obj["identity"]["bound"], obj["identity"]["reason"]),
                         (False, "identity_unproven"), obj)
        self.assertEqual(self.events(dev.udid, "identity.unproven"), 1)
        # Its certificate may claim it again, and prove it.
        self.prove(dev, "after the error")
        obj = self.identity(dev.udid)
        self.assertEqual((obj["identity"]["bound"], obj["identity"]["provisional"],
                          obj["attestation"]["status"]), (True, False, "verified"), obj)

    def test_a_cached_attestation_keeps_it_provisional_until_apple_makes_a_new_one(self):
        """Apple makes one attestation a week: a device attested by its old server within the
        week answers with that one, for another nonce. Proof of nothing, refusal of nothing:
        still provisional, asked again once the week is over."""
        dev = self.iphone()
        self.migrate_device(dev)
        self.assertEqual(dev.idle(path=MDM).status, 200)
        cu, _nonce = self.take_request(dev, "the request answered from Apple's cache")
        chain = self.pki.chain(nonce=secrets.token_bytes(32), serial=dev.serial,
                               udid=dev.udid, os_version=dev.os_version, **LEAF)
        self.assertEqual(self.answer(dev, cu, chain).status, 200)
        obj = self.identity(dev.udid)
        self.assertEqual(obj["attestation"]["status"], "failed", obj)
        self.assertEqual(obj["attestation"]["reason"], "nonce_mismatch", obj)
        self.assertEqual((obj["identity"]["bound"], obj["identity"]["provisional"],
                          obj["identity"]["reason"]), (True, True, None), obj)
        self.assertEqual(self.events(dev.udid, "identity.unproven"), 0)
        due = self.psql(f"SELECT attestation_due_reason, attestation_due_at - vouch_now() "
                        f"> interval '6 days' FROM devices WHERE udid = '{dev.udid}'").strip()
        self.assertEqual(due, "migration|t")
        trust = self.trust("enrolled", {"udid": dev.udid})
        self.assertEqual(trust["decision"], "deny", trust)
        self.assertIn("identity_provisional", trust["reasons"], trust)

    def enrollment(self, udid):
        """(push token hex, PushMagic, enabled, serial) as stored."""
        return tuple(self.psql(
            f"SELECT encode(e.push_token, 'hex'), e.push_magic, e.enabled, d.serial_number "
            f"FROM enrollments e JOIN devices d USING (udid) WHERE udid = '{udid}'"
        ).strip().split("|"))

    def expire_claim(self):
        """Moves the test clock past answer_timeout, until the housekeeping ran."""
        self.psql("UPDATE vouch_clock SET skew = skew + interval '25 hours'; "
                  "NOTIFY vouch_scheduler;")

    def test_a_claimant_changes_nothing_of_the_migrated_record_and_its_claim_ends(self):
        """An impostor's Authenticate binds provisionally but plans nothing, and its serial, its
        TokenUpdate's token and its CheckOut change nothing the real device needs; the claim
        ends at its deadline whatever happened, and the real device proves itself after it."""
        dev = self.iphone()
        self.migrate_device(dev)
        migrated = self.enrollment(dev.udid)
        self.assertEqual(migrated, (dev.token.hex(), dev.push_magic, "t", dev.serial))
        impostor = self.iphone(udid=dev.udid, serial="BOGUS" + secrets.token_hex(4).upper())
        self.assertEqual(impostor.authenticate(path=MDM).status, 200)
        self.assertEqual(impostor.token_update(path=MDM).status, 200)
        obj = self.identity(dev.udid)
        self.assertEqual((obj["identity"]["bound"], obj["identity"]["provisional"]),
                         (True, True), obj)
        self.assertIsNotNone(obj["identity"]["provisional_until"], obj)
        token, magic, enabled, serial = self.enrollment(dev.udid)
        self.assertEqual((serial, enabled), (dev.serial, "t"))  # the migrated serial stays
        self.assertEqual((token, magic), (impostor.token.hex(), impostor.push_magic))
        self.assertEqual(self.events(dev.udid, "mdm.Authenticate"), 1)  # /migration's only
        self.assertEqual(self.events(dev.udid, "mdm.TokenUpdate"), 1)
        self.assertEqual(dev.idle(path=MDM).status, 403)  # while provisional
        try:
            self.expire_claim()
            wait_for(lambda: self.identity(dev.udid)["identity"]["reason"] == "identity_unproven",
                     timeout=30, what="the claim past its deadline released")
        finally:
            self.psql("UPDATE vouch_clock SET skew = interval '0'")
        # /migration's push credentials are back: the real device can be woken.
        self.assertEqual(self.enrollment(dev.udid), migrated)
        # Not banned (it did not attest another device): it may claim again, and is refused
        # again only by its answer. The real device, first this time, proves itself.
        self.prove(dev, "the real device after the impostor's claim ended")
        obj = self.identity(dev.udid)
        self.assertEqual((obj["identity"]["bound"], obj["identity"]["provisional"],
                          obj["attestation"]["status"]), (True, False, "verified"), obj)

    def test_a_provisional_checkout_releases_and_leaves_the_enrollment_on(self):
        dev = self.iphone()
        self.migrate_device(dev)
        migrated = self.enrollment(dev.udid)
        impostor = self.iphone(udid=dev.udid)
        self.assertEqual(impostor.idle(path=MDM).status, 200)
        self.assertEqual(impostor.checkout(path=MDM).status, 200)
        obj = self.identity(dev.udid)
        self.assertEqual((obj["identity"]["bound"], obj["identity"]["reason"], obj["enrolled"]),
                         (False, "identity_unproven", True), obj)
        self.assertEqual(self.enrollment(dev.udid), migrated)
        self.prove(dev, "the real device after the checkout")

    def test_a_device_that_cannot_attest_is_let_re_enroll_by_the_operator(self):
        """It cannot prove a migrated identity: released, its certificate refused. The operator
        lets it re-enroll in person (allow-reenroll): it stops being migrated and its next
        Authenticate, with a new certificate, binds as any enrollment's does."""
        old = dict(model="iPhone9,3", product_name="iPhone9,3", os_version="15.8")
        dev = self.iphone(**old)
        self.migrate_device(dev)
        self.assertEqual(dev.idle(path=MDM).status, 200)
        cu, _ = self.take_request(dev, "an iPhone 7's request")
        r = dev.report("Acknowledged", cu, _opts={"path": MDM},
                       QueryResponses={"UDID": dev.udid, "SerialNumber": dev.serial,
                                       "OSVersion": dev.os_version, "ProductName": "iPhone9,3"})
        self.assertEqual(r.status, 200, r)
        obj = self.identity(dev.udid)
        self.assertEqual((obj["identity"]["bound"], obj["identity"]["reason"]),
                         (False, "identity_unproven"), obj)
        self.assertEqual(dev.idle(path=MDM).status, 403)  # refused for good
        refused = self.status()["devices"]["refused"]
        r = self.vouchd.admin("POST", f"/v1/devices/{dev.udid}/allow-reenroll")
        self.assertStatus(r, 200, "allow-reenroll")
        obj = self.identity(dev.udid)
        self.assertEqual((obj["identity"]["kind"], obj["identity"]["certificate_sha256"]),
                         ("scep", None), obj)
        self.assertEqual(self.status()["devices"]["refused"], refused - 1)
        again = self.iphone(udid=dev.udid, serial=dev.serial, **old)  # a new profile, a new key
        self.assertEqual(again.authenticate(path=MDM).status, 200)
        self.assertEqual(again.token_update(path=MDM).status, 200)
        obj = self.identity(dev.udid)
        self.assertEqual((obj["identity"]["kind"], obj["identity"]["certificate_sha256"],
                          obj["enrolled"]), ("scep", cert_sha256(again.cert).hex(), True), obj)
        self.assertEqual(again.idle(path=MDM).status, 200)

FLEET = 1000
THREADS = 8


def parallel(fn, items):
    """fn(item) for every item on THREADS threads; the results in order (the first exception
    is raised)."""
    with ThreadPoolExecutor(THREADS) as pool:
        return list(pool.map(fn, items))


class MigrationFleetTest(MigrationBindingCase):
    """1,000 devices migrated as nano2nano sends them, each then proven by its attestation."""

    def test_fleet_of_1000_migrated_then_attested(self):
        started = time.monotonic()
        devs = [self.iphone(udid=f"00008110-{i:04d}{secrets.token_hex(6).upper()}")
                for i in range(FLEET)]
        auth = basic(self.vouchd.admin_token)

        def migrate(dev):
            for msg in (dev.authenticate_message(), dev.token_update_message()):
                r = self.vouchd.request("PUT", "/migration", body=plistlib.dumps(msg),
                                        headers={"Authorization": auth})
                if (r.status, r.body) != (200, b""):
                    raise AssertionError(f"{dev.udid} {msg['MessageType']}: {r!r}")
        parallel(migrate, devs)
        st = self.status()["devices"]
        self.assertEqual((st["migrated"], st["waiting"]), (FLEET, FLEET), st)
        migrated_at = time.monotonic()

        # DNS now points here: each device's first request (an Idle at /mdm) binds it
        # provisionally and the scheduler asks every one for an attestation.
        def first_idle(dev):
            r = dev.idle(path=MDM)
            if r.status != 200:
                raise AssertionError(f"{dev.udid}: first Idle: {r!r}")
        parallel(first_idle, devs)
        self.assertEqual(self.status()["devices"]["provisional"], FLEET)
        wait_for(lambda: int(self.psql("SELECT count(*) FROM attestation_requests WHERE "
                                       "answered_at IS NULL AND reason = 'migration'")) == FLEET,
                 timeout=60, what="an attestation request queued for every device")

        def attest(dev):
            r = dev.idle(path=MDM)
            cmd = dev.check_attestation_request(r, f"{dev.udid}: Idle")
            nonce = cmd["Command"]["DeviceAttestationNonce"]
            chain = self.pki.chain(nonce=nonce, serial=dev.serial, udid=dev.udid,
                                   os_version=dev.os_version, **LEAF)
            r = self.answer(dev, cmd["CommandUUID"], chain)
            if (r.status, r.body) != (200, b""):
                raise AssertionError(f"{dev.udid}: answer: {r!r}")
        parallel(attest, devs)
        st = self.status()["devices"]
        self.assertEqual(st, {"migrated": FLEET, "waiting": 0, "provisional": 0, "bound": FLEET,
                              "attested": FLEET, "refused": 0}, st)
        # The scheduler made them, and says so by reason.
        asked = [line for line in self.vouchd.metrics().text().splitlines()
                 if line.startswith('vouch_scheduler_requests_total{reason="migration"}')]
        self.assertEqual(len(asked), 1, asked)
        self.assertGreaterEqual(float(asked[0].split()[-1]), FLEET, asked)
        # Each device object says so, bound to its own certificate.
        rows = self.psql("SELECT e.udid, encode(e.identity_cert_sha256, 'hex'), "
                         "e.identity_provisional, d.attestation_status FROM enrollments e "
                         "JOIN devices d USING (udid)").split()
        got = {r.split("|")[0]: r.split("|")[1:] for r in rows}
        for dev in devs:
            self.assertEqual(got[dev.udid], [cert_sha256(dev.cert).hex(), "f", "verified"],
                             dev.udid)
        for dev in devs[:: FLEET // 10]:
            obj = self.identity(dev.udid)
            self.assertEqual((obj["identity"]["kind"], obj["identity"]["bound"],
                              obj["identity"]["provisional"], obj["attestation"]["status"]),
                             ("migrated", True, False, "verified"), obj)
        print(f"\n[{self.id()}] {FLEET} devices: migrated in "
              f"{migrated_at - started:.1f} s, attested after "
              f"{time.monotonic() - migrated_at:.1f} s more")

    def test_sigkill_in_the_middle_of_a_migration(self):
        devs = [self.new_device(udid=f"KILL-{i:04d}-{secrets.token_hex(4).upper()}")
                for i in range(FLEET)]
        auth = basic(self.vouchd.admin_token)
        acknowledged = {}  # udid -> the MessageTypes that got 200
        lock = threading.Lock()
        killed = threading.Event()

        def migrate(dev):
            for msg in (dev.authenticate_message(), dev.token_update_message()):
                if killed.is_set():
                    return
                try:
                    r = self.vouchd.request("PUT", "/migration", body=plistlib.dumps(msg),
                                            headers={"Authorization": auth}, timeout=10)
                except OSError:
                    return
                if r.status != 200:
                    return
                with lock:
                    acknowledged.setdefault(dev.udid, []).append(msg["MessageType"])

        def killer():
            wait_for(lambda: len(acknowledged) >= FLEET // 3, timeout=60, interval=0.01,
                     what="a third of the fleet migrated")
            self.vouchd.kill()
            killed.set()
        k = threading.Thread(target=killer)
        k.start()
        parallel(migrate, devs)
        k.join()
        self.vouchd.stop()
        self.assertLess(len(acknowledged), FLEET, "vouchd was killed after the whole migration")
        rows = self.psql("SELECT d.udid, e.udid IS NOT NULL, e.migrated_at IS NOT NULL, "
                         "e.topic, coalesce(encode(e.push_token, 'hex'), ''), "
                         "coalesce(e.push_magic, ''), coalesce(e.enabled, false) "
                         "FROM devices d LEFT JOIN enrollments e USING (udid) "
                         "WHERE d.udid LIKE 'KILL-%'").split("\n")
        stored = {r.split("|")[0]: r.split("|")[1:] for r in rows if r}
        by_udid = {d.udid: d for d in devs}
        for udid, fields in stored.items():
            dev = by_udid[udid]
            has_enrollment, migrated, topic, token, magic, enabled = fields
            # None half-written: a device row always has its migrated enrollment, and an
            # enabled one its token.
            self.assertEqual((has_enrollment, migrated, topic), ("t", "t", dev.topic), udid)
            if enabled == "t":
                self.assertEqual((token, magic), (dev.token.hex(), dev.push_magic), udid)
            else:
                self.assertEqual((token, magic), ("", ""), udid)
        for udid, types in acknowledged.items():
            # Every acknowledged device complete.
            self.assertIn(udid, stored, f"{udid} acknowledged but not stored")
            if "TokenUpdate" in types:
                self.assertEqual(stored[udid][5], "t", f"{udid}: TokenUpdate acknowledged")
        print(f"\n[{self.id()}] killed after {len(acknowledged)} acknowledged devices; "
              f"{len(stored)} stored, none half-written")
        # After a restart the same plists again complete the fleet.
        self.vouchd.start()
        parallel(lambda dev: self.migrate_device(dev, dev.udid), devs)
        n = int(self.psql("SELECT count(*) FROM enrollments WHERE udid LIKE 'KILL-%' "
                          "AND enabled AND push_token IS NOT NULL"))
        self.assertEqual(n, FLEET)


class MigrationPushTest(PushTestCase):
    """A migrated device whose topic has no installed push certificate: shown, counted, and its
    pushes counted and logged, never sent under another topic."""
    extra_config = {"migration": "on"}

    migrate = MigrationCase.migrate
    migrate_device = MigrationCase.migrate_device
    status = MigrationCase.status

    def test_no_certificate_for_the_topic(self):
        ours = self.new_device()
        theirs = self.new_device(topic="com.apple.mgmt.External.migrated-elsewhere")
        for dev in (ours, theirs):
            self.migrate_device(dev)
        self.assertEqual(self.push_block(ours)["token_state"], "active")
        self.assertEqual(self.push_block(theirs)["token_state"], "no_certificate")
        topics = self.status()["topics_without_certificate"]
        self.assertEqual(topics, [{"topic": theirs.topic, "devices": 1}])
        before = metric(self.vouchd, 'vouch_pushes_total{outcome="no_certificate"}')
        status, body = self.push_now(ours, theirs)
        self.assertEqual(status, 200, body)
        self.assertIn("push_result", body["status"][ours.udid], body)
        self.assertEqual(body["status"][theirs.udid].get("push_error"), "no_certificate", body)
        self.assertEqual(self.pushes(theirs, answered_only=False), [], "sent under our topic")
        after = metric(self.vouchd, 'vouch_pushes_total{outcome="no_certificate"}')
        self.assertEqual(after, before + 1)
        self.assertIn("no push certificate for its topic", self.vouchd_log_since_test(200))


class MigrationPushReloadTest(PushTestCase):
    """The topic the database knows follows the push certificate: SIGHUP with another one."""
    extra_config = {"migration": "on"}

    migrate_device = MigrationCase.migrate_device
    migrate = MigrationCase.migrate
    status = MigrationCase.status

    def test_sighup_with_the_migrated_topic(self):
        ours = self.new_device()
        theirs = self.new_device(topic="com.apple.mgmt.External." + secrets.token_hex(8))
        for dev in (ours, theirs):
            self.migrate_device(dev)
        self.assertEqual(self.push_block(theirs)["token_state"], "no_certificate")
        # The old server's push certificate comes along (the same files, SIGHUP).
        self.pki.issue_push_cert(topic=theirs.topic).write_pem(self.cert_path, self.key_path)
        self.vouchd.proc.send_signal(signal.SIGHUP)
        wait_for(lambda: self.push_block(theirs)["token_state"] == "active", timeout=30,
                 what="the migrated topic's certificate recorded")
        self.assertEqual(self.push_block(ours)["token_state"], "no_certificate")
        self.assertEqual(self.status()["topics_without_certificate"],
                         [{"topic": ours.topic, "devices": 1}])


class MigrationOffTest(VouchTestCase):
    def test_404_when_off(self):
        body = plistlib.dumps(self.new_device().authenticate_message())
        r = self.vouchd.request("PUT", "/migration", body=body,
                                headers={"Authorization": basic(self.vouchd.admin_token)})
        self.assertEqual(r.status, 404, r)
        r = self.vouchd.admin("GET", "/v1/migration")
        self.assertStatus(r, 200, "GET /v1/migration")
        self.assertEqual(r.json()["migration"], "off")
