"""Real messages captured by NanoMDM, MicroMDM and Zentral drive check-ins and reports, byte for
byte, each signed by a device whose certificate we issue for the plist's UDID.

The first TokenUpdate of each enrollment makes vouchd queue an attestation request ahead of
everything else. These devices (an iPad on iOS 9, Intel Macs) cannot attest: they answer it with
their own facts and no DevicePropertiesAttestation, which must leave what they reported at
Authenticate as it was."""

import plistlib

from harness import VouchTestCase, command_plist, peer_plist

NANO = "nanomdm/mdm__testdata__"
MICRO = "micromdm/docs__user-guide__api-and-webhooks.md__"
ZENTRAL = "zentral/tests__mdm__testdata__"


class PeerPlistTest(VouchTestCase):
    # The captured reports state other OS versions than the devices' Authenticate did: an OS
    # change, which the scheduler rightly answers with an attestation request ahead of the
    # commands these tests hand out one by one. Scheduling is tested in test_scheduler.
    vouchd_config = {"scheduler_batch": "0"}

    def device_for(self, udid):
        return self.new_device(udid=udid)

    def checkin_file(self, dev, name, path="/mdm/checkin"):
        data, msg = peer_plist(name)
        self.assertEqual(msg["UDID"], dev.udid)
        r = dev.checkin_bytes(data, path=path)
        self.assertEmpty200(r, f"{msg['MessageType']} from {name}")
        if msg["MessageType"] == "Authenticate":
            # the device answers DeviceInformation queries with what it said here
            dev.serial = msg.get("SerialNumber")
            dev.model = msg.get("Model")
            dev.product_name = msg.get("ProductName")
            dev.os_version = msg.get("OSVersion")
            dev.build_version = msg.get("BuildVersion")
        return msg

    def settle(self, dev, what):
        """Answer the attestation request as a device that cannot attest: unsupported, and the
        device's facts unchanged."""
        before = self.vouchd.device(dev.udid).json()
        self.assertIsNotNone(before["attestation"]["request"],
                         f"{what}: the first TokenUpdate asks for an attestation")
        self.assertEmpty200(dev.settle_attestation(), f"{what}: answer to the attestation request")
        after = self.vouchd.device(dev.udid).json()
        self.assertEqual(after["attestation"]["status"], "unsupported", what)
        for k in ("serial_number", "model", "product_name", "os_version", "build_version"):
            self.assertEqual(after[k], before[k], f"{what}: {k} changed by the answer")

    def report_file(self, dev, name, path="/mdm/connect"):
        data, msg = peer_plist(name)
        self.assertEqual(msg["UDID"], dev.udid)
        return dev.connect_bytes(data, path=path), data, msg

    def test_nanomdm_ipad(self):
        """Authenticate.1 (no Model, no DeviceName) and TokenUpdate.1 (with UnlockToken)."""
        dev = self.device_for("663b07bb783e9ade1dae4fbb92ea12afc0ce5b69")
        auth = self.checkin_file(dev, NANO + "Authenticate.1.plist")
        obj = self.vouchd.device(dev.udid).json()
        self.assertEqual(obj["serial_number"], auth["SerialNumber"])
        self.assertEqual(obj["product_name"], "iPad2,5")
        self.assertEqual(obj["os_version"], "9.3.5")
        self.assertEqual(obj["build_version"], "13G36")
        self.assertIs(obj["enrolled"], False)
        self.checkin_file(dev, NANO + "TokenUpdate.1.plist")
        obj = self.vouchd.device(dev.udid).json()
        self.assertIs(obj["enrolled"], True)
        self.assertEqual(obj["push"]["token_state"], "active")
        self.settle(dev, "the iPad")
        self.assertEqual(self.vouchd.device(dev.udid).json()["os_version"], "9.3.5")
        self.assertEmpty200(dev.idle(), "Idle of the iPad")

    def test_nanomdm_mac_device_information(self):
        dev = self.device_for("66ADE930-5FDF-5EC4-8429-15640684C489")
        auth = self.checkin_file(dev, NANO + "Authenticate.2.plist")
        self.checkin_file(dev, NANO + "TokenUpdate.2.plist", path="/mdm")
        obj = self.vouchd.device(dev.udid).json()
        for key, field in (("SerialNumber", "serial_number"), ("Model", "model"),
                           ("ProductName", "product_name"), ("OSVersion", "os_version"),
                           ("BuildVersion", "build_version")):
            self.assertEqual(obj[field], auth[key], field)
        self.assertIs(obj["enrolled"], True)
        self.settle(dev, "the nanomdm Mac")

        cu = "76eda240-5488-4989-8339-f2ae160113c4"
        self.enqueue_ok(dev.udid, command_plist("DeviceInformation", command_uuid=cu,
                                                Queries=["HostName", "UDID"]))
        self.assertCommand(dev.idle(), cu)
        r, data, _msg = self.report_file(dev, NANO + "DeviceInformation.1.plist")
        self.assertEmpty200(r, "DeviceInformation.1 report")
        self.assertEqual(self.command_status(dev.udid, cu)[0]["status"], "Acknowledged")
        self.assertTrue(self.db_find(data), "the raw DeviceInformation.1 report is not stored")
        r, _data, _msg = self.report_file(dev, NANO + "DeviceInformation.1.plist")
        self.assertEmpty200(r, "the same report again")
        self.assertEqual(len(self.command_status(dev.udid, cu)), 1)

    def test_micromdm_full_life(self):
        dev = self.device_for("A5EF1BA1-586D-4F29-B4F3-759DADAC2DDD")
        auth = self.checkin_file(dev, MICRO + "Authenticate.plist")
        self.checkin_file(dev, MICRO + "TokenUpdate.plist")
        obj = self.vouchd.device(dev.udid).json()
        self.assertEqual(obj["serial_number"], auth["SerialNumber"])
        self.assertEqual(obj["model"], "MacBookPro14,3")
        self.assertIs(obj["enrolled"], True)
        self.settle(dev, "the micromdm Mac")
        cu = "41d35de3-a343-4146-ba4b-0069bae2a54f"
        self.enqueue_ok(dev.udid, command_plist("ProfileList", command_uuid=cu))
        self.assertCommand(dev.idle(), cu)
        r, data, _msg = self.report_file(dev, MICRO + "Connect.plist", path="/mdm")
        self.assertEmpty200(r, "micromdm Connect (Acknowledged)")
        self.assertEqual(self.command_status(dev.udid, cu)[0]["status"], "Acknowledged")
        self.assertTrue(self.db_find(data), "the raw Connect report is not stored")
        self.checkin_file(dev, MICRO + "CheckOut.plist")
        self.assertIs(self.vouchd.device(dev.udid).json()["enrolled"], False,
                      "still enrolled after micromdm CheckOut")

    def test_zentral_reports(self):
        mac = self.device_for("9353BC9A-5CF9-4C9E-9AD4-8D1E41D5FE3E")
        ios = self.device_for("cb48a725986c8b4e23b6ca68e5b6941d073c990f")
        profiles = self.device_for("7DD67F73-27DE-57B7-872F-C68FACCD9186")
        certs = self.device_for("00008020-000915083C80012E")
        for d in (mac, ios, profiles, certs):
            d.enroll()
            self.settle(d, f"zentral {d.udid}")
        # The same SecurityInfo CommandUUID is answered by two devices: it is enqueued once to
        # both (at the first of them); every other command just before its device's turn.
        si = "9A105E87-EC35-4F65-A265-423CFB92D624"
        plan = [
            (mac, "DeviceInformation", "02CD8B7A-465F-49E6-86D6-D3ACAAE5529E",
             ZENTRAL + "device_information.plist", [mac]),
            (mac, "SecurityInfo", si, ZENTRAL + "security_info.plist", [mac, ios]),
            (ios, "SecurityInfo", si, ZENTRAL + "security_info_ios.plist", []),
            (profiles, "ProfileList", "ABCC7D59-00FC-45DE-995A-296B119583E8",
             ZENTRAL + "profile_list.plist", [profiles]),
            (certs, "CertificateList", "0001-CertificateList",
             ZENTRAL + "certificate_list.plist", [certs]),
        ]
        for dev, rt, cu, name, enqueue_to in plan:
            if enqueue_to:
                self.enqueue_ok([d.udid for d in enqueue_to], command_plist(rt, command_uuid=cu))
            self.assertCommand(dev.idle(), cu, f"Idle of {dev.udid} before {name}")
            r, data, msg = self.report_file(dev, name)
            self.assertEqual(msg["CommandUUID"], cu)
            self.assertEmpty200(r, f"report {name}")
            st = self.command_status(dev.udid, cu)
            self.assertEqual(len(st), 1, st)
            self.assertEqual(st[0]["status"], "Acknowledged", f"{name}: {st}")
            self.assertTrue(self.db_find(data), f"the raw {name} report is not stored")
        for dev in (mac, ios, profiles, certs):
            self.assertEmpty200(dev.idle(), f"{dev.udid} drained")

    def test_peer_plists_parse(self):
        """Every captured plist is a dict this suite understands (guards the copied test data)."""
        for name in (NANO + "Authenticate.1.plist", NANO + "Authenticate.2.plist",
                     NANO + "TokenUpdate.1.plist", NANO + "TokenUpdate.2.plist",
                     NANO + "DeviceInformation.1.plist", MICRO + "Authenticate.plist",
                     MICRO + "TokenUpdate.plist", MICRO + "CheckOut.plist",
                     MICRO + "Connect.plist", ZENTRAL + "device_information.plist",
                     ZENTRAL + "security_info.plist", ZENTRAL + "security_info_ios.plist",
                     ZENTRAL + "profile_list.plist", ZENTRAL + "certificate_list.plist"):
            data, msg = peer_plist(name)
            self.assertIsInstance(msg, dict, name)
            self.assertIn("UDID", msg, name)
            self.assertEqual(plistlib.loads(data), msg)
