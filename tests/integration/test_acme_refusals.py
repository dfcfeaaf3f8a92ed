"""Every refusal of vouchd's ACME server (docs/acme.md), one test each: the exact HTTP status and
problem type (application/problem+json), a fresh Replay-Nonce with the error, the state the
order, authorization and challenge are left in, the identity.refused event (for refusals of a
device: attestation, identifier, CSR) with its reason, vouch_acme_refusals_total{reason}, and
that nothing was issued.

The envelope's refusals (nonce, signature, url, account, alg, Content-Type) are counted but are
no identity.refused event: they refuse a request, not a device (docs/acme.md, Operators).
"""

import concurrent.futures
import datetime
import hashlib
import json

from acme_device import att_obj, b64url, cbor, csr_der, jws, jws_parts
from cryptography.hazmat.primitives.asymmetric import ec
from fake_apple import AttestationPKI
from test_acme import PUBLIC_URL, AcmeTestCase
from test_scheduler import db_clock, set_clock


def order_id(order):
    return order["url"].rsplit("/", 1)[1]


class AttestationRefusalTest(AcmeTestCase):
    """The challenge answer: each failure makes the challenge, the authorization and the order
    invalid, answers 400 with the problem, and keeps an identity.refused event."""

    def refused_answer(self, reason, problem_type="badAttestationStatement", attested=True,
                       **answer):
        dev = self.acme_device()
        dev.enroll_profile()
        dev.register()
        order = dev.new_order()
        before = self.refusals()
        r = dev.answer_challenge(order, expect=None, **answer)
        body = self.assertProblem(r, 400, problem_type, dev)
        self.assertIn(reason, body["detail"])
        self.assertCounted(before, self.refusals(), reason)
        event = self.wait_event("identity.refused", reason=reason)
        self.assertEqual(event["order"], order_id(order))
        self.assertEqual(event["client_identifier"], dev.client_id)
        self.assertEqual(event["detail"], body["detail"])
        if attested:  # the leaf was read: what it named is in the event
            self.assertEqual((event["udid"], event["serial_number"]), (dev.udid, dev.serial))
        state = self.assertOrderInvalid(dev, order, problem_type)
        self.assertEqual(state["error"]["detail"], body["detail"])
        # Nothing more can be done with this order.
        r = dev.finalize(order, expect=None)
        self.assertProblem(r, 403, "orderNotReady", dev)
        self.assertNothingIssued(dev)
        return dev, order

    def test_freshness_code_missing(self):
        self.refused_answer("freshness_missing", nonce=None)

    def test_freshness_code_of_another_token(self):
        self.refused_answer("freshness_mismatch",
                            nonce=hashlib.sha256(b"another challenge's token").digest())

    def test_freshness_code_is_the_token_unhashed(self):
        """Apple's freshness for ACME is SHA-256(token), not the token (unlike MDA's nonce)."""
        dev = self.acme_device()
        dev.enroll_profile()
        dev.register()
        order = dev.new_order()
        token = dev.challenge(order)["token"].encode()
        r = dev.answer_challenge(order, expect=None, nonce=token[:32])
        self.assertProblem(r, 400, "badAttestationStatement", dev)
        self.wait_event("identity.refused", reason="freshness_mismatch")
        self.assertOrderInvalid(dev, order, "badAttestationStatement")

    def test_untrusted_chain(self):
        """A chain of another PKI with Apple's names: not to attestation_roots."""
        other = AttestationPKI()
        dev = self.acme_device()
        dev.enroll_profile()
        dev.register()
        order = dev.new_order()
        token = dev.challenge(order)["token"]
        chain = other.chain(nonce=hashlib.sha256(token.encode()).digest(), serial=dev.serial,
                            udid=dev.udid, key=dev.device_key)
        before = self.refusals()
        r = dev.answer_challenge(order, expect=None, chain=chain)
        self.assertProblem(r, 400, "badAttestationStatement", dev)
        self.assertCounted(before, self.refusals(), "untrusted_chain")
        self.wait_event("identity.refused", reason="untrusted_chain", order=order_id(order))
        self.assertOrderInvalid(dev, order, "badAttestationStatement")
        self.assertNothingIssued(dev)

    def test_leaf_signed_by_the_root_directly(self):
        self.refused_answer("untrusted_chain", sign_with_root=True)

    def test_no_attestation(self):
        """A device whose Attest was ignored sends no x5c."""
        self.refused_answer("no_attestation", attested=False,
                            payload={"attObj": b64url(cbor({"fmt": "apple", "attStmt": {}}))})

    def test_device_reported_error(self):
        self.refused_answer("no_attestation", attested=False,
                            payload={"error": "the Secure Enclave is not available"})

    def test_not_apple_format(self):
        dev = self.acme_device()
        dev.enroll_profile()
        dev.register()
        order = dev.new_order()
        chain = dev.attestation_chain(dev.challenge(order)["token"])
        r = dev.answer_challenge(order, expect=None,
                                 payload={"attObj": att_obj(chain, fmt="android-key")})
        self.assertProblem(r, 400, "badAttestationStatement", dev)
        self.wait_event("identity.refused", reason="unsupported_format")
        self.assertOrderInvalid(dev, order, "badAttestationStatement")

    def test_attobj_not_cbor(self):
        self.refused_answer("malformed", attested=False,
                            payload={"attObj": b64url(b"\xff not CBOR at all")})

    def test_serial_and_udid_missing(self):
        """User Enrollment: the leaf names neither serial nor UDID."""
        self.refused_answer("identity_missing", attested=False, serial=None, udid=None)

    def test_attestation_answer_without_attobj_is_malformed(self):
        dev = self.acme_device()
        dev.enroll_profile()
        dev.register()
        order = dev.new_order()
        before = self.refusals()
        r = dev.answer_challenge(order, expect=None, payload={"attestation": "x"})
        self.assertProblem(r, 400, "malformed", dev)
        self.assertCounted(before, self.refusals(), "malformed")
        # The answer was not looked at: the challenge is still there to be answered.
        self.assertEqual(self.order_state(dev, order)["status"], "pending")
        dev.answer_challenge(order)

    def test_csr_key_is_not_the_attested_key(self):
        dev, order = self.ready_order()
        other = ec.generate_private_key(ec.SECP384R1())
        before = self.refusals()
        r = dev.finalize(order, key=other, expect=None)
        body = self.assertProblem(r, 400, "badCSR", dev)
        self.assertCounted(before, self.refusals(), "csr_key_mismatch")
        event = self.wait_event("identity.refused", reason="csr_key_mismatch")
        self.assertEqual(event["order"], order_id(order))
        self.assertEqual(event["client_identifier"], dev.client_id)
        self.assertEqual((event["udid"], event["serial_number"]), (dev.udid, dev.serial))
        state = self.order_state(dev, order)
        self.assertEqual(state["status"], "invalid")
        self.assertEqual(state["error"]["type"], "urn:ietf:params:acme:error:badCSR")
        self.assertEqual(state["error"]["detail"], body["detail"])
        self.assertNotIn("certificate", state)
        # The challenge stays valid (the attestation was good); the order is done for.
        self.assertEqual(self.authz_state(dev, order)["challenges"][0]["status"], "valid")
        r = dev.finalize(order, expect=None)
        self.assertProblem(r, 403, "orderNotReady", dev, "finalize again, with the right key")
        self.assertNothingIssued(dev)

    def test_csr_with_a_bad_signature(self):
        """A CSR whose self-signature does not verify: badCSR, the order stays ready."""
        dev, order = self.ready_order()
        der = bytearray(csr_der(dev.device_key))
        der[-5] ^= 0x01  # inside the signature
        before = self.refusals()
        r = dev.finalize(order, csr=bytes(der), expect=None)
        self.assertProblem(r, 400, "badCSR", dev)
        moved = {k: v - before.get(k, 0) for k, v in self.refusals().items()
                 if v != before.get(k, 0)}
        self.assertIn(moved, ({"csr_bad_signature": 1}, {"csr_malformed": 1}))
        self.assertEqual(self.order_state(dev, order)["status"], "ready")
        dev.download(dev.finalize(order).json())

    def test_finalize_before_the_challenge_is_valid(self):
        dev = self.acme_device()
        dev.enroll_profile()
        dev.register()
        order = dev.new_order()
        before = self.refusals()
        r = dev.finalize(order, expect=None)
        self.assertProblem(r, 403, "orderNotReady", dev)
        self.assertCounted(before, self.refusals(), "order_not_ready")
        # Nothing changed: the order and its challenge are still pending, and go on.
        self.assertEqual(self.order_state(dev, order)["status"], "pending")
        self.assertEqual(self.authz_state(dev, order)["challenges"][0]["status"], "pending")
        self.assertNothingIssued(dev)
        self.assertNoRefusalEvent()
        dev.answer_challenge(order)
        dev.download(dev.finalize(order).json())


