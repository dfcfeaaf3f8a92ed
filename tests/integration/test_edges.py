"""The edges of the HTTP front, where a `verified` verdict could otherwise be borrowed: who may say
who the client is, which paths reach a handler, and the settings vouchd refuses to start with.

- The client-certificate header (`cert_header`) and `X-Forwarded-For` are believed only from a
  peer in `trusted_proxies`; from anyone else the request is refused (403 `untrusted_proxy`,
  counted) before any handler reads it.
- The admin login limit keys on the real client: behind a trusted proxy, the right-most
  `X-Forwarded-For` address that is not itself a proxy.
- A path with dot segments, `//`, a backslash or an encoded '/', '\\', '.' or NUL is 400
  (`bad_path`, counted) before routing.
- vouchd does not start with an admin_token shorter than 32 characters, with an http:// web-hook
  receiver that takes mdm.TokenUpdate (the UnlockToken) unless `webhook_allow_http = true`, or
  with `cert_header` but no `trusted_proxies`.

The tests play the proxy themselves: requests from 127.0.0.1 come "from the proxy"; requests
bound to the source address 127.0.0.2 (also loopback on Linux) come from a peer that is not
trusted."""

import base64
import http.client
import plistlib
import re
import time

import cleanup
import test_startup
from cryptography.hazmat.primitives import serialization
from device import CHECKIN_TYPE, CONNECT_TYPE, Response, mdm_signature, raw_exchange
from harness import VOUCHD, VouchTestCase, suite

HEADER = "X-Client-Cert"
PROXY = "127.0.0.1"      # in trusted_proxies
STRANGER = "127.0.0.2"   # not in trusted_proxies


def rfc9440(cert):
    der = cert.public_bytes(serialization.Encoding.DER)
    return ":" + base64.b64encode(der).decode("ascii") + ":"


def request_from(server, source, method, path, body=None, headers=None):
    """One request on its own connection from the local address `source`."""
    conn = http.client.HTTPConnection(server.host, server.port, timeout=30,
                                      source_address=(source, 0))
    try:
        conn.request(method, path, body=body, headers=headers or {})
        resp = conn.getresponse()
        return Response(resp.status, resp.reason, resp.getheaders(), resp.read())
    finally:
        conn.close()


def rejections(server, reason):
    """vouch_rejections_total{reason=...} now (0 when absent)."""
    pattern = re.compile(r'^vouch_rejections_total\{reason="' + re.escape(reason) +
                         r'"\} (\d+)$', re.M)
    m = pattern.search(server.metrics().text())
    return int(m.group(1)) if m else 0


class EdgeCase(VouchTestCase):

    def assertRefused(self, response, status, reason, what):
        """Refused by the front: this status, text/plain, the reason code as the body."""
        self.assertEqual(response.status, status, f"{what}: {response!r}")
        self.assertEqual(response.text().strip(), reason, f"{what}: {response!r}")

    def assertCounted(self, reason, before, n, what):
        after = rejections(self.vouchd, reason)
        self.assertEqual(after - before, n, f"{what}: vouch_rejections_total{{reason="
                                            f"\"{reason}\"}} went from {before} to {after}")


