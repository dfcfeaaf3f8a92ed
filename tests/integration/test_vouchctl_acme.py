"""vouchctl's side of vouchd's ACME server: `certs` (list, revoke), `devices expect` and
`devices expected`, and the identity line of `device UDID`, against a real vouchd and
PostgreSQL, with devices that enroll over ACME (acme_device.py)."""

import json
import re
import secrets
import urllib.parse
import uuid

import test_acme  # AcmeTestCase; imported as a module so that its own tests do not run here
from acme_device import AcmeDevice
from harness import vouchctl

HEX_TOKEN = re.compile(r"^[0-9a-f]{48}$")


def new_serial():
    return ("G" + secrets.token_hex(6).upper())[:12]


class VouchctlAcmeTest(test_acme.AcmeTestCase):

    # -- helpers ---------------------------------------------------------------------------
    def ctl(self, *args, rc=0):
        p = vouchctl(self.vouchd, *args)
        self.assertEqual(p.returncode, rc, f"vouchctl {' '.join(args)}: exit {p.returncode}\n"
                         f"stdout: {p.stdout}\nstderr: {p.stderr}")
        return p

    def ctl_json(self, *args):
        return json.loads(self.ctl("--json", *args).stdout)

    def acme_enrolled(self, mdm=True, **kw):
        """A device with an ACME identity; with mdm, also enrolled in MDM with it (bound)."""
        acme = self.acme_device(**kw)
        acme.enroll()
        if mdm:
            dev = self.new_device(udid=acme.udid, serial=acme.serial)
            dev.key, dev.cert = acme.device_key, acme.certificate
            dev.enroll()
            acme.mdm = dev
        return acme

    def cert_of(self, acme):
        certs = self.ctl_json("certs", acme.udid)
        self.assertEqual(len(certs), 1, certs)
        cert = certs[0]
        self.assertEqual(int(cert["serial"], 16), acme.certificate.serial_number)
        return cert

    @staticmethod
    def table(text):
        """The rows of a vouchctl table: lists of cells (split on two or more spaces)."""
        return [re.split(r"\s{2,}", line.strip()) for line in text.splitlines() if line.strip()]

    def row_of(self, text, first_cell):
        rows = [r for r in self.table(text) if r[0] == first_cell]
        self.assertEqual(len(rows), 1, f"one row for {first_cell} in:\n{text}")
        return rows[0]

    def profile_path(self, url):
        """The path and query of a profile URL (it names public_url, not the test server)."""
        parts = urllib.parse.urlsplit(url)
        self.assertEqual(f"{parts.scheme}://{parts.netloc}", test_acme.PUBLIC_URL)
        self.assertEqual(parts.path, "/mdm/enroll")
        return parts.path + "?" + parts.query

    # -- certs -----------------------------------------------------------------------------
    def test_certs_lists_table_and_json(self):
        bound = self.acme_enrolled()
        loose = self.acme_enrolled(mdm=False)

        p = self.ctl("certs")
        rows = self.table(p.stdout)
        self.assertEqual(rows[0], ["SERIAL", "UDID", "DEVICE SERIAL", "ISSUED", "NOT AFTER",
                                   "STATE", "BOUND"])
        for acme, is_bound in ((bound, "yes"), (loose, "no")):
            cert = self.cert_of(acme)
            row = self.row_of(p.stdout, cert["serial"])
            self.assertEqual(row, [cert["serial"], acme.udid, acme.serial, cert["issued_at"],
                                   cert["not_after"], "active", is_bound])

        everything = self.ctl_json("certs")
        serials = {c["serial"] for c in everything}
        self.assertIn(self.cert_of(bound)["serial"], serials)
        self.assertIn(self.cert_of(loose)["serial"], serials)
        # Newest first.
        issued = [c["issued_at"] for c in everything]
        self.assertEqual(issued, sorted(issued, reverse=True))

        # One device's: only its certificate, with what the API says of it.
        cert = self.cert_of(bound)
        self.assertIs(cert["bound"], True)
        self.assertEqual(cert["udid"], bound.udid)
        self.assertEqual(cert["serial_number"], bound.serial)
        self.assertIsNone(cert["revoked_at"])
        self.assertEqual(cert["client_identifier"], bound.client_id)
        self.assertIsNotNone(cert["attestation"]["leaf_sha256"])
        p = self.ctl("certs", bound.udid)
        rows = self.table(p.stdout)
        self.assertEqual(len(rows), 2, p.stdout)
        self.assertEqual(rows[1][0], cert["serial"])

        # A device with none (enrolled through SCEP): an empty list, exit 0.
        scep = self.enrolled_device()
        p = self.ctl("certs", scep.udid)
        self.assertEqual(p.stdout, "")
        self.assertIn(f"no identity certificates for {scep.udid}", p.stderr)
        self.assertEqual(self.ctl_json("certs", scep.udid), [])
        # No such device: the answer every command gives for an unknown UDID (issue 20).
        p = self.ctl("certs", "NO-SUCH-DEVICE", rc=1)
        self.assertEqual((p.stdout, p.stderr), ("", "vouchctl: unknown device 'NO-SUCH-DEVICE'\n"))

    def test_device_view_shows_the_identity(self):
        acme = self.acme_enrolled()
        cert = self.cert_of(acme)
        p = self.ctl("device", acme.udid)
        self.assertRegex(p.stdout, re.compile(
            r"^identity:\s+acme-attested \(hardware-bound\), certificate "
            + re.escape(cert["serial"]) + r", until " + re.escape(cert["not_after"]) + "$",
            re.M))
        identity = self.ctl_json("device", acme.udid)["identity"]
        self.assertEqual(identity["kind"], "acme-attested")
        self.assertEqual(identity["certificate_serial"], cert["serial"])

        scep = self.enrolled_device()
        p = self.ctl("device", scep.udid)
        self.assertRegex(p.stdout, re.compile(r"^identity:\s+scep, until \S+Z$", re.M))
        self.assertNotIn("hardware-bound", p.stdout)

    def test_revoke(self):
        acme = self.acme_enrolled()
        serial = self.cert_of(acme)["serial"]
        self.assertEqual(acme.mdm.idle().status, 200, "the device before the revocation")

        p = self.ctl("certs", "revoke", serial, "--reason", "lost")
        self.assertIn(f"certificate {serial}: revoked (lost)", p.stdout)
        self.assertRegex(p.stdout, re.compile(r"^  udid\s+" + re.escape(acme.udid) + "$", re.M))
        first = self.cert_of(acme)
        self.assertIsNotNone(first["revoked_at"])
        self.assertEqual(first["revoked_reason"], "lost")

        # The device object, its text view and the list say so; vouchd refuses the device.
        self.assertIs(self.ctl_json("device", acme.udid)["identity"]["revoked"], True)
        self.assertRegex(self.ctl("device", acme.udid).stdout,
                         re.compile(r"^identity:\s+acme-attested .*, revoked$", re.M))
        self.assertEqual(self.row_of(self.ctl("certs", acme.udid).stdout, serial)[5],
                         "revoked (lost)")
        self.assertDeviceRefusal(acme.mdm.idle(), "a check-in with a revoked identity")

        # Again (as openssl prints serials: upper case, colons): exit 0, and nothing changes.
        spelled = ":".join(re.findall("..?", serial.upper()))
        again = json.loads(self.ctl("--json", "certs", "revoke", spelled, "--reason",
                                    "stolen").stdout)
        self.assertEqual(again["serial"], serial)
        self.assertEqual(again["revoked_at"], first["revoked_at"])
        self.assertEqual(again["revoked_reason"], "lost")
        p = self.ctl("certs", "revoke", serial)
        self.assertIn(f"certificate {serial}: revoked (lost)", p.stdout)

    def test_revoke_unknown_serial_fails(self):
        p = self.ctl("certs", "revoke", "0123456789abcdef0123", rc=1)
        self.assertEqual(p.stdout, "")
        self.assertIn("vouchctl: no certificate with that serial (HTTP 404 Not Found)", p.stderr)

    # -- devices expect / expected ---------------------------------------------------------
    def expect(self, *serials):
        p = self.ctl("devices", "expect", *serials)
        rows = self.table(p.stdout)
        self.assertEqual(rows[0], ["SERIAL", "STATE", "PROFILE URL"])
        return p, {r[0]: r for r in rows[1:]}

    def test_expect_gives_each_device_its_profile_url(self):
        first, second = new_serial(), new_serial()
        p, rows = self.expect(second, first)
        self.assertEqual(set(rows), {first, second})
        self.assertIn("shown only this once", p.stderr)
        urls = {}
        for serial in (first, second):
            _, state, url = rows[serial]
            self.assertEqual(state, "expected")
            query = urllib.parse.parse_qs(urllib.parse.urlsplit(url).query)
            self.assertRegex(query["token"][0], HEX_TOKEN)
            urls[serial] = url
        self.assertNotEqual(urls[first], urls[second])

        # The URL is the enrollment profile (its path and query, on the test server).
        dev = AcmeDevice(self.vouchd, self.apple, str(uuid.uuid4()).upper(), first,
                         public_url=test_acme.PUBLIC_URL)
        r = dev.request("GET", self.profile_path(urls[first]))
        self.assertStatus(r, 200, "GET the profile URL")
        self.assertIn(b"com.apple.security.acme", r.body)

        # Expected again before it enrolled: a new token, and the old one no longer works.
        renewed = self.ctl_json("devices", "expect", first)
        self.assertEqual(len(renewed), 1)
        self.assertEqual(renewed[0]["serial_number"], first)
        self.assertEqual(renewed[0]["state"], "renewed")
        self.assertRegex(renewed[0]["enroll_token"], HEX_TOKEN)
        self.assertNotEqual(renewed[0]["profile_url"], urls[first])
        self.assertIn(renewed[0]["enroll_token"], renewed[0]["profile_url"])
        self.assertStatus(dev.request("GET", self.profile_path(urls[first])), 403,
                          "the replaced token")

        # Listed, not enrolled yet.
        p = self.ctl("devices", "expected")
        self.assertEqual(self.table(p.stdout)[0], ["SERIAL", "EXPECTED", "ENROLLED"])
        self.assertEqual(self.row_of(p.stdout, first)[2], "-")
        listed = {x["serial_number"]: x for x in self.ctl_json("devices", "expected")}
        self.assertIsNone(listed[first]["enrolled_at"])
        self.assertIsNotNone(listed[first]["expected_at"])

        # The device enrolls over ACME with its token: its certificate names the expected serial,
        # the list says enrolled, and expecting it again changes nothing.
        dev.enroll_profile(token=renewed[0]["enroll_token"])
        dev.register()
        order = dev.new_order()
        dev.answer_challenge(order)
        dev.download(dev.finalize(order).json())
        self.assertEqual(self.cert_of(dev)["expected_serial"], first)
        self.assertStatus(dev.request("GET", self.profile_path(renewed[0]["profile_url"])), 403,
                          "the token of an enrolled device (spent)")
        listed = {x["serial_number"]: x for x in self.ctl_json("devices", "expected")}
        self.assertIsNotNone(listed[first]["enrolled_at"])
        self.assertNotEqual(self.row_of(self.ctl("devices", "expected").stdout, first)[2], "-")
        p, rows = self.expect(first)
        self.assertEqual(rows[first], [first, "enrolled", "-"])
        self.assertIn("enrolled already", p.stderr)
        self.assertNotIn("shown only this once", p.stderr)

    def test_device_list_still_works(self):
        dev = self.enrolled_device()
        p = self.ctl("devices")
        self.assertEqual(self.row_of(p.stdout, dev.udid)[1], dev.serial)
        self.assertIn(dev.udid, {d["udid"] for d in self.ctl_json("devices")})
        self.ctl("devices", "--attestation", "pending")

    # -- usage and help --------------------------------------------------------------------
    def test_usage_errors_exit_2(self):
        cases = [
            (["certs", "revoke"], "certs"),
            (["certs", "revoke", "not-hex"], "certs"),
            (["certs", "revoke", "ab", "cd"], "certs"),
            (["certs", "revoke", "ab", "--reason", ""], "certs"),
            (["certs", "revoke", "ab", "--reason", "x" * 65], "certs"),
            (["certs", "revoke", "a" * 65], "certs"),
            (["certs", "UDID", "extra"], "certs"),
            (["certs", "--reason", "lost"], "certs"),
            (["certs", "--bogus"], "certs"),
            (["devices", "expect"], "devices"),
            (["devices", "expect", "BAD-SERIAL"], "devices"),
            (["devices", "expect", "C02AAA", "C02AAA"], "devices"),
            (["devices", "expect", "C02AAA", "--attestation", "failed"], "devices"),
            (["devices", "expected", "extra"], "devices"),
            (["devices", "00008030-001A2C3E0E38802E"], "devices"),
        ]
        for args, command in cases:
            with self.subTest(args=args):
                p = self.ctl(*args, rc=2)
                self.assertEqual(p.stdout, "")
                self.assertIn(f"Try 'vouchctl {command} --help'", p.stderr)
        # Nothing was expected by the refused commands.
        self.assertNotIn("C02AAA", {x["serial_number"]
                                    for x in self.ctl_json("devices", "expected")})

    def test_help(self):
        main = self.ctl("--help").stdout
        self.assertIn("certs [UDID]", main)
        self.assertIn("devices expect SERIAL...", main)
        certs = self.ctl("certs", "--help").stdout
        self.assertIn("vouchctl certs revoke SERIAL [--reason TEXT]", certs)
        self.assertEqual(self.ctl("help", "certs").stdout, certs)
        devices = self.ctl("devices", "--help").stdout
        self.assertIn("vouchctl devices expect SERIAL...", devices)
        self.assertIn("vouchctl devices expected", devices)
        self.assertIn("identity", self.ctl("device", "--help").stdout)
        for text in (main, certs, devices):
            for line in text.splitlines():
                self.assertLess(len(line), 80, line)
