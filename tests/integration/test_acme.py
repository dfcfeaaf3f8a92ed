"""vouchd's ACME server (device-attest-01, docs/acme.md) against real PostgreSQL: a device
enrolls with a Secure Enclave key that the stand-in Apple PKI attests, and the certificate it
gets becomes its MDM identity.

This file holds AcmeTestCase (what every ACME test class stands on: vouchd with its ACME CA, a
web-hook receiver for the identity.* events, and the assertions on problems, nonces, counters and
events) and the flow that succeeds; test_acme_refusals.py has a test per refusal,
test_acme_revoke.py revocation and the expected-device flow, test_acme_python.py the flow driven
by Debian's python3-acme.
"""

import concurrent.futures
import datetime
import hashlib
import json
import os
import re
import secrets
import subprocess
import uuid

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID, ObjectIdentifier

from acme_device import AcmeDevice, att_obj, jws, links, pem_certificates
from fake_apple import AttestationPKI
from harness import VOUCHCTL, suite, wait_for
from test_metrics import parse_metrics
from test_push import PushTestCase
from test_webhook import Receiver


PUBLIC_URL = "https://mdm.acme.test"
PROBLEM = "urn:ietf:params:acme:error:"
B64URL = re.compile(r"^[A-Za-z0-9_-]{16,}$")
OID_PERMANENT_IDENTIFIER = ObjectIdentifier("1.3.6.1.5.5.7.8.3")
IDENTITY_TOPICS = "identity.issued, identity.refused, identity.revoked"
EVENT_WAIT_S = 20.0


def make_acme_ca(directory):
    cert, key = os.path.join(directory, "acme-ca.pem"), os.path.join(directory, "acme-ca.key")
    if not os.path.exists(cert):
        subprocess.run([VOUCHCTL, "ca", "init", "--cert", cert, "--key", key],
                       check=True, stdout=subprocess.DEVNULL)
    return cert, key


def sha256_hex(data):
    return hashlib.sha256(data).hexdigest()


def der_of(cert):
    return cert.public_bytes(serialization.Encoding.DER)