class UntrustedProxyHeaderTest(EdgeCase):
    """cert_header and X-Forwarded-For from a peer that is not in trusted_proxies."""
    vouchd_config = {"cert_header": HEADER, "trusted_proxies": PROXY, "admin_login_limit": "0"}

    def checkin_from(self, source, dev, message, headers, content_type=CHECKIN_TYPE,
                     path="/mdm/checkin"):
        h = {"Content-Type": content_type}
        h.update(headers)
        return request_from(self.vouchd, source, "PUT", path, body=plistlib.dumps(message),
                            headers=h)

    def test_cert_header_from_trusted_proxy_works(self):
        d = self.new_device()
        opts = {"signature": None, "headers": {HEADER: rfc9440(d.cert)}}
        self.assertStatus(d.authenticate(**opts), 200, "Authenticate via the trusted proxy")
        self.assertStatus(d.token_update(**opts), 200, "TokenUpdate via the trusted proxy")
        self.assertStatus(d.idle(**opts), 200, "Idle via the trusted proxy")
        self.assertIs(self.vouchd.device(d.udid).json()["enrolled"], True)

    def test_cert_header_from_untrusted_peer_is_refused(self):
        before = rejections(self.vouchd, "untrusted_proxy")
        offset = self.vouchd.log_size()
        # A new device claiming a certificate in the header, sent straight to vouchd.
        n = self.new_device()
        r = self.checkin_from(STRANGER, n, n.authenticate_message(), {HEADER: rfc9440(n.cert)})
        self.assertRefused(r, 403, "untrusted_proxy", "Authenticate with the header, untrusted "
                                                      "peer")
        self.assertStatus(self.vouchd.device(n.udid), 404, "the refused device must not exist")

        # An enrolled device's public certificate in the header: whoever can reach vouchd
        # directly would otherwise speak for it.
        a = self.enrolled_device()
        sent = 1
        for name, headers in [
            ("its certificate", {HEADER: rfc9440(a.cert)}),
            ("the header named in lower case", {HEADER.lower(): rfc9440(a.cert)}),
            ("an empty header", {HEADER: ""}),
            ("garbage in the header", {HEADER: "garbage"}),
        ]:
            r = self.checkin_from(STRANGER, a, a.report_message("Idle"), headers,
                                  content_type=CONNECT_TYPE, path="/mdm/connect")
            self.assertRefused(r, 403, "untrusted_proxy", f"Idle with {name}, untrusted peer")
            sent += 1
        # A correct Mdm-Signature does not make the header acceptable from that peer.
        body = plistlib.dumps(a.report_message("Idle"))
        r = a.send("/mdm/connect", body, CONNECT_TYPE, headers={HEADER: rfc9440(a.cert)})
        self.assertStatus(r, 200, "control: the same from the trusted proxy")
        r = request_from(self.vouchd, STRANGER, "PUT", "/mdm/connect", body=body,
                         headers={"Content-Type": CONNECT_TYPE, HEADER: rfc9440(a.cert),
                                  "Mdm-Signature": mdm_signature(body, a.key, a.cert)})
        self.assertRefused(r, 403, "untrusted_proxy", "signed Idle with the header, untrusted "
                                                      "peer")
        sent += 1
        # Every route, not only the device ones.
        for method, path in [("GET", "/healthz"), ("GET", "/v1/devices"), ("GET", "/nowhere")]:
            r = request_from(self.vouchd, STRANGER, method, path,
                             headers={HEADER: rfc9440(a.cert),
                                      "Authorization": f"Bearer {self.vouchd.admin_token}"})
            self.assertRefused(r, 403, "untrusted_proxy", f"{method} {path} with the header")
            sent += 1
        self.assertCounted("untrusted_proxy", before, sent, "the refusals")
        log = self.vouchd.log_tail(200, since=offset)
        self.assertIn("trusted_proxies", log, "the refusal is logged, naming trusted_proxies")
        self.assertIn(STRANGER, log, "the refusal's log line names the peer")

        # The untrusted peer may still talk to vouchd directly, signing as a device does.
        r = request_from(self.vouchd, STRANGER, "PUT", "/mdm/connect", body=body,
                         headers={"Content-Type": CONNECT_TYPE,
                                  "Mdm-Signature": mdm_signature(body, a.key, a.cert)})
        self.assertStatus(r, 200, "a signed Idle without the header from the untrusted peer")
        self.assertAlive("untrusted proxy headers")

    def test_forwarded_for_from_untrusted_peer_is_refused(self):
        before = rejections(self.vouchd, "untrusted_proxy")
        a = self.enrolled_device()
        body = plistlib.dumps(a.report_message("Idle"))
        signed = {"Content-Type": CONNECT_TYPE,
                  "Mdm-Signature": mdm_signature(body, a.key, a.cert)}
        token = {"Authorization": f"Bearer {self.vouchd.admin_token}"}
        cases = [
            ("signed Idle", "PUT", "/mdm/connect", body, signed),
            ("admin request with the right token", "GET", "/v1/devices", None, token),
            ("/healthz", "GET", "/healthz", None, {}),
            ("/metrics", "GET", "/metrics", None, {}),
        ]
        for xff in ("198.51.100.1", "127.0.0.1", "", "garbage"):
            for name, method, path, data, headers in cases:
                h = dict(headers, **{"X-Forwarded-For": xff})
                r = request_from(self.vouchd, STRANGER, method, path, body=data, headers=h)
                self.assertRefused(r, 403, "untrusted_proxy",
                                   f"{name} with X-Forwarded-For: {xff!r}, untrusted peer")
        self.assertCounted("untrusted_proxy", before, 4 * len(cases), "the refusals")
        # The same requests without the header from that peer, and with it from the proxy.
        for name, method, path, data, headers in cases:
            r = request_from(self.vouchd, STRANGER, method, path, body=data, headers=headers)
            self.assertStatus(r, 200, f"{name} without X-Forwarded-For, untrusted peer")
            h = dict(headers, **{"X-Forwarded-For": "198.51.100.1"})
            r = request_from(self.vouchd, PROXY, method, path, body=data, headers=h)
            self.assertStatus(r, 200, f"{name} with X-Forwarded-For from the trusted proxy")

    def test_unreadable_forwarded_for_from_trusted_proxy(self):
        """The address a trusted proxy vouches for must be an address."""
        before = rejections(self.vouchd, "bad_forwarded_for")
        for xff in ("garbage", "198.51.100.1, garbage", "198.51.100.1:99999", "[2001:db8::1"):
            r = request_from(self.vouchd, PROXY, "GET", "/healthz",
                             headers={"X-Forwarded-For": xff})
            self.assertRefused(r, 400, "bad_forwarded_for", f"X-Forwarded-For: {xff!r}")
        self.assertCounted("bad_forwarded_for", before, 4, "the refusals")
        # What the client wrote left of the address the proxy added is never read.
        for xff in ("garbage, 198.51.100.1", "[2001:db8::1]:443", "198.51.100.1:5678"):
            r = request_from(self.vouchd, PROXY, "GET", "/healthz",
                             headers={"X-Forwarded-For": xff})
            self.assertStatus(r, 200, f"X-Forwarded-For: {xff!r}")