class IdentifierRefusalTest(AcmeTestCase):
    """newOrder's identifier: a ClientIdentifier vouchd minted, unexpired and unused."""

    def refused_order(self, dev, value, reason, problem_type="rejectedIdentifier",
                      identifier_type="permanent-identifier", event=True, others=0):
        before = self.refusals()
        orders = self.counters("vouch_acme_total").get("order", 0)
        r = dev.post("/acme/new-order", {"identifiers": [
            {"type": identifier_type, "value": value}]}, expect=None)
        self.assertProblem(r, 400, problem_type, dev)
        self.assertIsNone(r.header("Location"), "no order")
        self.assertCounted(before, self.refusals(), reason)
        self.assertEqual(self.counters("vouch_acme_total").get("order", 0), orders)
        if event:
            found = self.wait_event("identity.refused", reason=reason)
            self.assertEqual(found["client_identifier"], value)
            self.assertIsNone(found["order"])
        else:
            self.assertNoRefusalEvent()
        self.assertNothingIssued(dev, others)

    def test_unknown_client_identifier(self):
        dev = self.acme_device()
        dev.register()
        self.refused_order(dev, "0123456789abcdef0123456789abcdef", "unknown_client_identifier")

    def test_used_client_identifier(self):
        """A second device (another account) ordering with an identifier whose certificate
        was issued."""
        first = self.acme_device()
        first.enroll()
        second = self.acme_device()
        second.register()
        self.refused_order(second, first.client_id, "client_identifier_used", others=1)
        # The first device cannot use it again either (for a second certificate).
        with self.receiver.lock:
            self._events_mark = len(self.receiver.records)
        before = self.refusals()
        r = first.new_order(expect=400)
        self.assertProblem(r, 400, "rejectedIdentifier", first)
        self.assertCounted(before, self.refusals(), "client_identifier_used")
        self.assertEqual(len(self.certs(first.udid)), 1)

    def test_identifier_consumed_by_another_order_before_finalize(self):
        """Two orders for one identifier (the profile was intercepted): whoever finalizes first
        gets the certificate, the other's finalize is refused and its order made invalid."""
        owner = self.acme_device()
        owner.enroll_profile()
        owner.register()
        thief = self.acme_device()
        thief.client_id = owner.client_id
        thief.register()
        owner_order = owner.new_order()
        thief_order = thief.new_order()
        owner.answer_challenge(owner_order)
        thief.answer_challenge(thief_order)
        owner.download(owner.finalize(owner_order).json())
        before = self.refusals()
        r = thief.finalize(thief_order, expect=None)
        self.assertProblem(r, 400, "rejectedIdentifier", thief)
        self.assertCounted(before, self.refusals(), "client_identifier_used")
        event = self.wait_event("identity.refused", reason="client_identifier_used")
        self.assertEqual(event["order"], order_id(thief_order))
        self.assertEqual(event["udid"], thief.udid)
        state = self.order_state(thief, thief_order)
        self.assertEqual(state["status"], "invalid")
        self.assertEqual(state["error"]["type"], "urn:ietf:params:acme:error:rejectedIdentifier")
        self.assertNothingIssued(thief, others=1)
        self.assertEqual(len(self.certs(owner.udid)), 1)

    def test_identifier_of_another_type(self):
        dev = self.acme_device()
        dev.enroll_profile()
        dev.register()
        self.refused_order(dev, "device.example.org", "unsupported_identifier",
                           problem_type="unsupportedIdentifier", identifier_type="dns",
                           event=False)
        self.refused_order(dev, dev.client_id, "unsupported_identifier",
                           problem_type="unsupportedIdentifier",
                           identifier_type="hardware-module", event=False)

    def test_identifier_not_a_client_identifier(self):
        dev = self.acme_device()
        dev.register()
        self.refused_order(dev, "a/b", "malformed", problem_type="malformed", event=False)

    def test_two_identifiers_in_one_order(self):
        dev = self.acme_device()
        dev.enroll_profile()
        dev.register()
        r = dev.post("/acme/new-order", {"identifiers": [
            {"type": "permanent-identifier", "value": dev.client_id},
            {"type": "permanent-identifier", "value": dev.client_id}]}, expect=None)
        self.assertProblem(r, 400, "malformed", dev)