class AcmeTestCase(PushTestCase):
    """vouchd with its ACME server on (and a push certificate: the profile needs its topic), and
    a web-hook receiver taking the identity.* events."""

    acme_config = {}  # more configuration keys

    @classmethod
    def setUpClass(cls):
        cls.apple = AttestationPKI()
        run = os.path.join(suite().run_dir, f"acme-{secrets.token_hex(4)}")
        os.makedirs(run)
        roots = os.path.join(run, "attestation-roots.pem")
        cls.apple.write_roots(roots)
        cls.acme_ca_cert, cls.acme_ca_key = make_acme_ca(run)
        with open(cls.acme_ca_cert, "rb") as f:
            cls.acme_ca = x509.load_pem_x509_certificate(f.read())
        cls.receiver = Receiver().start()
        config = dict(attestation_roots=roots, acme_ca_cert=cls.acme_ca_cert,
                      acme_ca_key=cls.acme_ca_key, public_url=PUBLIC_URL,
                      webhook_url=cls.receiver.url, webhook_secret=secrets.token_hex(16),
                      webhook_topics=IDENTITY_TOPICS, webhook_timeout="2s")
        config.update(cls.acme_config)
        cls.extra_config = config
        cls._prober = None
        try:
            super().setUpClass()
        except BaseException:
            cls.receiver.stop()
            raise

    @classmethod
    def tearDownClass(cls):
        try:
            super().tearDownClass()
        finally:
            cls.receiver.stop()

    def setUp(self):
        super().setUp()
        with self.receiver.lock:
            self._events_mark = len(self.receiver.records)
        newest = self.listed_events()
        self._event_id_mark = newest[0]["id"] if newest else 0

    def acme_device(self, **kw):
        udid = kw.pop("udid", str(uuid.uuid4()).upper())
        serial = kw.pop("serial", ("F" + secrets.token_hex(6).upper())[:12])
        return AcmeDevice(self.vouchd, self.apple, udid, serial, public_url=PUBLIC_URL, **kw)

    def ready_order(self, dev=None):
        """A device with a profile, an account and an order whose challenge is valid."""
        dev = dev or self.acme_device()
        dev.enroll_profile()
        dev.register()
        order = dev.new_order()
        dev.answer_challenge(order)
        return dev, order

    # -- reading the server back ------------------------------------------------------------
    def order_state(self, dev, order):
        return dev.post(dev.path_of(order["url"]), "", expect=200).json()

    def authz_state(self, dev, order):
        return dev.post(dev.path_of(order["authorizations"][0]), "", expect=200).json()

    def certs(self, udid=None):
        r = self.vouchd.admin("GET", "/v1/certs" + (f"?udid={udid}" if udid else ""))
        self.assertStatus(r, 200, "GET /v1/certs")
        return r.json()

    def counters(self, family):
        """{label value: count} of a one-label counter family in /metrics."""
        r = self.vouchd.metrics()
        self.assertStatus(r, 200, "GET /metrics")
        samples, _types = parse_metrics(r.body.decode())
        out = {}
        for key, value in samples.items():
            m = re.match(rf'^{family}\{{\w+="([^"]*)"\}}$', key)
            if m:
                out[m.group(1)] = value
        return out

    def refusals(self):
        return self.counters("vouch_acme_refusals_total")

    def assertCounted(self, before, after, label, n=1, what="vouch_acme_refusals_total"):
        """Exactly this label moved, by n; no other."""
        moved = {k: after.get(k, 0) - before.get(k, 0) for k in set(before) | set(after)}
        moved = {k: v for k, v in moved.items() if v}
        self.assertEqual(moved, {label: n} if n else {}, f"{what} moved")

    # -- problems ---------------------------------------------------------------------------
    def prober(self):
        """An account of this class that proves a nonce usable (and nothing else)."""
        cls = type(self)
        if cls._prober is None:
            cls._prober = self.acme_device()
            cls._prober.register()
        return cls._prober

    def assertFreshNonce(self, r, dev, what=""):
        """r carries a Replay-Nonce that is new (not the one dev sent) and unused: spending it on
        a POST-as-GET of another account works."""
        nonce = r.header("Replay-Nonce")
        self.assertIsNotNone(nonce, f"{what}: no Replay-Nonce in {r!r}")
        self.assertRegex(nonce, B64URL, f"{what}: Replay-Nonce is not base64url")
        self.assertNotEqual(nonce, dev.sent_nonce, f"{what}: the nonce sent came back")
        self.assertEqual(r.header("Cache-Control"), "no-store", what)
        prober = self.prober()
        prober.post(prober.path_of(prober.account_url), "", nonce=nonce, expect=200)
        if dev.nonce == nonce:
            dev.nonce = None  # spent by the prober: dev takes a new one

    def assertProblem(self, r, status, problem_type, dev, what=""):
        """An RFC 8555 problem document with this status and type, and a fresh nonce."""
        what = what or problem_type
        self.assertStatus(r, status, what)
        self.assertEqual(r.media_type(), "application/problem+json", f"{what}: {r!r}")
        body = r.json()
        self.assertEqual(body.get("type"), PROBLEM + problem_type, f"{what}: {body}")
        self.assertIsInstance(body.get("detail"), str, what)
        self.assertEqual(body.get("status"), status, what)
        self.assertIn(f'<{PUBLIC_URL}/acme/directory>;rel="index"', links(r), what)
        self.assertFreshNonce(r, dev, what)
        return body

    # -- events -----------------------------------------------------------------------------
    def listed_events(self, topic=None):
        """GET /v1/events (newest first): the deliveries, stored with their event in the
        transaction that emits it; only those of this test when it has begun."""
        r = self.vouchd.admin("GET", "/v1/events?limit=500")
        self.assertStatus(r, 200, "GET /v1/events")
        mark = getattr(self, "_event_id_mark", 0)
        return [x for x in r.json()
                if x["id"] > mark and (topic is None or x["topic"] == topic)]

    def events_of_test(self, topic):
        """The events of this topic delivered since this test began."""
        with self.receiver.lock:
            records = list(self.receiver.records[self._events_mark:])
        out = []
        for _headers, body, status in records:
            event = json.loads(body)
            if 200 <= status < 300 and event.get("topic") == topic:
                out.append(event)
        return out

    def wait_event(self, topic, **fields):
        """The one event of this topic (delivered since the test began) with these fields; it is
        also in GET /v1/events, delivered."""
        def matching():
            return [e for e in self.events_of_test(topic)
                    if all(e.get(k) == v for k, v in fields.items())]
        wait_for(lambda: matching(), EVENT_WAIT_S, interval=0.1,
                 what=f"a {topic} event with {fields}")
        found = matching()
        self.assertEqual(len(found), 1, f"{topic} events with {fields}: {found}")
        event = found[0]
        def listed():
            r = self.vouchd.admin("GET", "/v1/events?limit=200")
            self.assertStatus(r, 200, "GET /v1/events")
            return [(x["topic"], x["status"]) for x in r.json()
                    if x["event_id"] == event["event_id"]]
        # The receiver has it; vouchd notes the delivery once the answer is in.
        wait_for(lambda: listed() == [(topic, "delivered")], EVENT_WAIT_S, interval=0.1,
                 what=f"GET /v1/events: {event['event_id']} delivered")
        return event

    def assertNothingIssued(self, dev, others=0):
        """No certificate for dev; no identity.issued event in this test but the others the
        test issued on purpose (to other devices)."""
        self.assertEqual(self.certs(dev.udid), [], "GET /v1/certs?udid=: nothing issued")
        self.assertEqual(len(self.listed_events("identity.issued")), others,
                         "identity.issued events")

    def assertNoRefusalEvent(self):
        """An envelope refusal (nonce, signature, url, account) is counted, not an event."""
        self.assertEqual(self.listed_events("identity.refused"), [], "identity.refused events")

    def assertOrderInvalid(self, dev, order, problem_type):
        """The order, its authorization and its challenge are invalid, saying why."""
        state = self.order_state(dev, order)
        self.assertEqual(state["status"], "invalid", state)
        self.assertEqual(state["error"]["type"], PROBLEM + problem_type, state)
        self.assertNotIn("certificate", state)
        authz = self.authz_state(dev, order)
        self.assertEqual(authz["status"], "invalid", authz)
        challenge = authz["challenges"][0]
        self.assertEqual(challenge["status"], "invalid", challenge)
        self.assertEqual(challenge["error"]["type"], PROBLEM + problem_type, challenge)
        return state