class ForwardedLoginLimitTest(EdgeCase):
    """Behind a trusted proxy, the admin login limit counts per forwarded client: ten wrong
    tokens from client A lock out A, not client B behind the same proxy."""
    vouchd_config = {"trusted_proxies": PROXY}  # admin_login_limit: the default, 10

    def admin_via_proxy(self, client, token, xff=None):
        headers = {"X-Forwarded-For": xff if xff is not None else client}
        if token is not None:
            headers["Authorization"] = f"Bearer {token}"
        return request_from(self.vouchd, PROXY, "GET", "/v1/devices", headers=headers)

    def test_limit_keys_on_the_forwarded_client(self):
        a, b = "198.51.100.1", "198.51.100.2"
        right = self.vouchd.admin_token
        offset = self.vouchd.log_size()
        for i in range(10):
            self.assertStatus(self.admin_via_proxy(a, f"guess-{i}"), 401, f"A's guess {i}")
        r = self.admin_via_proxy(a, right)
        self.assertStatus(r, 429, "A after 10 wrong tokens, with the right one")
        self.assertIsNotNone(r.header("Retry-After"), "429 without Retry-After")
        # A cannot get out by writing another address in front of the proxy's (nginx appends
        # the real one).
        self.assertStatus(self.admin_via_proxy(a, right, xff=f"{b}, {a}"), 429,
                          "A naming B left of its own address")
        self.assertStatus(self.admin_via_proxy(a, right, xff=f"{b}, {a}, {PROXY}"), 429,
                          "A behind two proxies")
        # B, and the proxy itself, are not locked out.
        self.assertStatus(self.admin_via_proxy(b, right), 200, "B behind the same proxy")
        r = request_from(self.vouchd, PROXY, "GET", "/v1/devices",
                         headers={"Authorization": f"Bearer {right}"})
        self.assertStatus(r, 200, "the proxy's own request, without X-Forwarded-For")
        log = self.vouchd.log_tail(200, since=offset)
        self.assertIn(f"failed admin logins from {a}", log, "the lock-out names client A")
        self.assertIn(f"{a} via {PROXY}:", log, "refusals name the client and the proxy")

    def test_ipv6_clients_are_one_address_however_written(self):
        right = self.vouchd.admin_token
        for i in range(10):
            self.assertStatus(self.admin_via_proxy("2001:db8::a", f"guess-{i}"), 401,
                              f"guess {i}")
        for written in ("2001:DB8:0:0::A", "[2001:db8::a]:443", "2001:db8:0000::000a"):
            self.assertStatus(self.admin_via_proxy(written, right), 429,
                              f"the same client written {written}")
        self.assertStatus(self.admin_via_proxy("2001:db8::b", right), 200, "another client")


