"""The nginx gate (issue 19, docs/trust.md): a REAL nginx (Debian's nginx-light, /usr/sbin/nginx)
on loopback, configured from deploy/nginx-gate.conf itself (only addresses, paths, the token and
the policy name are replaced), in front of a tiny web application, asking vouchd with
auth_request whether the client certificate of each TLS request may in.

What must hold:
  * a device with a verified, fresh attestation whose certificate Vouch knows gets the
    protected page, and the application sees Vouch-Decision: allow and the device's serial
    (and never what the client claimed in those headers itself);
  * 403 with the reason in Vouch-Reasons (and on the page) for a failed, expired, missing or
    cached (require = verified fresh) verdict, an unknown certificate, an OS under the minimum,
    a revoked ACME identity (require_hardware_bound_identity), and a non-hardware-bound one;
  * nginx keeps an allow no longer than vouchd's Cache-Control says (bounded by valid_until):
    a verdict that expires while nginx runs turns the very next request after the expiry into a
    403, even though an allow was cached a moment before; and it does keep it (a second request
    within max-age does not ask vouchd again).
"""

import datetime
import http.client
import http.server
import ipaddress
import json
import os
import re
import secrets
import signal
import socket
import ssl
import subprocess
import threading

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

import cleanup
import harness
import pg
from acme_device import b64url
from device import Response
from harness import REPO, suite, wait_for
from test_metrics import parse_metrics
from test_cert_header import nginx_escaped
from test_scheduler import SchedulerCase, db_clock, set_clock

try:
    from test_acme import AcmeTestCase, der_of
except ImportError:  # python3-h2 (the stand-in APNs) is imported through test_push
    AcmeTestCase = None

NGINX = os.environ.get("VOUCH_NGINX", "/usr/sbin/nginx")
GATE_CONF = os.path.join(REPO, "deploy", "nginx-gate.conf")
DAY = datetime.timedelta(days=1)
# The example values of deploy/nginx-gate.conf that a test run replaces; each must be there.
EXAMPLE_VOUCHD = "server 127.0.0.1:8080;"
EXAMPLE_APP = "server 127.0.0.1:3000;"
EXAMPLE_LISTEN = "listen 443 ssl http2;"
EXAMPLE_CACHE = "proxy_cache_path /var/cache/nginx/vouch-gate "
EXAMPLE_TOKEN = "vouch_REPLACE_WITH_THE_TRUST_TOKEN"
EXAMPLE_CERT = "/etc/ssl/app.example.com/fullchain.pem"
EXAMPLE_KEY = "/etc/ssl/app.example.com/privkey.pem"
EXAMPLE_CLIENT_CAS = "/etc/vouch/device-identity-cas.pem"
EXAMPLE_TRUST_PATH = "proxy_pass http://vouchd_trust/v1/trust/web/nginx;"
EXAMPLE_CACHE_KEY = '"web $ssl_client_fingerprint"'


def nginx_missing():
    """Why this nginx cannot run the gate, or None."""
    if not (os.path.isfile(NGINX) and os.access(NGINX, os.X_OK)):
        return f"nginx ({NGINX}; apt-get install nginx-light)"
    v = subprocess.run([NGINX, "-V"], capture_output=True, text=True, timeout=30)
    text = v.stdout + v.stderr
    for module in ("--with-http_auth_request_module", "--with-http_ssl_module"):
        if module not in text:
            return f"{NGINX} built without {module}"
    return None


def write_pem(path, *objects):
    """Certificates and private keys, PEM, in one file (0600)."""
    with open(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "wb") as f:
        for obj in objects:
            if isinstance(obj, bytes):
                f.write(obj if obj.endswith(b"\n") else obj + b"\n")
            elif isinstance(obj, x509.Certificate):
                f.write(obj.public_bytes(serialization.Encoding.PEM))
            else:
                f.write(obj.private_bytes(serialization.Encoding.PEM,
                                          serialization.PrivateFormat.PKCS8,
                                          serialization.NoEncryption()))
    return path