class ExpiryTest(AcmeTestCase):
    """The database's clock moves: an identifier and its orders expire (10 minutes here)."""

    acme_config = {"acme_identifier_lifetime": "10m"}

    def later(self, minutes):
        set_clock(self, db_clock(self) + datetime.timedelta(minutes=minutes))

    def test_expired_client_identifier(self):
        dev = self.acme_device()
        dev.enroll_profile()
        dev.register()
        self.later(11)
        before = self.refusals()
        r = dev.post("/acme/new-order", {"identifiers": [
            {"type": "permanent-identifier", "value": dev.client_id}]}, expect=None)
        self.assertProblem(r, 400, "rejectedIdentifier", dev)
        self.assertCounted(before, self.refusals(), "client_identifier_expired")
        event = self.wait_event("identity.refused", reason="client_identifier_expired")
        self.assertEqual(event["client_identifier"], dev.client_id)
        self.assertNothingIssued(dev)

    def test_order_expires_with_its_identifier(self):
        dev = self.acme_device()
        dev.enroll_profile()
        dev.register()
        order = dev.new_order()
        self.later(11)
        state = self.order_state(dev, order)
        self.assertEqual(state["status"], "invalid")
        self.assertEqual(self.authz_state(dev, order)["status"], "invalid")
        # An answer to the expired challenge is not verified: it answers the state.
        r = dev.answer_challenge(order, expect=200)
        self.assertEqual(r.json()["status"], "invalid")
        r = dev.finalize(order, expect=None)
        self.assertProblem(r, 403, "orderNotReady", dev)
        self.assertNothingIssued(dev)

    def test_ready_order_expires_before_finalize(self):
        dev, order = self.ready_order()
        self.later(11)
        self.assertEqual(self.order_state(dev, order)["status"], "invalid")
        r = dev.finalize(order, expect=None)
        self.assertProblem(r, 403, "orderNotReady", dev)
        self.assertNothingIssued(dev)


