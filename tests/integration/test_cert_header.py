"""Device identity from a TLS-terminating proxy: with `cert_header = X-Client-Cert`, the client
certificate arrives in that header, either as RFC 9440 (`:<base64 DER>:`) or as nginx's
`$ssl_client_escaped_cert` (the PEM, URL-escaped), and the devices send no Mdm-Signature. The same
rules as for signatures apply: the certificate must chain to identity_ca, is bound to the UDID at
Authenticate, and a certificate bound to one device never speaks for another. Without the header,
an Mdm-Signature still works."""

import base64
import datetime
import os
import plistlib
import urllib.parse

from cryptography.hazmat.primitives import serialization

from device import CONNECT_TYPE, TestCA, mdm_signature, raw_exchange
from harness import VouchTestCase, command_plist

HEADER = "X-Client-Cert"


def rfc9440(cert):
    """RFC 9440 Client-Cert: the DER as a structured-field byte sequence."""
    der = cert.public_bytes(serialization.Encoding.DER)
    return ":" + base64.b64encode(der).decode("ascii") + ":"


def nginx_escaped(cert):
    """nginx's $ssl_client_escaped_cert: the PEM escaped with NGX_ESCAPE_URI_COMPONENT, which for
    PEM text (letters, digits, '+', '/', '=', '-', space, newline) gives exactly what
    urllib.parse.quote(pem, safe='') gives: everything but letters, digits and '-' escaped,
    upper-case hex."""
    return urllib.parse.quote(cert.public_bytes(serialization.Encoding.PEM).decode("ascii"),
                              safe="")


FORMS = {"RFC 9440": rfc9440, "nginx escaped PEM": nginx_escaped}


def via(value, name=HEADER):
    """Request options: this header value, and no Mdm-Signature at all."""
    return {"signature": None, "headers": {name: value}}


def as_proxy(cert, form=rfc9440):
    return via(form(cert))


