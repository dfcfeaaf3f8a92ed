"""Device identity: the Mdm-Signature must verify over the exact body, chain to identity_ca, and
carry the certificate bound to the UDID the message claims.

An enrollment's first TokenUpdate queues an attestation request ahead of everything else; a
refused message must leave it alone (still pending, still first in the queue)."""

import base64
import os
import plistlib

from cryptography.hazmat.primitives import serialization

from device import mdm_signature
from harness import VouchTestCase, command_plist


class CertificateBindingTest(VouchTestCase):

    def test_other_devices_cert_claiming_udid_a(self):
        a, b = self.enrolled_device(), self.enrolled_device()
        a_request = self.queued_attestation_request(a.udid, "A after enrollment")
        c = command_plist("ProfileList")
        self.enqueue_ok(a.udid, c)
        for name, r in [
            ("Authenticate for A signed by B", a.authenticate(signer=b.identity)),
            ("TokenUpdate for A signed by B", a.token_update(signer=b.identity)),
            ("Idle for A signed by B", a.idle(signer=b.identity)),
            ("Acknowledged for A signed by B",
             a.report("Acknowledged", c["CommandUUID"], _opts={"signer": b.identity})),
            ("CheckOut for A signed by B", a.checkout(signer=b.identity)),
            ("answer to A's attestation request signed by B",
             a.report("Acknowledged", a_request, _opts={"signer": b.identity},
                      QueryResponses={"UDID": a.udid, "SerialNumber": a.serial})),
        ]:
            self.assertDeviceRefusal(r, name)
        # B answering A's attestation request as itself does not answer A's request
        r = b.report("Acknowledged", a_request, QueryResponses={"UDID": b.udid})
        self.assertNotEqual(r.status, 401, f"B answers A's attestation request: {r!r}")
        self.assertLess(r.status, 500, f"B answers A's attestation request: {r!r}")
        # A is untouched: still enrolled, its attestation request still pending (the refused
        # Authenticate did not cancel it), its commands still queued and handed to A only.
        self.assertTrue(self.vouchd.device(a.udid).json()["enrolled"])
        self.assertIsNotNone(self.attestation_of(a.udid)["request"])
        self.assertEqual(self.command_status(a.udid, a_request)[0]["status"], "queued")
        self.assertEqual(self.command_status(a.udid, c["CommandUUID"])[0]["status"], "queued")
        self.assertCommand(a.settle_attestation(), c["CommandUUID"],
                           "A's own Idle: its attestation request, then its command")
        self.assertEqual(a.last_attestation_request["CommandUUID"], a_request)
        self.assertEmpty200(b.settle_attestation(), "B's own Idle: B's own attestation request")
        self.assertNotEqual(b.last_attestation_request["CommandUUID"], a_request)

    def test_bound_cert_cannot_authenticate_another_udid(self):
        a = self.enrolled_device()
        c = self.new_device()
        r = c.authenticate(signer=a.identity)
        self.assertDeviceRefusal(r, "Authenticate for C with the cert bound to A")
        self.assertStatus(self.vouchd.device(c.udid), 404, "C must not exist after a refused "
                                                           "Authenticate")
        self.assertDeviceRefusal(c.token_update(signer=a.identity), "TokenUpdate for C, A's cert")
        self.assertEmpty200(a.settle_attestation(), "A keeps working")
        self.assertEmpty200(a.idle(), "A keeps working")

    def test_unbound_cert_for_enrolled_udid(self):
        """A valid cert from the trusted CA, never used in an Authenticate, is not A's."""
        a = self.enrolled_device()
        stranger = self.new_device()
        self.assertDeviceRefusal(a.idle(signer=stranger.identity), "Idle for A, unbound cert")
        self.assertDeviceRefusal(a.token_update(signer=stranger.identity),
                                 "TokenUpdate for A, unbound cert")

    def test_reauthenticate_rebinds(self):
        a = self.enrolled_device()
        first = self.queued_attestation_request(a.udid, "after enrollment")
        old = a.new_identity()
        self.assertEmpty200(a.authenticate(), "re-Authenticate of A with a new cert")
        self.assertEmpty200(a.token_update(), "TokenUpdate with the new cert")
        self.assertEmpty200(a.settle_attestation(), "Idle with the new cert: the re-enrollment's "
                                                    "attestation request, then nothing")
        self.assertNotEqual(a.last_attestation_request["CommandUUID"], first,
                            "the request of the first enrollment was not canceled")
        self.assertDeviceRefusal(a.idle(signer=old), "Idle with the old cert after re-binding")
        self.assertDeviceRefusal(a.token_update(signer=old), "TokenUpdate with the old cert")
        self.assertEmpty200(a.idle(), "the new cert keeps working")

    def test_token_update_without_authenticate(self):
        d = self.new_device()
        self.assertDeviceRefusal(d.token_update(), "TokenUpdate of a UDID never authenticated")
        self.assertDeviceRefusal(d.idle(), "Idle of a UDID never authenticated")

    def test_rsa_identity(self):
        """SCEP identities are usually RSA: they must work as well as EC ones."""
        d = self.enrolled_device(key_kind="rsa")
        self.assertEmpty200(d.settle_attestation(), "attestation request, RSA identity")
        c = command_plist("ProfileList")
        self.enqueue_ok(d.udid, c)
        self.assertCommand(d.idle(), c["CommandUUID"])
        self.assertEmpty200(d.report("Acknowledged", c["CommandUUID"], ProfileList=[]))


