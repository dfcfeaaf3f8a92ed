"""Managed Device Attestation, what is kept of it: the leaf's properties exactly as Apple states
them (null when blank or absent), every answer in the history, newest first, and the device list's
filters by verdict. The set-up and helpers are test_attestation.py's (AttestationCase).

Contract: docs/attestation.md and docs/api.md (the device object, the history, the filters).
"""

import json

from fake_apple import der, sha256_hex
from test_attestation import LEAF_DEFAULTS, AttestationCase, parse_time


# ---------------------------------------------------------------------------------------------
class AttestationPropertiesTest(AttestationCase):
    """Properties exactly as in the leaf; null for blank or omitted."""

    def test_macos_properties(self):
        dev = self.new_device(model="Mac14,2", product_name="Mac14,2", os_version="14.4.1",
                              build_version="23E224").enroll()
        cu, nonce = self.take_request(dev, "Mac")
        chain = self.chain_for(dev, nonce, os_version="14.4.1", sepos_version="2.0.1",
                               llb_version="iBoot-10151.101.3",
                               software_update_device_id="J413AP",
                               secure_boot="Full Security", sip_status=0, kexts_status=0)
        self.answer(dev, cu, chain, what="Mac", SoftwareUpdateDeviceID="J413AP")
        att, entry = self.assertVerdict(dev, cu, "verified", None, "fresh", "Mac")
        expected = {"serial_number": dev.serial, "udid": dev.udid, "os_version": "14.4.1",
                    "sepos_version": "2.0.1", "llb_version": "iBoot-10151.101.3",
                    "software_update_device_id": "J413AP", "sip_enabled": True,
                    "secure_boot": "Full Security", "third_party_kexts_allowed": False}
        self.assertEqual(self.props(att), expected)
        self.assertEqual(self.props(entry), expected)

        # SIP disabled, kexts allowed, reduced security.
        self.post_attest(dev.udid)
        cu, nonce = self.take_request(dev, "Mac, relaxed")
        chain = self.chain_for(dev, nonce, os_version="14.4.1", sepos_version="2.0.1",
                               software_update_device_id="J413AP",
                               secure_boot="Reduced Security", sip_status=1, kexts_status=1)
        self.answer(dev, cu, chain, what="Mac, relaxed", SoftwareUpdateDeviceID="J413AP")
        att, _ = self.assertVerdict(dev, cu, "verified", None, "fresh", "Mac, relaxed")
        expected.update(sip_enabled=False, third_party_kexts_allowed=True,
                        secure_boot="Reduced Security")
        self.assertEqual(self.props(att), expected)

    def test_blank_and_omitted_are_null(self):
        dev = self.iphone()
        cu, nonce = self.take_request(dev, "blank/omitted")
        chain = self.chain_for(dev, nonce, sepos_version="", llb_version=None,
                               software_update_device_id="", secure_boot=None,
                               sip_status=None, kexts_status=None)
        self.answer(dev, cu, chain, what="blank/omitted")
        att, entry = self.assertVerdict(dev, cu, "verified", None, "fresh", "blank/omitted")
        expected = {"serial_number": dev.serial, "udid": dev.udid, "os_version": "17.4",
                    "sepos_version": None, "llb_version": None,
                    "software_update_device_id": None, "sip_enabled": None,
                    "secure_boot": None, "third_party_kexts_allowed": None}
        self.assertEqual(self.props(att), expected)
        self.assertEqual(self.props(entry), expected)

    def test_blank_secure_boot_is_null(self):
        dev = self.iphone()
        cu, nonce = self.take_request(dev, "blank secure boot")
        self.answer(dev, cu, self.chain_for(dev, nonce, secure_boot=""), what="blank sb")
        att, _ = self.assertVerdict(dev, cu, "verified", None, "fresh", "blank secure boot")
        self.assertIsNone(att["properties"]["secure_boot"], att)
        self.assertEqual(att["properties"]["sepos_version"], "17.4", att)

    def test_properties_of_a_failed_answer_are_not_the_device_truth(self):
        """A chain that fails (another root) must not leave its properties as if verified:
        status failed, and whatever properties are shown are the leaf's, never a mix."""
        dev = self.iphone()
        cu, nonce = self.take_request(dev, "other root")
        self.answer(dev, cu, self.chain_for(dev, nonce, pki=self.other_pki, os_version="17.4",
                                            sepos_version="99.9"), what="other root")
        att, _ = self.assertVerdict(dev, cu, "failed", "untrusted_chain", {None, "unknown"},
                                    "other root")
        props = att["properties"] or {}
        self.assertIn(props.get("sepos_version"), (None, "99.9"), att)


