"""A migrated UDID and a certificate vouchd's ACME server issued for it (issue 25).

A provisional binding is a claim; an ACME identity is proof: Apple attested the key as this very
UDID in the certificate's order. Such a certificate's Authenticate takes the UDID over from a
provisional claimant (released, not banned) and enrolls it as any Authenticate does.
"""

import plistlib

from device import cert_sha256
from test_acme import AcmeTestCase
from test_migration import basic

MDM = "/mdm"


class MigrationAcmeTest(AcmeTestCase):
    acme_config = {"migration": "on"}

    def identity_of(self, udid):
        r = self.vouchd.device(udid)
        self.assertStatus(r, 200, f"GET /v1/devices/{udid}")
        return r.json()["identity"]

    def test_an_acme_identity_takes_a_migrated_udid_over_from_a_claimant(self):
        acme = self.acme_device()
        acme.enroll()  # the ACME certificate for a key Apple attested as acme.udid
        old = self.new_device(udid=acme.udid, serial=acme.serial)
        for msg in (old.authenticate_message(), old.token_update_message()):
            r = self.vouchd.request("PUT", "/migration", body=plistlib.dumps(msg),
                                    headers={"Authorization": basic(self.vouchd.admin_token)})
            self.assertEqual((r.status, r.body), (200, b""), r)
        # Some certificate of the identity CA claims it first.
        claimant = self.new_device(udid=acme.udid)
        self.assertEqual(claimant.idle(path=MDM).status, 200)
        ident = self.identity_of(acme.udid)
        self.assertEqual((ident["bound"], ident["provisional"]), (True, True), ident)
        dev = self.new_device(udid=acme.udid, serial=acme.serial)
        dev.key, dev.cert = acme.device_key, acme.certificate
        self.assertStatus(dev.authenticate(path=MDM), 200, "the ACME identity's Authenticate")
        ident = self.identity_of(acme.udid)
        self.assertEqual((ident["kind"], ident["bound"], ident["provisional"], ident["reason"],
                          ident["hardware_bound"], ident["certificate_sha256"]),
                         ("migrated", True, False, None, True, cert_sha256(dev.cert).hex()), ident)
        body = self.psql(f"SELECT body::jsonb->>'attestation_reason', body::jsonb->>'banned' FROM events "
                         f"WHERE udid = '{acme.udid}' AND topic = 'identity.unproven'").strip()
        self.assertEqual(body, "acme_attested_identity|false")
        self.assertEqual(claimant.idle(path=MDM).status, 403)
        self.assertStatus(dev.token_update(path=MDM), 200, "its TokenUpdate")
        self.assertStatus(dev.idle(path=MDM), 200, "its Idle")
