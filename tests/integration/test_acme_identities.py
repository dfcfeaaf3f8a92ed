"""What becomes of an ACME identity after issuance, and the operator's side (docs/acme.md):
revocation over ACME (by the ordering account, by the certificate's own key) and by the
operator (POST /v1/certs/{serial}/revoke), after which the device's MDM requests with that
certificate are 403 identity_revoked; and expected devices (POST /v1/expected-devices), whose
profile ties the ClientIdentifier to a serial: another serial is refused (serial_mismatch), the
right one is issued once and spends the device's token.
"""

import json

from cryptography.hazmat.primitives.asymmetric import ec

from acme_device import b64url
from test_acme import PUBLIC_URL, AcmeTestCase, der_of, sha256_hex


class RevocationTest(AcmeTestCase):

    def enrolled(self):
        """A device enrolled with vouchd (Authenticate, TokenUpdate) under its ACME identity."""
        acme = self.acme_device()
        acme.enroll()
        dev = self.new_device(udid=acme.udid, serial=acme.serial)
        dev.key, dev.cert = acme.device_key, acme.certificate
        dev.enroll()
        self.assertStatus(dev.idle(), 200, "Idle before revocation")
        return acme, dev

    def revoke(self, acme, payload_extra=None, expect=200, **post):
        body = {"certificate": b64url(der_of(acme.certificate))}
        body.update(payload_extra or {})
        return acme.post("/acme/revoke-cert", body, expect=expect, **post)

    def cert_row(self, acme):
        [row] = [c for c in self.certs(acme.udid)
                 if c["sha256"] == sha256_hex(der_of(acme.certificate))]
        return row

    def assertRevoked(self, acme, dev, reason, by):
        row = self.cert_row(acme)
        self.assertRFC3339(row["revoked_at"], "revoked_at")
        self.assertEqual(row["revoked_reason"], reason)
        event = self.wait_event("identity.revoked", certificate_sha256=row["sha256"])
        self.assertEqual(event["udid"], acme.udid)
        self.assertEqual(event["serial_number"], acme.serial)
        self.assertEqual(event["certificate_serial"], row["serial"])
        self.assertEqual(event["reason"], reason)
        self.assertEqual(event["by"], by)
        if dev is not None:
            r = dev.idle()
            self.assertDeviceRefusal(r, "Idle with a revoked identity")
            self.assertIn(b"identity_revoked", r.body)
            r = dev.authenticate()
            self.assertDeviceRefusal(r, "Authenticate with a revoked identity")
            self.assertIn(b"identity_revoked", r.body)
            identity = self.vouchd.device(acme.udid).json()["identity"]
            self.assertIs(identity["revoked"], True)
            self.assertEqual(identity["certificate_sha256"], row["sha256"])

    def test_revoked_by_the_ordering_account(self):
        acme, dev = self.enrolled()
        before = self.counters("vouch_acme_total")
        r = self.revoke(acme, {"reason": 4})
        self.assertEqual(r.body, b"")
        self.assertRegex(r.header("Replay-Nonce"), r"^[A-Za-z0-9_-]{16,}$")
        after = self.counters("vouch_acme_total")
        self.assertEqual(after["revoked"] - before.get("revoked", 0), 1)
        self.assertRevoked(acme, dev, "superseded", "acme")
        # Once only.
        refused = self.refusals()
        r = self.revoke(acme, expect=None)
        self.assertProblem(r, 400, "alreadyRevoked", acme)
        self.assertCounted(refused, self.refusals(), "already_revoked")

    def test_revoked_with_the_certificates_own_key(self):
        """jwk = the device's attested key (ES384), no account."""
        acme, dev = self.enrolled()
        r = self.revoke(acme, {"reason": 1}, kid=False, key=acme.device_key)
        self.assertEqual(r.status, 200)
        self.assertRevoked(acme, dev, "keyCompromise", "acme")

    def test_revoked_before_the_device_authenticated(self):
        acme = self.acme_device()
        acme.enroll()
        self.revoke(acme)
        self.assertRevoked(acme, None, "unspecified", "acme")
        dev = self.new_device(udid=acme.udid, serial=acme.serial)
        dev.key, dev.cert = acme.device_key, acme.certificate
        r = dev.authenticate()
        self.assertDeviceRefusal(r, "Authenticate with a revoked identity")
        self.assertIn(b"identity_revoked", r.body)

    def test_not_revoked_by_others(self):
        """Another account (kid), another key (jwk): 403 unauthorized; the identity stands."""
        acme, dev = self.enrolled()
        other = self.acme_device()
        other.register()
        body = {"certificate": b64url(der_of(acme.certificate))}
        for what, post in (("another account", dict(kid=True)),
                           ("another key", dict(kid=False, key=ec.generate_private_key(
                               ec.SECP384R1())))):
            refused = self.refusals()
            r = other.post("/acme/revoke-cert", body, **post)
            self.assertProblem(r, 403, "unauthorized", other, what)
            self.assertCounted(refused, self.refusals(), "not_owner")
        self.assertIsNone(self.cert_row(acme)["revoked_at"])
        self.assertStatus(dev.idle(), 200, "Idle after refused revocations")
        self.assertEqual(self.listed_events("identity.revoked"), [])

    def test_revocation_refusals(self):
        acme = self.acme_device()
        acme.enroll()
        for reason in (2, 6, 7, 11, "1"):
            refused = self.refusals()
            r = self.revoke(acme, {"reason": reason}, expect=None)
            self.assertProblem(r, 400, "badRevocationReason", acme, f"reason {reason!r}")
            self.assertCounted(refused, self.refusals(), "bad_revocation_reason")
        # A certificate of another CA (the suite's device CA): not this server's.
        _key, foreign = self.ca.issue("not-from-acme")
        refused = self.refusals()
        r = acme.post("/acme/revoke-cert", {"certificate": b64url(der_of(foreign))})
        self.assertProblem(r, 400, "malformed", acme, "a foreign certificate")
        self.assertCounted(refused, self.refusals(), "unknown_certificate")
        r = acme.post("/acme/revoke-cert", {"certificate": b64url(b"\x30\x03\x02\x01\x01")})
        self.assertProblem(r, 400, "malformed", acme, "not a certificate")
        self.assertIsNone(self.cert_row(acme)["revoked_at"])

    def test_revoked_by_the_operator(self):
        acme, dev = self.enrolled()
        serial = self.cert_row(acme)["serial"]
        r = self.vouchd.admin("POST", f"/v1/certs/{serial}/revoke",
                              body=json.dumps({"reason": "device lost"}).encode(),
                              content_type="application/json")
        self.assertStatus(r, 200, "POST /v1/certs/{serial}/revoke")
        row = r.json()
        self.assertEqual(row["serial"], serial)
        self.assertEqual(row["revoked_reason"], "device lost")
        self.assertRevoked(acme, dev, "device lost", "operator")
        # Again: the same revocation, no second event; over ACME: already revoked.
        again = self.vouchd.admin("POST", f"/v1/certs/{serial}/revoke", body=b"")
        self.assertStatus(again, 200, "revoke again")
        self.assertEqual(again.json()["revoked_at"], row["revoked_at"])
        self.assertEqual(len(self.listed_events("identity.revoked")), 1)
        r = self.revoke(acme, expect=None)
        self.assertProblem(r, 400, "alreadyRevoked", acme)
        r = self.vouchd.admin("POST", "/v1/certs/00112233445566778899aabbccddeeff/revoke",
                              body=b"")
        self.assertStatus(r, 404, "an unknown serial")