class CertHeaderTest(VouchTestCase):
    vouchd_config = {"cert_header": HEADER}

    def assertAccepted(self, response, what=""):
        """The request got through: 200 (with a command or nothing: the server may have queued
        work of its own, such as an attestation request, on enrollment)."""
        self.assertStatus(response, 200, what)

    def expect_command(self, dev, opts, command_uuid, what):
        """Idle until command_uuid is handed out; any other command the server queued by itself
        is answered NotNow (kept queued, not handed back in this session). Returns the
        command."""
        r = dev.idle(**opts)
        for _ in range(10):
            self.assertTrue(r.status == 200 and r.body,
                            f"{what}: expected command {command_uuid}, got {r!r}")
            cmd = self.assertCommand(r, what=what)
            if cmd["CommandUUID"] == command_uuid:
                return cmd
            r = dev.report("NotNow", cmd["CommandUUID"], _opts=opts)
        self.fail(f"{what}: {command_uuid} not handed out after 10 other commands")

    def enroll_via_header(self, dev, form=rfc9440, what=""):
        opts = as_proxy(dev.cert, form)
        self.assertAccepted(dev.authenticate(**opts), f"{what}: Authenticate via {HEADER}")
        self.assertAccepted(dev.token_update(**opts), f"{what}: TokenUpdate via {HEADER}")
        return dev

    def assertEnrolledAndListed(self, dev, what):
        r = self.vouchd.device(dev.udid)
        self.assertStatus(r, 200, f"{what}: GET /v1/devices/{dev.udid}")
        self.assertIs(r.json().get("enrolled"), True, f"{what}: device object {r.json()!r}")
        r = self.vouchd.admin("GET", "/v1/devices?limit=1000")
        self.assertStatus(r, 200, f"{what}: GET /v1/devices")
        listed = {d["udid"]: d for d in r.json()}
        self.assertIn(dev.udid, listed, f"{what}: not in GET /v1/devices")
        self.assertIs(listed[dev.udid].get("enrolled"), True,
                      f"{what}: listed but not enrolled: {listed[dev.udid]!r}")

    def full_cycle(self, form, what):
        d = self.new_device()
        opts = as_proxy(d.cert, form)
        self.enroll_via_header(d, form, what)
        self.assertAccepted(d.idle(**opts), f"{what}: Idle via {HEADER}")
        self.assertEnrolledAndListed(d, what)
        c = command_plist("ProfileList")
        self.enqueue_ok(d.udid, c)
        self.expect_command(d, opts, c["CommandUUID"], f"{what}: Idle hands out the command")
        self.assertAccepted(d.report("Acknowledged", c["CommandUUID"], _opts=opts,
                                     ProfileList=[]), f"{what}: Acknowledged via {HEADER}")
        self.assertEqual(self.command_status(d.udid, c["CommandUUID"])[0]["status"],
                         "Acknowledged", f"{what}: command status after the report")
        return d

    # -- the two forms ----------------------------------------------------------------------
    def test_rfc9440_form(self):
        self.full_cycle(rfc9440, "RFC 9440")

    def test_nginx_escaped_pem_form(self):
        value = nginx_escaped(self.new_device().cert)
        self.assertIn("%0A", value)
        self.assertNotIn("\n", value)
        d = self.full_cycle(nginx_escaped, "nginx escaped PEM")
        # The same binding whichever form carries the certificate.
        self.assertAccepted(d.idle(**as_proxy(d.cert, rfc9440)),
                            "device enrolled via escaped PEM, Idle via RFC 9440")
        self.assertAccepted(d.idle(**as_proxy(d.cert, nginx_escaped)),
                            "and again via escaped PEM")

    def test_forms_share_one_binding(self):
        d = self.new_device()
        self.assertAccepted(d.authenticate(**as_proxy(d.cert, rfc9440)), "Authenticate, RFC 9440")
        self.assertAccepted(d.token_update(**as_proxy(d.cert, nginx_escaped)),
                            "TokenUpdate, escaped PEM")
        self.assertEnrolledAndListed(d, "enrolled with both forms")
        for name, form in FORMS.items():
            self.assertAccepted(d.idle(**as_proxy(d.cert, form)), f"Idle, {name}")
        # Header names are case-insensitive in HTTP.
        self.assertAccepted(d.idle(**via(rfc9440(d.cert), name=HEADER.lower())),
                            f"Idle with the header named {HEADER.lower()}")

    def test_reauthenticate_rebinds(self):
        d = self.enroll_via_header(self.new_device())
        old_key, old_cert = d.new_identity()
        self.assertAccepted(d.authenticate(**as_proxy(d.cert)), "re-Authenticate, new cert")
        self.assertAccepted(d.token_update(**as_proxy(d.cert, nginx_escaped)),
                            "TokenUpdate with the new cert")
        for name, form in FORMS.items():
            self.assertDeviceRefusal(d.idle(**as_proxy(old_cert, form)),
                                     f"Idle with the old cert after re-binding ({name})")
        self.assertAccepted(d.idle(**as_proxy(d.cert)), "the new cert keeps working")

    # -- refusals ---------------------------------------------------------------------------
    def test_untrusted_ca(self):
        """A CA with the very same subject name as the trusted one, but another key."""
        for name, form in FORMS.items():
            d = self.new_device(ca=self.untrusted_ca)
            self.assertDeviceRefusal(d.authenticate(**as_proxy(d.cert, form)),
                                     f"Authenticate, untrusted CA's cert ({name})")
            self.assertStatus(self.vouchd.device(d.udid), 404,
                              f"refused device must not exist ({name})")
        a = self.enroll_via_header(self.new_device())
        _key, cert = self.untrusted_ca.issue(f"Vouch test device {a.udid}")
        for name, form in FORMS.items():
            self.assertDeviceRefusal(a.idle(**as_proxy(cert, form)),
                                     f"Idle of A, untrusted cert ({name})")
            self.assertDeviceRefusal(a.authenticate(**as_proxy(cert, form)),
                                     f"re-Authenticate of A, untrusted cert ({name})")
        selfsigned = TestCA("Vouch test device self-signed")
        self.assertDeviceRefusal(a.idle(**as_proxy(selfsigned.cert)),
                                 "Idle of A, a self-signed certificate")
        past = datetime.datetime.now(datetime.timezone.utc) - datetime.timedelta(days=30)
        _key, expired = self.ca.issue("expired device", not_before=past, days=2)
        e = self.new_device()
        self.assertDeviceRefusal(e.authenticate(**as_proxy(expired)),
                                 "Authenticate with an expired certificate from the trusted CA")
        self.assertAccepted(a.idle(**as_proxy(a.cert)), "A's own cert still bound")
        self.assertAlive("untrusted certificates in the header")

    def test_garbage_in_header(self):
        a = self.enroll_via_header(self.new_device())
        der = a.cert.public_bytes(serialization.Encoding.DER)
        pem = a.cert.public_bytes(serialization.Encoding.PEM).decode()
        key_pem = a.key.private_bytes(serialization.Encoding.PEM,
                                      serialization.PrivateFormat.PKCS8,
                                      serialization.NoEncryption()).decode()
        body = b"<plist/>"
        b64 = base64.b64encode(der).decode()
        i = len(b64) // 2
        flipped_b64 = b64[:i] + ("A" if b64[i] != "A" else "B") + b64[i + 1:]
        pem_lines = pem.splitlines(keepends=True)
        mid = len(pem_lines) // 2
        line = pem_lines[mid]
        pem_lines[mid] = ("A" if line[0] != "A" else "B") + line[1:]
        cases = {
            "plain text": "garbage",
            "only whitespace": "   ",
            "RFC 9440, nothing between the colons": "::",
            "RFC 9440, one colon": ":",
            "RFC 9440, not base64": ":!!!! not base64 ####:",
            "RFC 9440, random bytes": ":" + base64.b64encode(os.urandom(700)).decode() + ":",
            "RFC 9440, truncated DER": ":" + base64.b64encode(der[: len(der) // 2]).decode()
                                       + ":",
            "RFC 9440, a byte of the DER changed": ":" + flipped_b64 + ":",
            "RFC 9440, a CMS signature instead of a certificate":
                ":" + mdm_signature(body, a.key, a.cert) + ":",
            "escaped PEM, truncated": urllib.parse.quote(pem[: len(pem) // 2], safe=""),
            "escaped PEM, a character changed": urllib.parse.quote("".join(pem_lines), safe=""),
            "escaped PEM of the private key": urllib.parse.quote(key_pem, safe=""),
            "escaped PEM header only": urllib.parse.quote("-----BEGIN CERTIFICATE-----\n"
                                                          "-----END CERTIFICATE-----\n", safe=""),
            "broken percent escapes": "-----BEGIN%20CERTIFICATE-----%0%ZZ%",
            "huge": ":" + base64.b64encode(os.urandom(40 * 1024)).decode() + ":",
        }
        for name, value in cases.items():
            r = a.idle(**via(value))
            self.assertNotEqual(r.status, 401, f"{name}: {r!r}")
            self.assertTrue(400 <= r.status < 500, f"{name}: expected 4xx, got {r!r}")
        n = self.new_device()
        for name in ("plain text", "RFC 9440, random bytes", "escaped PEM, truncated"):
            r = n.authenticate(**via(cases[name]))
            self.assertNotEqual(r.status, 401, f"Authenticate, {name}: {r!r}")
            self.assertTrue(400 <= r.status < 500, f"Authenticate, {name}: expected 4xx, "
                                                   f"got {r!r}")
        self.assertStatus(self.vouchd.device(n.udid), 404, "refused device must not exist")
        self.assertAccepted(a.idle(**as_proxy(a.cert)), "A keeps working")
        self.assertAlive("garbage certificate headers")

    def test_other_devices_cert_claiming_udid(self):
        a = self.enroll_via_header(self.new_device(), rfc9440, "A")
        b = self.enroll_via_header(self.new_device(), nginx_escaped, "B")
        c = command_plist("ProfileList")
        self.enqueue_ok(a.udid, c)
        for form_name, form in FORMS.items():
            opts = as_proxy(b.cert, form)
            for name, r in [
                ("Authenticate for A with B's cert", a.authenticate(**opts)),
                ("TokenUpdate for A with B's cert", a.token_update(**opts)),
                ("Idle for A with B's cert", a.idle(**opts)),
                ("Acknowledged for A with B's cert",
                 a.report("Acknowledged", c["CommandUUID"], _opts=opts, ProfileList=[])),
                ("CheckOut for A with B's cert", a.checkout(**opts)),
            ]:
                self.assertDeviceRefusal(r, f"{name} ({form_name})")
        # A never-bound certificate of the trusted CA is not A's either.
        stranger = self.new_device()
        self.assertDeviceRefusal(a.idle(**as_proxy(stranger.cert)), "Idle for A, unbound cert")
        # A's certificate cannot enroll another UDID.
        n = self.new_device()
        self.assertDeviceRefusal(n.authenticate(**as_proxy(a.cert)),
                                 "Authenticate for a new UDID with A's bound cert")
        self.assertStatus(self.vouchd.device(n.udid), 404, "refused device must not exist")
        # A is untouched: still enrolled, its command still queued and handed to A only.
        self.assertIs(self.vouchd.device(a.udid).json()["enrolled"], True)
        self.assertEqual(self.command_status(a.udid, c["CommandUUID"])[0]["status"], "queued")
        self.expect_command(a, as_proxy(a.cert), c["CommandUUID"], "A's own Idle")
        self.assertAccepted(b.idle(**as_proxy(b.cert, nginx_escaped)), "B's own Idle")

    def test_repeated_header_is_refused(self):
        """Two X-Client-Cert field lines with different certificates: which one did the proxy
        set? A proxy that appends its header instead of replacing the client's would otherwise
        let device B claim A by sending A's (public) certificate first. RFC 9440 makes the field
        a single sf-binary Item; two field lines combine to "x, y", which does not parse as one."""
        a = self.enroll_via_header(self.new_device(), what="A")
        b = self.enroll_via_header(self.new_device(), what="B")
        body = plistlib.dumps(a.report_message("Idle"))

        def put(values):
            lines = "".join(f"{HEADER}: {v}\r\n" for v in values)
            request = (f"PUT /mdm/connect HTTP/1.1\r\nHost: {self.vouchd.host}\r\n"
                       f"Content-Type: {CONNECT_TYPE}\r\nContent-Length: {len(body)}\r\n"
                       f"Connection: close\r\n{lines}\r\n").encode() + body
            return raw_exchange(self.vouchd.host, self.vouchd.port, request)

        status, reply = put([rfc9440(a.cert)])
        self.assertEqual(status, 200, f"control: A's Idle with one header line: {reply[:300]!r}")
        wrong = []
        for name, values in [
            ("A's cert, then B's (B's proxy appended its own)", [rfc9440(a.cert), rfc9440(b.cert)]),
            ("B's cert, then A's", [rfc9440(b.cert), rfc9440(a.cert)]),
            ("A's cert as escaped PEM, then B's", [nginx_escaped(a.cert), nginx_escaped(b.cert)]),
        ]:
            status, reply = put(values)
            if status not in (400, 403):
                wrong.append(f"  {name}: got {reply[:200]!r}")
        self.assertEqual(wrong, [], f"Idle claiming A with two {HEADER} lines: expected 403 (or "
                                    "400), never 401 or 2xx:\n" + "\n".join(wrong))
        self.assertAccepted(a.idle(**as_proxy(a.cert)), "A keeps working")

    # -- Mdm-Signature still works -----------------------------------------------------------
    def test_signature_without_header(self):
        # Enrolled with Mdm-Signature only (Device's default), no header.
        s = self.enrolled_device()
        self.assertAccepted(s.idle(), "Idle with Mdm-Signature, no header")
        self.assertEnrolledAndListed(s, "enrolled with Mdm-Signature")
        # The same certificate through the proxy header is the same binding.
        for name, form in FORMS.items():
            self.assertAccepted(s.idle(**as_proxy(s.cert, form)),
                                f"signature-enrolled device, Idle via {HEADER} ({name})")
        # And the other way round.
        h = self.enroll_via_header(self.new_device())
        self.assertAccepted(h.idle(), "header-enrolled device, Idle with Mdm-Signature")
        c = command_plist("ProfileList")
        self.enqueue_ok(h.udid, c)
        self.expect_command(h, {}, c["CommandUUID"], "command via a signed Idle")
        self.assertAccepted(h.report("Acknowledged", c["CommandUUID"], ProfileList=[]),
                            "signed Acknowledged")
        # The signature path keeps its checks: another device's signature is refused.
        self.assertDeviceRefusal(h.idle(signer=s.identity), "Idle for H signed by S")
        self.assertDeviceRefusal(h.idle(signature=None), "no header and no signature")