# ---------------------------------------------------------------------------------------------
class AttestationHistoryAndFilterTest(AttestationCase):

    def test_history_newest_first_with_every_answer(self):
        dev = self.iphone()
        steps = []
        # 1: auto request, malformed answer
        cu, nonce = self.take_request(dev, "1")
        self.answer(dev, cu, [b"junk"], what="1 malformed")
        steps.append((cu, "failed", "malformed", "enrollment", None))
        self.verdict(dev, cu, "1")
        # 2: operator request, no freshness code
        self.assertTrue(self.post_attest(dev.udid)["queued"])
        cu, nonce = self.take_request(dev, "2")
        leaf2 = self.pki.leaf(serial=dev.serial, udid=dev.udid, **LEAF_DEFAULTS)
        self.answer(dev, cu, [der(leaf2), der(self.pki.sub)], what="2 nonce_missing")
        steps.append((cu, "failed", "nonce_missing", "operator", sha256_hex(leaf2)))
        self.verdict(dev, cu, "2")
        # 3: Error
        self.assertTrue(self.post_attest(dev.udid)["queued"])
        cu, nonce = self.take_request(dev, "3")
        self.assertEmpty200(dev.report("Error", cu, ErrorChain=[]), "3 Error")
        steps.append((cu, "error", None, "operator", None))
        self.verdict(dev, cu, "3")
        # 4: verified fresh
        self.assertTrue(self.post_attest(dev.udid)["queued"])
        cu, nonce = self.take_request(dev, "4")
        leaf4 = self.pki.leaf(nonce=nonce, serial=dev.serial, udid=dev.udid, **LEAF_DEFAULTS)
        self.answer(dev, cu, [der(leaf4), der(self.pki.sub)], what="4 verified")
        steps.append((cu, "verified", None, "operator", sha256_hex(leaf4)))
        self.verdict(dev, cu, "4")
        # 5: no attestation, after a verified one: withheld
        self.assertTrue(self.post_attest(dev.udid)["queued"])
        cu, nonce = self.take_request(dev, "5")
        self.answer(dev, cu, omit_attestation=True, what="5 withheld")
        steps.append((cu, "failed", "attestation_withheld", "operator", None))
        self.verdict(dev, cu, "5")

        hist = self.history(dev.udid)
        self.assertEqual([e["command_uuid"] for e in hist], [s[0] for s in reversed(steps)],
                         f"history is not every answer, newest first: {hist}")
        for e, (cu, status, reason, why, leaf_hash) in zip(hist, reversed(steps)):
            self.assertEqual((e["status"], e["reason"], e["request_reason"]),
                             (status, reason, why), e)
            if leaf_hash is not None:
                self.assertEqual((e["leaf_sha256"] or "").lower(), leaf_hash, e)
        times = [parse_time(e["received_at"]) for e in hist]
        self.assertEqual(times, sorted(times, reverse=True), "received_at not newest first")
        self.assertEqual(self.attestation(dev.udid)["status"], "failed",
                         "the device's status is the last answer's")

    def test_filter(self):
        none = self.iphone(enroll=False)
        self.assertEmpty200(none.authenticate(), "Authenticate only")
        pending = self.iphone()
        verified = self.iphone()
        self.attest_fresh(verified, "verified device")
        failed = self.iphone()
        self.fail_one(failed, [b"\x00"], "malformed", {None, "unknown"}, "failed device")
        unsupported = self.iphone(model="iPhone9,3", product_name="iPhone9,3", os_version="15.8")
        cu, _ = self.take_request(unsupported, "unsupported device")
        self.answer(unsupported, cu, omit_attestation=True, what="unsupported device")
        self.verdict(unsupported, cu, "unsupported device")
        # The verdicts partition the devices; "pending" is a request out, beside any verdict.
        devices = {"none": none, "verified": verified, "failed": failed,
                   "unsupported": unsupported}
        lists = {status: self.listed(status) for status in list(devices) + ["expired"]}
        for status, dev in devices.items():
            for other, udids in lists.items():
                if other == status:
                    self.assertIn(dev.udid, udids, f"{status} device not in ?attestation={other}")
                else:
                    self.assertNotIn(dev.udid, udids,
                                     f"{status} device listed in ?attestation={other}")
        self.assertIn(pending.udid, lists["none"], "asked, never answered: no verdict")
        ours = {d.udid for d in devices.values()} | {pending.udid}
        self.assertEqual(self.listed("pending") & ours, {pending.udid},
                         "?attestation=pending: the devices with a request out")
        r = self.vouchd.admin("GET", "/v1/devices?attestation=bogus")
        self.assertEqual(r.status, 400, repr(r))
        r = self.vouchd.admin("GET", "/v1/devices?limit=1000")
        self.assertStatus(r, 200, "unfiltered list")
        everyone = {o["udid"] for o in r.json()}
        self.assertEqual(set().union(*lists.values()), everyone,
                         "the verdict filters do not partition the device list")