class SignatureTest(VouchTestCase):

    def test_signature_over_another_body(self):
        a = self.enrolled_device()
        other = plistlib.dumps(a.report_message("Idle", None, Padding="x"))
        self.assertDeviceRefusal(a.idle(sign_body=other), "Idle with a signature of another body")
        body = plistlib.dumps(a.authenticate_message())
        self.assertDeviceRefusal(a.checkin_bytes(body, sign_body=body + b"\n"),
                                 "Authenticate signed over body + newline")
        self.assertAlive("mismatched signatures")

    def test_no_signature(self):
        a = self.enrolled_device()
        self.assertDeviceRefusal(a.idle(signature=None), "Idle without Mdm-Signature")
        self.assertDeviceRefusal(a.authenticate(signature=None), "Authenticate without signature")
        d = self.new_device()
        self.assertDeviceRefusal(d.authenticate(signature=None), "new device, no signature")
        self.assertStatus(self.vouchd.device(d.udid), 404, "refused device must not exist")
        self.assertDeviceRefusal(a.idle(signature=""), "empty Mdm-Signature")
        self.assertAlive("missing signatures")

    def test_untrusted_ca(self):
        """A CA with the very same subject name as the trusted one, but another key."""
        d = self.new_device(ca=self.untrusted_ca)
        self.assertDeviceRefusal(d.authenticate(), "Authenticate with an untrusted CA's cert")
        self.assertStatus(self.vouchd.device(d.udid), 404, "refused device must not exist")
        a = self.enrolled_device()
        a_request = self.queued_attestation_request(a.udid, "after enrollment")
        _key, _cert = self.untrusted_ca.issue(f"Vouch test device {a.udid}")
        self.assertDeviceRefusal(a.idle(signer=(_key, _cert)), "Idle of A, untrusted cert")
        self.assertDeviceRefusal(a.authenticate(signer=(_key, _cert)),
                                 "re-Authenticate of A with an untrusted cert")
        self.assertIsNotNone(self.attestation_of(a.udid)["request"],
                         "a refused re-Authenticate must not cancel the attestation request")
        self.assertEmpty200(a.settle_attestation(), "A's own cert still bound")
        self.assertEqual(a.last_attestation_request["CommandUUID"], a_request)
        self.assertEmpty200(a.idle(), "A's own cert still bound")
        self.assertAlive("untrusted CA")

    def test_self_signed_signer(self):
        from device import TestCA
        selfsigned = TestCA("Vouch test device self-signed")
        d = self.new_device()
        self.assertDeviceRefusal(d.authenticate(signer=(selfsigned.key, selfsigned.cert)),
                                 "Authenticate signed by a self-signed CA certificate")

    def test_expired_cert(self):
        import datetime
        d = self.new_device()
        past = datetime.datetime.now(datetime.timezone.utc) - datetime.timedelta(days=30)
        key, cert = self.ca.issue("expired device", not_before=past, days=2)
        self.assertDeviceRefusal(d.authenticate(signer=(key, cert)),
                                 "Authenticate with an expired identity certificate")

    def test_cms_without_certificate(self):
        a = self.enrolled_device()
        body = plistlib.dumps(a.report_message("Idle"))
        sig = mdm_signature(body, a.key, a.cert, include_cert=False)
        self.assertDeviceRefusal(a.connect_bytes(body, signature=sig),
                                 "CMS without the signer certificate")

    def test_garbage_signatures(self):
        a = self.enrolled_device()
        body = plistlib.dumps(a.report_message("Idle"))
        good = base64.b64decode(mdm_signature(body, a.key, a.cert))
        cert_der = a.cert.public_bytes(serialization.Encoding.DER)
        cases = {
            "not base64": "!!!! not base64 ####",
            "base64 of random bytes": base64.b64encode(os.urandom(700)).decode(),
            "truncated CMS": base64.b64encode(good[: len(good) // 2]).decode(),
            "CMS with a flipped byte": base64.b64encode(
                good[:-20] + bytes([good[-20] ^ 0xFF]) + good[-19:]).decode(),
            "a certificate, not a CMS": base64.b64encode(cert_der).decode(),
            "huge base64": base64.b64encode(os.urandom(48 * 1024)).decode(),
        }
        for name, sig in cases.items():
            r = a.connect_bytes(body, signature=sig)
            self.assertNotEqual(r.status, 401, f"{name}: {r!r}")
            self.assertTrue(400 <= r.status < 500, f"{name}: expected 4xx, got {r!r}")
        self.assertAlive("garbage signatures")