class ExpectedDeviceTest(AcmeTestCase):

    def expect(self, serial):
        r = self.vouchd.admin("POST", "/v1/expected-devices",
                              body=json.dumps({"serial_numbers": [serial]}).encode(),
                              content_type="application/json")
        self.assertStatus(r, 200, "POST /v1/expected-devices")
        [row] = r.json()
        return row

    def profile_path(self, row):
        self.assertTrue(row["profile_url"].startswith(PUBLIC_URL + "/mdm/enroll?token="), row)
        return row["profile_url"][len(PUBLIC_URL):]

    def test_expected_serial_flow(self):
        serial = "EXPECT" + sha256_hex(self.id().encode())[:6].upper()
        row = self.expect(serial)
        self.assertEqual(row["serial_number"], serial)
        self.assertEqual(row["state"], "expected")
        token = row["enroll_token"]
        self.assertEqual(self.profile_path(row), f"/mdm/enroll?token={token}")

        # A device attesting another serial, with the expected device's profile.
        impostor = self.acme_device()
        impostor.enroll_profile(token=token)
        impostor.register()
        order = impostor.new_order()
        refused = self.refusals()
        r = impostor.answer_challenge(order, expect=None)
        body = self.assertProblem(r, 400, "rejectedIdentifier", impostor)
        self.assertIn(serial, body["detail"])
        self.assertCounted(refused, self.refusals(), "serial_mismatch")
        event = self.wait_event("identity.refused", reason="serial_mismatch")
        self.assertEqual(event["serial_number"], impostor.serial)
        self.assertEqual(event["udid"], impostor.udid)
        self.assertEqual(event["client_identifier"], impostor.client_id)
        self.assertOrderInvalid(impostor, order, "rejectedIdentifier")
        self.assertNothingIssued(impostor)

        # The token is not spent: the right device downloads its profile and is issued.
        dev = self.acme_device(serial=serial)
        dev.enroll_profile(token=token)
        self.assertNotEqual(dev.client_id, impostor.client_id)
        dev.register()
        order = dev.new_order()
        dev.answer_challenge(order)
        dev.download(dev.finalize(order).json())
        issued = self.wait_event("identity.issued", udid=dev.udid)
        self.assertEqual(issued["expected_serial"], serial)
        self.assertEqual(issued["serial_number"], serial)
        [cert] = self.certs(dev.udid)
        self.assertEqual(cert["expected_serial"], serial)

        # Spent: the profile URL is 403 now, and the operator sees the device enrolled.
        r = dev.request("GET", f"/mdm/enroll?token={token}")
        self.assertStatus(r, 403, "the spent token")
        self.assertIn(b"has been used", r.body)
        listed = self.vouchd.admin("GET", "/v1/expected-devices").json()
        [mine] = [x for x in listed if x["serial_number"] == serial]
        self.assertRFC3339(mine["enrolled_at"], "enrolled_at")
        again = self.expect(serial)
        self.assertEqual(again["state"], "enrolled")
        self.assertNotIn("enroll_token", again)

    def test_renewed_token_replaces_the_old_one(self):
        serial = "EXPECT" + sha256_hex(self.id().encode())[:6].upper()
        old = self.expect(serial)["enroll_token"]
        renewed = self.expect(serial)
        self.assertEqual(renewed["state"], "renewed")
        self.assertNotEqual(renewed["enroll_token"], old)
        dev = self.acme_device(serial=serial)
        r = dev.request("GET", f"/mdm/enroll?token={old}")
        self.assertStatus(r, 403, "the replaced token")
        dev.enroll_profile(token=renewed["enroll_token"])

    def test_unknown_token(self):
        dev = self.acme_device()
        r = dev.request("GET", "/mdm/enroll?token=" + "ab" * 32)
        self.assertStatus(r, 403, "an unknown token")