def server_identity(directory):
    """A CA and a server certificate for 127.0.0.1 signed by it: (ca path, cert path, key path)."""
    now = datetime.datetime.now(datetime.timezone.utc)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Vouch gate test server CA")])
    ca = (x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name)
          .public_key(ca_key.public_key()).serial_number(x509.random_serial_number())
          .not_valid_before(now - DAY).not_valid_after(now + 30 * DAY)
          .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
          .sign(ca_key, hashes.SHA256()))
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")]))
            .issuer_name(ca_name).public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - DAY).not_valid_after(now + 30 * DAY)
            .add_extension(x509.SubjectAlternativeName(
                [x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]),
                           critical=False)
            .sign(ca_key, hashes.SHA256()))
    return (write_pem(os.path.join(directory, "server-ca.pem"), ca),
            write_pem(os.path.join(directory, "server.pem"), cert, ca),
            write_pem(os.path.join(directory, "server.key"), key))


# -- the protected web application ---------------------------------------------------------------
class ProtectedApp:
    """A web application on loopback: 200 "protected page" and, as JSON, the Vouch-* headers it
    got. Remembers every request it served."""

    def __init__(self):
        self.port = pg.free_port()
        self.lock = threading.Lock()
        self.seen = []  # {header name (lower case): value} of the Vouch-* headers, per request
        self.server = None
        self.thread = None

    def start(self):
        app = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self):
                vouch = {k.lower(): v for k, v in self.headers.items()
                         if k.lower().startswith("vouch-")}
                with app.lock:
                    app.seen.append(vouch)
                body = json.dumps({"page": "protected page", "path": self.path,
                                   "vouch": vouch}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        class Server(http.server.ThreadingHTTPServer):
            daemon_threads = True
            allow_reuse_address = True

        self.server = Server(("127.0.0.1", self.port), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()
        return self

    def served(self):
        with self.lock:
            return len(self.seen)

    def stop(self):
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()
            self.server = None


# -- nginx -----------------------------------------------------------------------------------------
class Nginx:
    """nginx with deploy/nginx-gate.conf, its example values replaced, included from a main
    configuration of the test's own (prefix, temp and cache directories under the run
    directory, error log to a file, no daemon)."""

    def __init__(self, name, vouchd, app, token, client_cas, policy="web"):
        self.dir = os.path.join(suite().run_dir, f"nginx-{name}-{secrets.token_hex(3)}")
        os.makedirs(self.dir)
        self.port = pg.free_port()
        self.vouchd, self.app, self.token, self.policy = vouchd, app, token, policy
        self.client_cas = write_pem(os.path.join(self.dir, "device-identity-cas.pem"),
                                    *client_cas)
        self.server_ca, self.server_cert, self.server_key = server_identity(self.dir)
        self.error_log = os.path.join(self.dir, "error.log")
        self.conf = os.path.join(self.dir, "nginx.conf")
        self.proc = None
        self._cleanup_key = None

    def gate_config(self):
        with open(GATE_CONF) as f:
            text = f.read()
        replacements = [
            (EXAMPLE_LISTEN, f"listen 127.0.0.1:{self.port} ssl http2;"),
            (EXAMPLE_VOUCHD, f"server 127.0.0.1:{self.vouchd.port};"),
            (EXAMPLE_APP, f"server 127.0.0.1:{self.app.port};"),
            (EXAMPLE_CACHE, f"proxy_cache_path {os.path.join(self.dir, 'cache')} "),
            (EXAMPLE_TOKEN, self.token),
            (EXAMPLE_CERT, self.server_cert),
            (EXAMPLE_KEY, self.server_key),
            (EXAMPLE_CLIENT_CAS, self.client_cas),
            (EXAMPLE_TRUST_PATH, f"proxy_pass http://vouchd_trust/v1/trust/{self.policy}/nginx;"),
            (EXAMPLE_CACHE_KEY, f'"{self.policy} $ssl_client_fingerprint"'),
        ]
        for old, new in replacements:
            if text.count(old) != 1:
                raise AssertionError(f"{GATE_CONF}: the example value {old!r} is there "
                                     f"{text.count(old)} times, not once: update this test")
            text = text.replace(old, new)
        return text

    def write_config(self):
        gate = os.path.join(self.dir, "gate.conf")
        with open(gate, "w") as f:
            f.write(self.gate_config())
        temp = {k: os.path.join(self.dir, k) for k in ("body", "proxy", "fastcgi", "uwsgi",
                                                      "scgi")}
        for d in temp.values():
            os.makedirs(d, exist_ok=True)
        # As root (CI containers), the workers stay root: the run directory is root's.
        user = "user root;\n" if os.geteuid() == 0 else ""
        with open(self.conf, "w") as f:
            f.write(f"""# generated by tests/integration/test_trust_nginx.py
daemon off;
{user}worker_processes 1;
pid {self.dir}/nginx.pid;
error_log {self.error_log} info;
events {{ worker_connections 256; }}
http {{
    access_log {self.dir}/access.log;
    client_body_temp_path {temp['body']};
    proxy_temp_path {temp['proxy']};
    fastcgi_temp_path {temp['fastcgi']};
    uwsgi_temp_path {temp['uwsgi']};
    scgi_temp_path {temp['scgi']};
    include {gate};
}}
""")

    def start(self):
        self.write_config()
        t = subprocess.run([NGINX, "-t", "-p", self.dir, "-c", self.conf, "-e", self.error_log],
                           capture_output=True, text=True, timeout=30)
        if t.returncode != 0:
            raise AssertionError(f"nginx -t refuses the gate configuration:\n{t.stderr}")
        self.proc = subprocess.Popen([NGINX, "-p", self.dir, "-c", self.conf, "-e",
                                      self.error_log], stdin=subprocess.DEVNULL,
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self._cleanup_key = cleanup.register(self.kill)

        def listening():
            if self.proc.poll() is not None:
                raise AssertionError(f"nginx exited with {self.proc.returncode}\n"
                                     + self.log_tail())
            with socket.create_connection(("127.0.0.1", self.port), timeout=1):
                return True
        wait_for(listening, 20, what="nginx listening")
        return self

    def log_tail(self, lines=30):
        try:
            with open(self.error_log, errors="replace") as f:
                text = f.read().splitlines()
        except OSError:
            return "(no nginx error log)"
        return f"--- {self.error_log} ---\n" + "\n".join(text[-lines:])

    def kill(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()

    def stop(self):
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGQUIT)  # graceful
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.kill()
        self.proc = None
        if self._cleanup_key is not None:
            cleanup.unregister(self._cleanup_key)
            self._cleanup_key = None

    def get(self, identity=None, path="/", headers=None, timeout=30):
        """GET over TLS, presenting identity = (key, cert) as the client certificate."""
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.load_verify_locations(self.server_ca)
        if identity is not None:
            key, cert = identity
            path_pem = write_pem(os.path.join(self.dir, f"client-{secrets.token_hex(4)}.pem"),
                                 cert, key)
            try:
                ctx.load_cert_chain(path_pem)
            finally:
                os.unlink(path_pem)
        conn = http.client.HTTPSConnection("127.0.0.1", self.port, context=ctx, timeout=timeout)
        try:
            conn.request("GET", path, headers=headers or {})
            resp = conn.getresponse()
            return Response(resp.status, resp.reason, resp.getheaders(), resp.read())
        finally:
            conn.close()


def trust_token(vouchd, name):
    """A new token of scope trust (POST /v1/tokens)."""
    r = vouchd.admin("POST", "/v1/tokens", body=json.dumps({"name": name, "scope": "trust"}),
                     content_type="application/json")
    if r.status not in (200, 201):
        raise AssertionError(f"POST /v1/tokens (scope trust): {r!r}")
    return r.json()["token"]


class GateMixin:
    """Starts the protected application and nginx (after vouchd, whose port it needs) and
    offers the assertions on what comes through."""

    gate_policy = "web"

    @classmethod
    def start_gate(cls, client_cas):
        missing = nginx_missing()
        if missing:
            harness.unavailable(missing)
        cls.app = ProtectedApp().start()
        cls.gate_token = trust_token(cls.vouchd, f"nginx-{cls.__name__}"[:60])
        cls.nginx = Nginx(cls.__name__, cls.vouchd, cls.app, cls.gate_token, client_cas,
                          cls.gate_policy)
        try:
            cls.nginx.start()
        except BaseException:
            cls.app.stop()
            raise

    @classmethod
    def stop_gate(cls):
        for part in ("nginx", "app"):
            obj = getattr(cls, part, None)
            if obj is not None:
                obj.stop()

    # -- through the gate -----------------------------------------------------------------
    def assertAdmitted(self, identity, what, serial=None, udid=None):
        """The protected page, and the application saw the allow (and the serial)."""
        before = self.app.served()
        r = self.nginx.get(identity)
        self.assertStatus(r, 200, f"{what}: through nginx\n{self.nginx.log_tail(8)}")
        body = r.json()
        self.assertEqual(body["page"], "protected page", f"{what}: {r!r}")
        self.assertEqual(self.app.served(), before + 1, f"{what}: the application served it")
        vouch = body["vouch"]
        self.assertEqual(vouch.get("vouch-decision"), "allow", f"{what}: {vouch}")
        self.assertEqual(vouch.get("vouch-policy"), self.gate_policy, f"{what}: {vouch}")
        self.assertNotIn("vouch-reasons", vouch, f"{what}: an allow has no reasons: {vouch}")
        if serial is not None:
            self.assertEqual(vouch.get("vouch-device-serial"), serial, f"{what}: {vouch}")
        if udid is not None:
            self.assertEqual(vouch.get("vouch-device-udid"), udid, f"{what}: {vouch}")
        return vouch

    def assertDenied(self, identity, reason, what, also=()):
        """403 from nginx with reason among Vouch-Reasons (header and page); the application
        never saw the request."""
        before = self.app.served()
        r = self.nginx.get(identity)
        self.assertStatus(r, 403, f"{what}: through nginx\n{self.nginx.log_tail(8)}")
        self.assertEqual(r.header("Vouch-Decision"), "deny", f"{what}: {r.headers}")
        reasons = (r.header("Vouch-Reasons") or "").split(",")
        for want in (reason,) + tuple(also):
            self.assertIn(want, reasons, f"{what}: Vouch-Reasons {reasons}")
        self.assertIn(reason, r.text(), f"{what}: the 403 page names the reason: {r.text()!r}")
        self.assertEqual(r.header("Cache-Control"), "no-store", f"{what}: {r.headers}")
        self.assertEqual(self.app.served(), before,
                         f"{what}: the application got a request nginx denied")
        return reasons

    def decisions(self, decision):
        """vouch_trust_decisions_total{policy=gate_policy, decision}: how often vouchd was
        asked (a request nginx answers from its cache does not count)."""
        r = self.vouchd.metrics()
        self.assertStatus(r, 200, "GET /metrics")
        samples, _types = parse_metrics(r.text())
        return samples.get(f'vouch_trust_decisions_total{{policy="{self.gate_policy}",'
                           f'decision="{decision}"}}', 0)


# ---------------------------------------------------------------------------------------------
class GateCase(GateMixin, SchedulerCase):
    """vouchd trusting the stand-in Apple PKI, living by the test clock, behind nginx."""

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        try:
            cls.start_gate([cls.ca.pem()])
        except BaseException:
            super().tearDownClass()
            raise

    @classmethod
    def tearDownClass(cls):
        try:
            cls.stop_gate()
        finally:
            super().tearDownClass()


class GateTest(GateCase):
    """Devices with every kind of verdict, through nginx, policy web: verified fresh, iOS 17.4."""

    vouchd_config = {"attestation_retry_limit": "1", "attestation_retry_delay": "1s",
                     "attestation_mean_interval": "365d", "attestation_max_age": "30d",
                     "policy.web.require": "verified fresh",
                     "policy.web.min_os_version.ios": "17.4",
                     "policy.web.min_os_version.ipados": "17.4"}

    def verified_iphone(self, what, os_version="17.4"):
        dev = self.iphone(os_version=os_version)
        self.attest_at_clock(dev, what)
        return dev

    def test_verified_fresh_device_gets_the_page(self):
        dev = self.verified_iphone("verified fresh")
        self.assertAdmitted(dev.identity, "verified fresh, known certificate", serial=dev.serial,
                            udid=dev.udid)

    def test_claimed_headers_do_not_reach_the_application(self):
        dev = self.verified_iphone("verified fresh")
        r = self.nginx.get(dev.identity, headers={
            "Vouch-Decision": "deny", "Vouch-Device-Serial": "FORGED", "Vouch-Reasons": "x",
            "Vouch-Client-Cert": "forged", "Vouch-Policy": "other"})
        self.assertStatus(r, 200, "with forged Vouch-* headers")
        vouch = r.json()["vouch"]
        self.assertEqual(vouch, {"vouch-decision": "allow", "vouch-policy": "web",
                                 "vouch-device-serial": dev.serial,
                                 "vouch-device-udid": dev.udid},
                         "the application must see vouchd's headers only")
        # And an unknown device cannot claim an allow either.
        stranger = self.new_device(**{"os_version": "17.4"})
        before = self.app.served()
        r = self.nginx.get(stranger.identity, headers={"Vouch-Decision": "allow",
                                                       "Vouch-Client-Cert": "x"})
        self.assertStatus(r, 403, "an unknown certificate with a forged Vouch-Decision")
        self.assertEqual(self.app.served(), before)

    def test_failed_verdict(self):
        dev = self.iphone()
        cu, nonce = self.take_request(dev, "failed")
        self.answer(dev, cu, self.chain_for(dev, nonce, udid="00008030-000000000000000F"),
                    what="another UDID's chain")
        self.assertVerdict(dev, cu, "failed", "udid_mismatch", "fresh", "another UDID")
        self.assertDenied(dev.identity, "attestation_failed", "failed verdict")

    def test_no_verdict(self):
        dev = self.iphone()  # enrolled; the request is out, never answered
        self.assertEqual(self.attestation(dev.udid)["status"], "none")
        self.assertDenied(dev.identity, "attestation_missing", "no verdict yet")

    def test_cached_verdict_with_require_fresh(self):
        dev = self.iphone()
        generated = db_clock(self).replace(microsecond=0) - datetime.timedelta(minutes=5)
        # (Not through nginx yet: its cached allow would stand for up to a minute.)
        _cu, _nonce, chain = self.attest_fresh(dev, "first, fresh", not_before=generated)
        # The re-check is answered with the old chain (Apple's cache): verified, cached.
        self.post_attest(dev.udid)
        cu, _nonce = self.take_request(dev, "re-check")
        self.answer(dev, cu, chain, what="the cached chain")
        self.assertVerdict(dev, cu, "verified", None, "cached", "cached answer")
        self.assertDenied(dev.identity, "attestation_not_fresh", "verified but cached")

    @staticmethod
    def parse_generated(text):
        return datetime.datetime.strptime(text, "%Y-%m-%dT%H:%M:%SZ").replace(
            tzinfo=datetime.timezone.utc)

    def test_unknown_certificate(self):
        stranger = self.new_device()  # a certificate of the device CA, never enrolled
        self.assertDenied(stranger.identity, "identity_unknown", "a certificate Vouch never saw")

    def test_superseded_certificate(self):
        dev = self.verified_iphone("verified fresh")
        old = dev.identity
        # Re-enrolled with a new certificate: the old one no longer speaks for the device.
        dev.new_identity()
        dev.enroll()
        self.assertDenied(old, "identity_superseded", "the device's previous certificate")

    def test_os_under_the_minimum(self):
        dev = self.verified_iphone("verified fresh, iOS 17.3", os_version="17.3")
        self.assertDenied(dev.identity, "os_too_old", "iOS 17.3 under 17.4")

    def test_no_or_untrusted_client_certificate_never_reaches_vouchd(self):
        before = (self.decisions("allow"), self.decisions("deny"), self.app.served())
        r = self.nginx.get(None)
        self.assertStatus(r, 400, "no client certificate (ssl_verify_client on)")
        outsider = self.new_device(ca=self.untrusted_ca)
        try:
            r = self.nginx.get(outsider.identity)
        except (ssl.SSLError, ConnectionError):
            pass  # refused in the handshake
        else:
            self.assertStatus(r, 400, "a certificate of an untrusted CA")
        self.assertEqual((self.decisions("allow"), self.decisions("deny"), self.app.served()),
                         before, "vouchd or the application was reached")

    def test_allow_is_cached_and_deny_is_not(self):
        dev = self.verified_iphone("verified fresh")
        allows = self.decisions("allow")
        self.assertAdmitted(dev.identity, "first request")
        self.assertEqual(self.decisions("allow"), allows + 1, "the first request asks vouchd")
        self.assertAdmitted(dev.identity, "second request, within max-age")
        self.assertEqual(self.decisions("allow"), allows + 1,
                         "nginx asked vouchd again within the allow's max-age: the decision "
                         "was not cached (nginx caches nothing whose Cache-Control says "
                         "private; see GET /v1/trust/POLICY/nginx's answer)")
        stranger = self.new_device()
        denies = self.decisions("deny")
        for i in range(2):
            self.assertDenied(stranger.identity, "identity_unknown", f"deny #{i + 1}")
        self.assertEqual(self.decisions("deny"), denies + 2, "a deny must never be cached")


class GateExpiryTest(GateCase):
    """A verdict that expires while nginx runs: the next request is a 403, whatever nginx cached
    a moment before."""

    vouchd_config = {"attestation_retry_limit": "1", "attestation_retry_delay": "1s",
                     "attestation_mean_interval": "365d", "attestation_max_age": "30d",
                     "policy.web.require": "verified"}

    def expires_at(self, dev):
        return GateTest.parse_generated(self.attestation(dev.udid)["expires_at"])

    def test_verdict_expires_while_nginx_runs(self):
        dev = self.iphone()
        self.attest_at_clock(dev, "verified")
        expires = self.expires_at(dev)
        lead = 4  # seconds of the verdict left when the allow is cached
        set_clock(self, expires - datetime.timedelta(seconds=lead))
        # What vouchd tells nginx: keep the allow no longer than the verdict lasts.
        direct = self.vouchd.request("GET", "/v1/trust/web/nginx", headers={
            "Authorization": f"Bearer {self.gate_token}",
            "Vouch-Client-Cert": nginx_escaped(dev.cert)})
        self.assertStatus(direct, 204, "vouchd's own answer, seconds before the expiry")
        m = re.search(r"max-age=(\d+)", direct.header("Cache-Control") or "")
        self.assertIsNotNone(m, f"an allow says how long it may be kept: {direct.headers}")
        self.assertLessEqual(int(m.group(1)), lead,
                             f"max-age past the verdict's expiry: {direct.headers}")

        allows = self.decisions("allow")
        self.assertAdmitted(dev.identity, "just before the expiry", serial=dev.serial)
        self.assertAdmitted(dev.identity, "again, at once")
        self.assertEqual(self.decisions("allow"), allows + 1,
                         "the allow was not cached by nginx (so this test could not show "
                         "that the cache does not hide the expiry)")
        wait_for(lambda: db_clock(self) > expires + datetime.timedelta(seconds=1), lead + 10,
                 what="the database's clock past the verdict's expiry")
        # The cached allow must not outlive the verdict.
        self.assertDenied(dev.identity, "attestation_expired",
                          "the first request after the expiry (an allow was cached "
                          f"{lead} s before it)")

    def test_expired_verdict(self):
        dev = self.iphone()
        self.attest_at_clock(dev, "verified")
        set_clock(self, self.expires_at(dev) + datetime.timedelta(minutes=1))
        self.assertDenied(dev.identity, "attestation_expired", "a month after Apple's leaf")


if AcmeTestCase is not None:
    class GateAcmeTest(GateMixin, AcmeTestCase):
        """Policy gate: require_hardware_bound_identity. An ACME-attested identity gets in until
        it is revoked; an identity of the SCEP CA never does."""

        gate_policy = "gate"
        acme_config = {"policy.gate.require": "enrolled",
                       "policy.gate.require_hardware_bound_identity": "true"}

        @classmethod
        def setUpClass(cls):
            super().setUpClass()
            try:
                cls.start_gate([cls.ca.pem(), cls.acme_ca])
            except BaseException:
                super().tearDownClass()
                raise

        @classmethod
        def tearDownClass(cls):
            try:
                cls.stop_gate()
            finally:
                super().tearDownClass()

        def acme_enrolled(self):
            acme = self.acme_device()
            acme.enroll()
            dev = self.new_device(udid=acme.udid, serial=acme.serial)
            dev.key, dev.cert = acme.device_key, acme.certificate
            dev.enroll()
            return acme, dev

        def test_revoked_acme_identity(self):
            acme, dev = self.acme_enrolled()
            self.assertAdmitted(dev.identity, "hardware-bound identity", serial=acme.serial)
            r = acme.post("/acme/revoke-cert", {"certificate": b64url(der_of(acme.certificate))},
                          expect=200)
            self.assertStatus(r, 200, "revoke-cert")
            # nginx may keep the allow for at most its max-age (60 s): wait it out, no longer.
            wait_for(lambda: self.nginx.get(dev.identity).status == 403, 75, interval=1,
                     what="the revoked identity refused")
            self.assertDenied(dev.identity, "identity_revoked", "revoked ACME identity")

        def test_scep_identity_is_not_hardware_bound(self):
            dev = self.enrolled_device()
            self.assertDenied(dev.identity, "not_hardware_bound", "an identity of the SCEP CA")