class EnvelopeRefusalTest(AcmeTestCase):
    """RFC 8555 §6: the JWS, its nonce, url, signer and the account's ownership."""

    def enrolled_order(self):
        dev = self.acme_device()
        dev.enroll_profile()
        dev.register()
        return dev, dev.new_order()

    def assertRefused(self, dev, r, status, problem_type, reason, before):
        self.assertProblem(r, status, problem_type, dev)
        self.assertCounted(before, self.refusals(), reason)
        self.assertNoRefusalEvent()

    def test_replayed_nonce(self):
        """The very same newOrder JWS twice: the second is badNonce and places no order."""
        dev = self.acme_device()
        dev.enroll_profile()
        dev.register()
        nonce = dev.take_nonce()
        body = jws(dev.account_key, PUBLIC_URL + "/acme/new-order", nonce, {"identifiers": [
            {"type": "permanent-identifier", "value": dev.client_id}]}, kid=dev.account_url)
        dev.post_raw("/acme/new-order", body, expect=201)
        orders = self.counters("vouch_acme_total")["order"]
        before = self.refusals()
        r = dev.post_raw("/acme/new-order", body)
        self.assertRefused(dev, r, 400, "badNonce", "bad_nonce", before)
        self.assertEqual(self.counters("vouch_acme_total")["order"], orders)
        # A replayed challenge answer is refused the same way, before it is looked at.
        order = dev.new_order()
        challenge = dev.challenge(order)
        path = dev.path_of(challenge["url"])
        nonce = dev.take_nonce()
        answer = jws(dev.account_key, challenge["url"], nonce,
                     {"attObj": att_obj(dev.attestation_chain(challenge["token"]))},
                     kid=dev.account_url)
        dev.post_raw(path, answer, expect=200)
        before = self.refusals()
        r = dev.post_raw(path, answer)
        self.assertRefused(dev, r, 400, "badNonce", "bad_nonce", before)

    def test_one_nonce_in_concurrent_requests(self):
        """Eight requests at once with the same nonce: exactly one is served."""
        dev = self.acme_device()
        dev.register()
        nonce = dev.take_nonce()
        body = jws(dev.account_key, dev.account_url, nonce, "", kid=dev.account_url)
        before = self.refusals()
        with concurrent.futures.ThreadPoolExecutor(8) as pool:
            answers = list(pool.map(lambda _: dev.post_raw(dev.path_of(dev.account_url), body),
                                    range(8)))
        self.assertEqual(sorted(r.status for r in answers), [200] + [400] * 7)
        for r in answers:
            if r.status == 400:
                self.assertEqual(r.json()["type"], "urn:ietf:params:acme:error:badNonce")
        self.assertCounted(before, self.refusals(), "bad_nonce", n=7)
        self.assertEqual(len({r.header("Replay-Nonce") for r in answers}), 8, "8 fresh nonces")

    def test_nonce_never_issued(self):
        dev = self.acme_device()
        before = self.refusals()
        r = dev.post("/acme/new-account", {"termsOfServiceAgreed": True}, kid=False,
                     nonce=b64url(b"sixteen bytes!!!"))
        self.assertRefused(dev, r, 400, "badNonce", "bad_nonce", before)
        dev.register()  # with the nonce of the refusal

    def test_signed_by_another_accounts_key(self):
        """kid names this account, the signature is another account's key."""
        dev, order = self.enrolled_order()
        other = self.acme_device()
        other.register()
        before = self.refusals()
        r = dev.post(dev.path_of(order["url"]), "", key=other.account_key)
        self.assertRefused(dev, r, 403, "unauthorized", "bad_signature", before)
        # Its challenge answer, signed so, is not looked at: the challenge stays pending.
        before = self.refusals()
        challenge = dev.challenge(order)
        r = dev.post(dev.path_of(challenge["url"]),
                     {"attObj": att_obj(dev.attestation_chain(challenge["token"]))},
                     key=other.account_key)
        self.assertRefused(dev, r, 403, "unauthorized", "bad_signature", before)
        self.assertEqual(dev.challenge(order)["status"], "pending")

    def test_objects_of_another_account(self):
        """POST-as-GET (and answers) of another account's order, authorization, challenge,
        finalize and certificate: 403 unauthorized; the owner goes on unharmed."""
        dev, order = self.enrolled_order()
        other = self.acme_device()
        other.register()
        challenge = dev.challenge(order)
        for url, payload in ((order["url"], ""), (order["authorizations"][0], ""),
                             (challenge["url"], ""),
                             (challenge["url"], {"attObj": att_obj(
                                 other.attestation_chain(challenge["token"]))}),
                             (order["finalize"], {"csr": b64url(csr_der(other.device_key))})):
            before = self.refusals()
            r = other.post(other.path_of(url), payload)
            self.assertRefused(other, r, 403, "unauthorized", "not_owner", before)
        self.assertEqual(dev.challenge(order)["status"], "pending")
        dev.answer_challenge(order)
        done = dev.finalize(order).json()
        before = self.refusals()
        r = other.post(other.path_of(done["certificate"]), "")
        self.assertRefused(other, r, 403, "unauthorized", "not_owner", before)
        dev.download(done)
        # Another account's own account URL.
        before = self.refusals()
        r = other.post(other.path_of(dev.account_url), "")
        self.assertRefused(other, r, 403, "unauthorized", "not_owner", before)

    def test_wrong_url_in_the_protected_header(self):
        dev, order = self.enrolled_order()
        challenge = dev.challenge(order)
        answer = {"attObj": att_obj(dev.attestation_chain(challenge["token"]))}
        for url in (order["url"],  # another resource of this server
                    f"http://{self.vouchd.host}:{self.vouchd.port}"
                    + dev.path_of(challenge["url"]),  # where it was sent, not public_url
                    challenge["url"] + "/"):
            before = self.refusals()
            r = dev.post(dev.path_of(challenge["url"]), answer, url=url)
            self.assertRefused(dev, r, 403, "unauthorized", "wrong_url", before)
        self.assertEqual(dev.challenge(order)["status"], "pending")
        before = self.refusals()
        r = dev.post("/acme/new-account", {}, kid=False, key=ec.generate_private_key(
            ec.SECP256R1()), url=PUBLIC_URL + "/acme/new-order")
        self.assertRefused(dev, r, 403, "unauthorized", "wrong_url", before)

    def test_kid_of_an_account_that_does_not_exist(self):
        dev = self.acme_device()
        dev.enroll_profile()
        dev.register()
        for kid in (PUBLIC_URL + "/acme/account/NoSuchAccount0000000000",
                    PUBLIC_URL + "/acme/order/NoSuchAccount0000000000",
                    "https://elsewhere.example/acme/account/" + dev.account_url.rsplit("/")[-1]):
            before = self.refusals()
            r = dev.post("/acme/new-order", {"identifiers": [
                {"type": "permanent-identifier", "value": dev.client_id}]}, kid=kid)
            self.assertRefused(dev, r, 400, "accountDoesNotExist", "no_account", before)

    def test_alg_none_and_hmac(self):
        dev = self.acme_device()
        dev.register()
        for alg, signature in (("none", b"\x01"), ("HS256", b"\x01" * 32),
                               ("ES512", b"\x01" * 132), ("RS1", b"\x01" * 256)):
            protected = {"alg": alg, "nonce": dev.take_nonce(),
                         "url": PUBLIC_URL + "/acme/new-order", "kid": dev.account_url}
            before = self.refusals()
            r = dev.post_raw("/acme/new-order", jws_parts(protected, {"identifiers": []},
                                                          signature))
            self.assertRefused(dev, r, 400, "badSignatureAlgorithm", "bad_signature_alg",
                               before)
        # newAccount with alg none and a jwk.
        protected = {"alg": "none", "nonce": dev.take_nonce(),
                     "url": PUBLIC_URL + "/acme/new-account",
                     "jwk": {"kty": "EC", "crv": "P-256", "x": "AA", "y": "AA"}}
        before = self.refusals()
        r = dev.post_raw("/acme/new-account", jws_parts(protected, {}, b"\x01"))
        self.assertRefused(dev, r, 400, "badSignatureAlgorithm", "bad_signature_alg", before)
        # An unsecured JWS as RFC 7515 writes it (alg none, empty signature): refused before
        # its header is read (jws_parse wants a signature first), as malformed.
        protected["nonce"] = dev.take_nonce()
        before = self.refusals()
        r = dev.post_raw("/acme/new-account", jws_parts(protected, {}, b""))
        self.assertRefused(dev, r, 400, "malformed", "malformed", before)

    def test_signature_that_does_not_verify(self):
        dev = self.acme_device()
        before = self.refusals()
        r = dev.post("/acme/new-account", {}, kid=False,
                     sign_key=ec.generate_private_key(ec.SECP256R1()))
        self.assertRefused(dev, r, 403, "unauthorized", "bad_signature", before)

    def test_content_type_must_be_jose_json(self):
        dev = self.acme_device()
        dev.register()
        for content_type in ("application/json", "text/plain", None):
            before = self.refusals()
            r = dev.post(dev.path_of(dev.account_url), "", content_type=content_type)
            self.assertRefused(dev, r, 415, "malformed", "unsupported_media_type", before)

    def test_jwk_where_a_kid_is_wanted(self):
        dev = self.acme_device()
        dev.enroll_profile()
        dev.register()
        before = self.refusals()
        r = dev.post("/acme/new-order", {"identifiers": [
            {"type": "permanent-identifier", "value": dev.client_id}]}, kid=False)
        self.assertRefused(dev, r, 400, "malformed", "malformed", before)
        before = self.refusals()
        r = dev.post("/acme/new-account", {}, kid=dev.account_url)
        self.assertRefused(dev, r, 400, "malformed", "malformed", before)

    def test_not_a_flattened_jws(self):
        dev = self.acme_device()
        for body in (b"{}", b"not json", json.dumps({"payload": "", "signatures": []}).encode()):
            before = self.refusals()
            dev.sent_nonce = None
            r = dev.post_raw("/acme/new-account", body)
            self.assertRefused(dev, r, 400, "malformed", "malformed", before)

    def test_get_of_an_acme_resource(self):
        dev = self.acme_device()
        before = self.refusals()
        r = dev.request("GET", "/acme/new-order")
        self.assertRefused(dev, r, 405, "malformed", "method_not_allowed", before)
        self.assertEqual(r.header("Allow"), "POST")

    def test_unknown_object(self):
        dev = self.acme_device()
        dev.register()
        before = self.refusals()
        r = dev.post("/acme/order/NoSuchOrder000000000000", "")
        self.assertRefused(dev, r, 404, "malformed", "not_found", before)