class AcmeFlowTest(AcmeTestCase):
    acme_config = {"acme_cert_lifetime": "30d", "organization": "Vouch ACME Tests"}

    def test_whole_flow_issues_a_certificate_for_the_attested_key(self):
        """Every step's status, headers and document, as RFC 8555 and docs/acme.md give them."""
        r = self.vouchd.request("GET", "/acme/directory")
        self.assertStatus(r, 200, "directory")
        directory = r.json()
        for name, path in (("newNonce", "new-nonce"), ("newAccount", "new-account"),
                           ("newOrder", "new-order"), ("revokeCert", "revoke-cert")):
            self.assertEqual(directory[name], f"{PUBLIC_URL}/acme/{path}", name)
        self.assertIs(directory["meta"]["externalAccountRequired"], False)

        dev = self.acme_device()
        for method, status in (("HEAD", 200), ("GET", 204)):
            r = dev.request(method, "/acme/new-nonce")
            self.assertStatus(r, status, f"{method} new-nonce")
            self.assertRegex(r.header("Replay-Nonce", ""), B64URL)
            self.assertEqual(r.header("Cache-Control"), "no-store")

        dev.enroll_profile()
        self.assertRegex(dev.client_id, r"^[0-9a-f]{32}$", "a minted ClientIdentifier")
        self.assertEqual(dev.acme_payload["DirectoryURL"], f"{PUBLIC_URL}/acme/directory")
        r = dev.register()
        self.assertRegex(r.header("Location"), rf"^{PUBLIC_URL}/acme/account/[A-Za-z0-9_-]+$")
        self.assertEqual(r.json()["status"], "valid")
        before = self.counters("vouch_acme_total")

        r = dev.post("/acme/new-order", {"identifiers": [
            {"type": "permanent-identifier", "value": dev.client_id}]}, expect=201)
        order = r.json()
        order["url"] = r.header("Location")
        self.assertRegex(order["url"], rf"^{PUBLIC_URL}/acme/order/[A-Za-z0-9_-]+$")
        self.assertEqual(order["status"], "pending")
        self.assertEqual(order["identifiers"],
                         [{"type": "permanent-identifier", "value": dev.client_id}])
        self.assertRFC3339(order["expires"], "order expires")
        self.assertEqual(len(order["authorizations"]), 1)

        authz = dev.authorization(order)
        self.assertEqual(authz["status"], "pending")
        self.assertEqual(authz["identifier"], order["identifiers"][0])
        [challenge] = authz["challenges"]
        self.assertEqual(challenge["type"], "device-attest-01")
        self.assertEqual(challenge["status"], "pending")
        self.assertRegex(challenge["token"], r"^[A-Za-z0-9_-]{43,}$", "256-bit token, no '='")

        r = dev.answer_challenge(order)
        self.assertIn(f'<{order["authorizations"][0]}>;rel="up"', links(r))
        self.assertIn(f'<{PUBLIC_URL}/acme/directory>;rel="index"', links(r))
        answered = r.json()
        self.assertEqual(answered["url"], challenge["url"])
        self.assertEqual(answered["status"], "valid")
        self.assertRFC3339(answered["validated"], "validated")
        self.assertEqual(self.order_state(dev, order)["status"], "ready")
        self.assertEqual(self.authz_state(dev, order)["status"], "valid")

        r = dev.finalize(order)
        done = r.json()
        self.assertEqual(done["status"], "valid")
        self.assertRegex(done["certificate"], rf"^{PUBLIC_URL}/acme/cert/[0-9a-f]+$")
        r = dev.download(done)
        self.assertEqual(r.media_type(), "application/pem-certificate-chain")
        chain = pem_certificates(r.body)
        self.assertEqual(len(chain), 2)
        self.assertEqual(chain[0].public_key().public_numbers(),
                         dev.device_key.public_key().public_numbers())
        self.assertEqual(der_of(chain[1]), der_of(self.acme_ca))
        after = self.counters("vouch_acme_total")
        moved = {k: v - before.get(k, 0) for k, v in after.items() if v != before.get(k, 0)}
        self.assertEqual(moved, {"order": 1, "challenge_valid": 1, "issued": 1},
                         "vouch_acme_total")

    def test_certificate_content(self):
        """Subject CN = attested UDID, serialNumber = attested serial, O = organization; SAN
        permanent-identifier = UDID; EKU clientAuth; keyUsage digitalSignature; CA:FALSE;
        acme_cert_lifetime (30 days here) from 5 minutes back; signed by the ACME CA."""
        dev = self.acme_device()
        chain = pem_certificates(dev.enroll())
        leaf = chain[0]
        subject = leaf.subject
        self.assertEqual([a.value for a in subject.get_attributes_for_oid(NameOID.COMMON_NAME)],
                         [dev.udid])
        self.assertEqual([a.value for a in
                          subject.get_attributes_for_oid(NameOID.SERIAL_NUMBER)], [dev.serial])
        self.assertEqual([a.value for a in
                          subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)],
                         ["Vouch ACME Tests"])
        self.assertEqual(leaf.issuer, self.acme_ca.subject)

        san = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName)
        self.assertFalse(san.critical)
        [other] = san.value
        self.assertIsInstance(other, x509.OtherName)
        self.assertEqual(other.type_id, OID_PERMANENT_IDENTIFIER)
        udid = dev.udid.encode()
        # PermanentIdentifier ::= SEQUENCE { identifierValue UTF8String } (RFC 4043)
        self.assertEqual(other.value, bytes([0x30, len(udid) + 2, 0x0C, len(udid)]) + udid)

        eku = leaf.extensions.get_extension_for_class(x509.ExtendedKeyUsage)
        self.assertEqual(list(eku.value), [ExtendedKeyUsageOID.CLIENT_AUTH])
        ku = leaf.extensions.get_extension_for_class(x509.KeyUsage)
        self.assertTrue(ku.critical)
        self.assertTrue(ku.value.digital_signature)
        self.assertFalse(ku.value.key_cert_sign)
        bc = leaf.extensions.get_extension_for_class(x509.BasicConstraints)
        self.assertTrue(bc.critical)
        self.assertFalse(bc.value.ca)
        leaf.extensions.get_extension_for_class(x509.SubjectKeyIdentifier)
        aki = leaf.extensions.get_extension_for_class(x509.AuthorityKeyIdentifier)
        self.assertEqual(aki.value.key_identifier, x509.SubjectKeyIdentifier.from_public_key(
            self.acme_ca.public_key()).digest)
        self.assertGreaterEqual(leaf.serial_number.bit_length(), 100, "a random 128-bit serial")

        lifetime = leaf.not_valid_after - leaf.not_valid_before
        self.assertEqual(lifetime, datetime.timedelta(days=30, minutes=5))
        now = datetime.datetime.utcnow()
        self.assertLess(abs(leaf.not_valid_before + datetime.timedelta(minutes=5) - now),
                        datetime.timedelta(minutes=2))

        # Chains to the ACME CA: its key signed the leaf.
        self.assertEqual(der_of(chain[1]), der_of(self.acme_ca))
        self.acme_ca.public_key().verify(leaf.signature, leaf.tbs_certificate_bytes,
                                         ec.ECDSA(leaf.signature_hash_algorithm))
        self.assertIsInstance(leaf.signature_hash_algorithm, hashes.SHA384)

    def test_identity_issued_event_and_certificate_listing(self):
        dev = self.acme_device()
        dev.enroll()
        der = der_of(dev.certificate)
        serial_hex = format(dev.certificate.serial_number, "x")
        event = self.wait_event("identity.issued", udid=dev.udid)
        self.assertEqual(event["serial_number"], dev.serial)
        self.assertEqual(int(event["certificate_serial"], 16), dev.certificate.serial_number)
        self.assertEqual(event["certificate_sha256"], sha256_hex(der))
        self.assertEqual(event["not_after"],
                         dev.certificate.not_valid_after.strftime("%Y-%m-%dT%H:%M:%SZ"))
        self.assertEqual(event["client_identifier"], dev.client_id)
        self.assertIsNone(event["expected_serial"])
        self.assertIsInstance(event["order"], str)
        self.assertRFC3339(event["created_at"], "created_at")

        [cert] = self.certs(dev.udid)
        self.assertEqual(cert["serial"].lstrip("0"), serial_hex)
        self.assertEqual(cert["sha256"], sha256_hex(der))
        self.assertEqual(cert["serial_number"], dev.serial)
        self.assertEqual(cert["client_identifier"], dev.client_id)
        self.assertEqual(cert["order"], event["order"])
        self.assertIsNone(cert["revoked_at"])
        self.assertIs(cert["bound"], False, "no Authenticate yet")
        self.assertEqual(cert["attestation"]["leaf_sha256"],
                         sha256_hex(dev.last_attestation_chain[0]))
        self.assertIn(cert["serial"], [c["serial"] for c in self.certs()])

    def test_issued_certificate_is_the_mdm_identity(self):
        """Authenticate with the issued certificate: identity acme-attested, and the ACME
        attestation joins the device's history (source acme)."""
        acme = self.acme_device()
        acme.enroll()
        dev = self.new_device(udid=acme.udid, serial=acme.serial)
        dev.key, dev.cert = acme.device_key, acme.certificate
        dev.enroll()
        r = self.vouchd.device(acme.udid)
        self.assertStatus(r, 200, "GET device")
        identity = r.json()["identity"]
        self.assertEqual(identity["kind"], "acme-attested")
        self.assertIs(identity["hardware_bound"], True)
        self.assertEqual(identity["certificate_sha256"], sha256_hex(der_of(acme.certificate)))
        self.assertEqual(int(identity["certificate_serial"], 16), acme.certificate.serial_number)
        self.assertIs(identity["revoked"], False)
        self.assertRFC3339(identity["not_after"], "not_after")
        hist = self.vouchd.admin("GET", f"/v1/devices/{acme.udid}/attestations").json()
        [entry] = [h for h in hist if h["source"] == "acme"]
        self.assertRegex(entry["command_uuid"], r"^acme:[A-Za-z0-9_-]+$")
        self.assertEqual(entry["request_reason"], "acme_enrollment")
        self.assertEqual(entry["status"], "verified")
        self.assertEqual(entry["freshness"], "fresh")
        self.assertEqual(entry["leaf_sha256"], sha256_hex(acme.last_attestation_chain[0]))
        self.assertEqual(entry["checked"]["client_identifier"], acme.client_id)
        [cert] = self.certs(acme.udid)
        self.assertIs(cert["bound"], True)

    def test_certificate_speaks_only_for_the_attested_udid(self):
        acme = self.acme_device()
        acme.enroll()
        other = self.new_device()
        other.key, other.cert = acme.device_key, acme.certificate
        r = other.authenticate()
        self.assertStatus(r, 403, "Authenticate with another device's attested identity")
        self.assertIn(b"identity_mismatch", r.body)
        event = self.wait_event("identity.refused", reason="identity_mismatch")
        self.assertEqual(event["udid"], other.udid)
        self.assertEqual(event["attested_udid"], acme.udid)

    def test_repeated_challenge_post_returns_the_settled_challenge(self):
        """A second answer to a valid challenge is not verified again: it answers the
        challenge as it is (even with a different, worse attestation)."""
        dev, order = self.ready_order()
        first = self.authz_state(dev, order)["challenges"][0]
        before = self.counters("vouch_acme_total")
        refused = self.refusals()
        r = dev.answer_challenge(order, nonce=b"\0" * 32)  # wrong freshness: not looked at
        again = r.json()
        self.assertEqual(again, first)
        self.assertEqual(again["status"], "valid")
        self.assertIn(f'<{order["authorizations"][0]}>;rel="up"', links(r))
        self.assertEqual(self.counters("vouch_acme_total"), before, "nothing verified again")
        self.assertEqual(self.refusals(), refused)
        self.assertEqual(self.order_state(dev, order)["status"], "ready")
        dev.finalize(order)

    def test_concurrent_answers_are_verified_once(self):
        """Six answers to one challenge at once: one is verified (the claim pending ->
        processing), every answer is 200 with the challenge as it is then."""
        dev = self.acme_device()
        dev.enroll_profile()
        dev.register()
        order = dev.new_order()
        challenge = dev.challenge(order)
        payload = {"attObj": att_obj(dev.attestation_chain(challenge["token"]))}
        bodies = []
        for _ in range(6):
            nonce = dev.fresh_nonce()
            bodies.append(jws(dev.account_key, challenge["url"], nonce, payload,
                              kid=dev.account_url))
        before = self.counters("vouch_acme_total")
        with concurrent.futures.ThreadPoolExecutor(len(bodies)) as pool:
            answers = list(pool.map(
                lambda body: dev.post_raw(dev.path_of(challenge["url"]), body), bodies))
        self.assertEqual([r.status for r in answers], [200] * len(bodies),
                         [r.body[:200] for r in answers])
        self.assertLessEqual({r.json()["status"] for r in answers}, {"processing", "valid"})
        after = self.counters("vouch_acme_total")
        self.assertEqual(after["challenge_valid"] - before.get("challenge_valid", 0), 1)
        self.assertEqual(self.authz_state(dev, order)["challenges"][0]["status"], "valid")
        dev.download(dev.finalize(order).json())

    def test_new_account_with_a_known_key_answers_the_same_account(self):
        dev = self.acme_device()
        first = dev.register(expect=201)
        r = dev.post("/acme/new-account", {"termsOfServiceAgreed": True}, kid=False,
                     expect=200)
        self.assertEqual(r.header("Location"), first.header("Location"))
        self.assertEqual(r.json()["status"], "valid")
        r = dev.post("/acme/new-account", {"onlyReturnExisting": True}, kid=False, expect=200)
        self.assertEqual(r.header("Location"), first.header("Location"))
        # POST-as-GET of its own account.
        r = dev.post(dev.path_of(dev.account_url), "", expect=200)
        self.assertEqual(r.json(), {"status": "valid"})
        self.assertEqual(r.header("Location"), first.header("Location"))

    def test_account_contact_is_kept(self):
        dev = self.acme_device()
        contact = ["mailto:fleet@example.org"]
        r = dev.post("/acme/new-account", {"termsOfServiceAgreed": True, "contact": contact},
                     kid=False, expect=201)
        self.assertEqual(r.json(), {"status": "valid", "contact": contact})
        dev.account_url = r.header("Location")
        r = dev.post(dev.path_of(dev.account_url), "", expect=200)
        self.assertEqual(r.json(), {"status": "valid", "contact": contact})

    def test_only_return_existing_for_an_unknown_key(self):
        dev = self.acme_device()
        before = self.refusals()
        r = dev.post("/acme/new-account", {"onlyReturnExisting": True}, kid=False)
        self.assertProblem(r, 400, "accountDoesNotExist", dev)
        self.assertIsNone(r.header("Location"))
        self.assertCounted(before, self.refusals(), "no_account")
        dev.register(expect=201)  # nothing was made: the key is new still

    def test_identifier_retry_after_a_failed_attempt(self):
        """The ClientIdentifier is consumed at issuance, not at newOrder: a device whose first
        order failed orders again with the same profile and gets its certificate."""
        dev = self.acme_device()
        dev.enroll_profile()
        dev.register()
        first = dev.new_order()
        dev.answer_challenge(first, expect=400, nonce=None)  # no freshness code
        second = dev.new_order()
        self.assertNotEqual(second["url"], first["url"])
        dev.answer_challenge(second)
        dev.download(dev.finalize(second).json())
        self.assertEqual(len(self.certs(dev.udid)), 1)