class PathTest(EdgeCase):
    """Paths two readers could take for different resources are refused before routing."""

    BAD = [
        "/v1/../mdm/x",
        "/mdm/%2e%2e/x",
        "/mdm/%2E%2E/checkin",
        "/mdm//checkin",
        "//mdm/checkin",
        "/mdm/checkin//",
        "/mdm%2Fcheckin",
        "/mdm%2fcheckin",
        "/mdm/checkin%00",
        "/mdm/%00",
        "/mdm/./checkin",
        "/mdm/checkin/.",
        "/mdm/checkin/..",
        "/mdm/%2e/checkin",
        "/mdm\\checkin",
        "/mdm%5ccheckin",
        "/mdm%5Ccheckin",
        "/mdm/check%zzin",
        "/mdm/checkin%",
        "/v1/devices/%2E%2E",
        "/v1/devices/..%2F..%2Fenqueue",
        "/v1/devices/X/../../enqueue/X",
        "/v1/enqueue/%2e",
        "/healthz/..",
    ]

    def raw(self, method, target, headers=b"", body=b""):
        request = (f"{method} ".encode() + target + b" HTTP/1.1\r\nHost: x\r\n"
                   b"Connection: close\r\nContent-Length: " + str(len(body)).encode() +
                   b"\r\n" + headers + b"\r\n" + body)
        return raw_exchange(self.vouchd.host, self.vouchd.port, request)

    def test_bad_paths_are_400_before_routing(self):
        before = rejections(self.vouchd, "bad_path")
        dev = self.enrolled_device()
        body = plistlib.dumps(dev.report_message("Idle"))
        token = f"Authorization: Bearer {self.vouchd.admin_token}\r\n".encode()
        wrong = []
        for path in self.BAD:
            for method, headers in [("GET", token), ("PUT", token)]:
                status, reply = self.raw(method, path.encode(), headers,
                                         body if method == "PUT" else b"")
                if status != 400 or not reply.rstrip().endswith(b"bad_path"):
                    wrong.append(f"  {method} {path}: {reply[:160]!r}")
        self.assertEqual(wrong, [], "expected 400 bad_path:\n" + "\n".join(wrong))
        self.assertCounted("bad_path", before, 2 * len(self.BAD), "the refusals")
        self.assertAlive("bad paths")

    def test_raw_nul_and_control_bytes(self):
        """A raw NUL cuts the request line where libevent reads it: 400 either way."""
        for target in (b"/mdm/check\x00in", b"/mdm/checkin\x00/../x", b"/mdm\x00"):
            status, reply = self.raw("GET", target)
            self.assertEqual(status, 400, f"GET {target!r}: {reply[:200]!r}")
        self.assertAlive("raw NUL in the path")

    def test_dot_segments_never_reach_a_handler(self):
        """/v1/../mdm/x used to reach the admin API (which answered 401 or 404), and
        /v1/devices/X/../../enqueue/X its device route."""
        dev = self.enrolled_device()
        for path in ("/v1/../mdm/x", "/v1/devices/%2e%2e/commands",
                     f"/v1/devices/{dev.udid}/../{dev.udid}/commands"):
            r = self.vouchd.admin("GET", path)
            self.assertRefused(r, 400, "bad_path", f"GET {path} with the admin token")
            r = self.vouchd.admin("GET", path, token=None)
            self.assertRefused(r, 400, "bad_path", f"GET {path} without a token")

    def test_good_paths_still_route(self):
        dev = self.enrolled_device()
        # Escapes that decode to anything else are fine (an id is percent-decoded).
        escaped = "".join(f"%{ord(c):02X}" for c in dev.udid)
        self.assertStatus(self.vouchd.admin("GET", f"/v1/devices/{escaped}"), 200,
                          "a UDID percent-encoded byte for byte")
        self.assertStatus(self.vouchd.admin("GET", "/v1/devices/"), 200, "trailing slash")
        self.assertStatus(self.vouchd.admin("GET", "/v1/devices?after=../x&limit=5"), 200,
                          "dots in the query are not the path")
        self.assertStatus(self.vouchd.admin("GET", "/v1/devices/a.b..c"), 404,
                          "dots inside a segment")
        self.assertStatus(self.vouchd.request("GET", "/nowhere/..x"), 404, "not a dot segment")
        self.assertEmpty200(dev.settle_attestation(), "the enrollment's attestation request")
        self.assertEmpty200(dev.idle(), "a normal Idle")


class StartupRefusalTest(test_startup.StartupCase):
    """Settings vouchd refuses at start: it exits 1 and its message names the key."""

    def refuses(self, name, extra, key, env=None, admin_token=None):
        v = self.new_vouchd(name, dbname=self.dbname, extra=extra)
        if admin_token is not None:
            v.admin_token = admin_token
        v.write_config()
        p = test_startup.Spawned([VOUCHD, "--config", v.config_path], env=env, name=name)
        deadline = time.monotonic() + test_startup.EXIT_DEADLINE
        status = None
        while status is None:
            status = p.wait(0.1)
            if status is None and test_startup.healthz_status(v.host, v.port) == 200:
                p.kill()
                return f"{name}: vouchd started instead of refusing\n{p.describe()}"
            if status is None and time.monotonic() >= deadline:
                p.kill()
                return f"{name}: vouchd did not exit\n{p.describe()}"
        cleanup.unregister(p._key)
        message = p.stderr.replace(v.config_path, "<config>")
        if status != 1:
            return f"{name}: exit status {status}, expected 1\n{p.describe()}"
        for k in key if isinstance(key, tuple) else (key,):
            if k not in message:
                return f"{name}: the message does not name {k}\n{p.describe()}"
        return None

    def test_refused_settings(self):
        self.dbname = suite().new_database("edges_refusals")
        hook = "http://127.0.0.1:9/hook"
        cases = [
            ("short admin_token", {}, "admin_token", None, "change-me"),
            ("admin_token of 31 characters", {}, ("admin_token", "31"), None, "a" * 31),
            ("short VOUCH_ADMIN_TOKEN", {}, "admin_token", {"VOUCH_ADMIN_TOKEN": "short"},
             None),
            ("http receiver taking every topic, no webhook_allow_http",
             {"webhook_url": hook, "webhook_secret": "k", "webhook_allow_http": None},
             ("webhook_url", "webhook_allow_http"), None, None),
            ("http receiver taking mdm.TokenUpdate, webhook_allow_http = false",
             {"webhook_url": hook, "webhook_secret": "k", "webhook_allow_http": "false",
              "webhook_topics": "mdm.TokenUpdate"},
             ("webhook_url", "webhook_allow_http"), None, None),
            ("cert_header without trusted_proxies",
             {"cert_header": HEADER, "trusted_proxies": None}, ("cert_header", "trusted_proxies"),
             None, None),
            ("trusted_proxies = localhost", {"trusted_proxies": "localhost"}, "trusted_proxies",
             None, None),
            ("trusted_proxies = 10.0.0.0/33", {"trusted_proxies": "10.0.0.0/33"},
             "trusted_proxies", None, None),
        ]
        problems = []
        for i, (what, extra, key, env, token) in enumerate(cases):
            problem = self.refuses(f"edges-refuse{i}", extra, key, env=env, admin_token=token)
            if problem:
                problems.append(problem)
        self.assertEqual(problems, [], f"{len(problems)} of {len(cases)} did not refuse "
                                       "properly:\n\n" + "\n\n".join(problems))
        self.assertFalse(self.table_exists(self.dbname, "schema_migrations"),
                         "a vouchd that refused its configuration applied migrations")

        # The same receiver starts with webhook_allow_http = true, or without mdm.TokenUpdate.
        for name, extra in [
            ("allowed", {"webhook_url": hook, "webhook_secret": "k",
                         "webhook_allow_http": "true"}),
            ("no TokenUpdate", {"webhook_url": hook, "webhook_secret": "k",
                                "webhook_allow_http": None,
                                "webhook_topics": "attestation.verified attestation.failed"}),
        ]:
            v = self.new_vouchd(f"edges-start-{name.replace(' ', '-')}", dbname=self.dbname,
                                extra=extra)
            test_startup.launch(v)
            self.wait_healthy(v, what=f"http receiver, {name}")
            self.assertEqual(v.stop(), 0, f"{name}: exit status after SIGTERM\n" + v.log_tail())
