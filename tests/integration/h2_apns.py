"""An independent stand-in for Apple's push service (APNs), for the integration tests.

Not the project's stand-in (tests/apns, nghttp2 + libevent): this one is Python's `ssl` module and
the `h2` package (Debian: python3-h2), so a misreading of HTTP/2 or of APNs shared by vouchd and
the project's own stand-in cannot hide here. It is an HTTP/2 server over TLS that

  * REQUIRES a client certificate (ssl.CERT_REQUIRED) issued by a test "Apple push CA", and
    offers only ALPN h2, as APNs does;
  * runs in background threads (one per connection, so streams are multiplexed as they come);
  * records every request: path, every header as sent, the body, and the client certificate's
    subject UID (the topic), serial number and subject, the connection and stream it came on;
  * checks each request as APNs would (method, path, topic against the certificate, push type,
    expiration, priority, the {"mdm": ...} body) and answers 400 with APNs' reason when it is
    wrong, listing the problems on the record;
  * otherwise answers per a per-token script: 200 with a fresh apns-id; 410 Unregistered with a
    timestamp; 400 BadDeviceToken (or any reason); 403; 429; 500; 503; a GOAWAY; a dropped
    connection; any of them held until the test releases it; "N times this, then that".

    pki = ApnsPKI()                                   # server CA + cert for 127.0.0.1, push CA
    push = pki.issue_push_cert()                      # UID=com.apple.mgmt.External.<uuid>
    push.write_pem(cert_path, key_path)               # or push.write_pkcs12(path, password)
    pki.write_server_ca(ca_path)                      # vouchd's apns_ca
    server = H2ApnsServer(pki).start()                # server.url: https://127.0.0.1:<port>
    server.script(token, too_many_requests(), ok())   # then the default (200) forever
    server.script(token, then=server_error())         # 500 for ever
    server.wait_for_requests(token, 2)
    server.requests_for(token)                        # [Record, ...] oldest first
    server.stop()

Certificates are made with `cryptography`; keys live in memory and in the files the test writes.
"""

import datetime
import ipaddress
import itertools
import json
import os
import re
import select
import socket
import ssl
import tempfile
import threading
import time
import uuid

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.serialization import pkcs12
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

import h2.config
import h2.connection
import h2.errors
import h2.events
import h2.exceptions
import h2.settings

TOPIC_PREFIX = "com.apple.mgmt.External."
PATH_RE = re.compile(r"^/3/device/([0-9A-Fa-f]+)$")


def _now():
    return datetime.datetime.now(datetime.timezone.utc)


def now_ms():
    return int(time.time() * 1000)


def _key_usage(cert_sign=False, digital_signature=True, key_encipherment=False):
    return x509.KeyUsage(digital_signature=digital_signature, content_commitment=False,
                         key_encipherment=key_encipherment, data_encipherment=False,
                         key_agreement=False, key_cert_sign=cert_sign, crl_sign=cert_sign,
                         encipher_only=False, decipher_only=False)


def _ca(name, key):
    now = _now()
    return (x509.CertificateBuilder()
            .subject_name(name).issuer_name(name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(days=1))
            .not_valid_after(now + datetime.timedelta(days=3650))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .add_extension(_key_usage(cert_sign=True), critical=True)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()),
                           critical=False)
            .sign(key, hashes.SHA256()))


def _pem(cert):
    return cert.public_bytes(serialization.Encoding.PEM)


class PushIdentity:
    """An MDM push certificate and its key, as Apple's Push Certificates Portal issues them:
    subject UID=<topic>, CN=APSP:<uuid>, C=US; RSA 2048; client authentication."""

    def __init__(self, key, cert, topic):
        self.key = key
        self.cert = cert
        self.topic = topic

    @property
    def serial(self):
        return self.cert.serial_number

    def cert_pem(self):
        return _pem(self.cert)

    def key_pem(self):
        return self.key.private_bytes(serialization.Encoding.PEM,
                                      serialization.PrivateFormat.PKCS8,
                                      serialization.NoEncryption())

    def write_pem(self, cert_path, key_path):
        """Writes the certificate and the key (unencrypted PKCS#8) in place."""
        with open(cert_path, "wb") as f:
            f.write(self.cert_pem())
        with open(key_path, "wb") as f:
            f.write(self.key_pem())
        os.chmod(key_path, 0o600)
        return cert_path, key_path

    def pkcs12(self, password):
        enc = (serialization.BestAvailableEncryption(password.encode()) if password
               else serialization.NoEncryption())
        return pkcs12.serialize_key_and_certificates(b"MDM push", self.key, self.cert, None, enc)

    def write_pkcs12(self, path, password):
        with open(path, "wb") as f:
            f.write(self.pkcs12(password))
        os.chmod(path, 0o600)
        return path


class ApnsPKI:
    """The stand-in's certificates:
        server CA      "Stand-in APNs Server Root CA" (EC P-256): vouchd's apns_ca
        server cert    for IP 127.0.0.1 and DNS localhost, issued by the server CA
        push CA        "Stand-in Apple Application Integration CA" (RSA): the only CA the
                       server trusts for client certificates; issues MDM push certificates
    """

    def __init__(self):
        self.server_ca_key = ec.generate_private_key(ec.SECP256R1())
        self.server_ca = _ca(x509.Name([
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Vouch integration tests"),
            x509.NameAttribute(NameOID.COMMON_NAME, "Stand-in APNs Server Root CA")]),
            self.server_ca_key)
        self.server_key = ec.generate_private_key(ec.SECP256R1())
        now = _now()
        self.server_cert = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([
                x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Vouch integration tests"),
                x509.NameAttribute(NameOID.COMMON_NAME, "api.push.apple.com (stand-in)")]))
            .issuer_name(self.server_ca.subject)
            .public_key(self.server_key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(hours=1))
            .not_valid_after(now + datetime.timedelta(days=365))
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(_key_usage(), critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]),
                           critical=False)
            .add_extension(x509.SubjectAlternativeName([
                x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
                x509.DNSName("localhost")]), critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(
                self.server_ca_key.public_key()), critical=False)
            .sign(self.server_ca_key, hashes.SHA256()))
        self.push_ca_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.push_ca = _ca(x509.Name([
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Vouch integration tests"),
            x509.NameAttribute(NameOID.COMMON_NAME,
                               "Stand-in Apple Application Integration CA")]),
            self.push_ca_key)

    def write_server_ca(self, path):
        with open(path, "wb") as f:
            f.write(_pem(self.server_ca))
        return path

    def issue_push_cert(self, topic=None, key=None, days=365, not_before=None, issuer=None):
        """A push certificate for topic (default: a new com.apple.mgmt.External.<uuid>), issued
        by the push CA (or issuer=(key, cert)). Returns a PushIdentity."""
        topic = topic or TOPIC_PREFIX + str(uuid.uuid4())
        key = key or rsa.generate_private_key(public_exponent=65537, key_size=2048)
        ca_key, ca_cert = issuer or (self.push_ca_key, self.push_ca)
        not_before = not_before or _now() - datetime.timedelta(hours=1)
        cert = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([
                x509.NameAttribute(NameOID.USER_ID, topic),
                x509.NameAttribute(NameOID.COMMON_NAME, "APSP:" + topic.rsplit(".", 1)[-1]),
                x509.NameAttribute(NameOID.COUNTRY_NAME, "US")]))
            .issuer_name(ca_cert.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(not_before)
            .not_valid_after(not_before + datetime.timedelta(days=days))
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(_key_usage(key_encipherment=True), critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]),
                           critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(
                ca_key.public_key()), critical=False)
            .sign(ca_key, hashes.SHA256()))
        return PushIdentity(key, cert, topic)

    def server_context(self):
        """TLS for the stand-in: its certificate, client certificates required from the push
        CA, ALPN h2 only."""
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.minimum_version = ssl.TLSVersion.TLSv1_2
        with tempfile.TemporaryDirectory() as d:
            cert_path = os.path.join(d, "server.pem")
            key_path = os.path.join(d, "server.key")
            with open(cert_path, "wb") as f:
                f.write(_pem(self.server_cert))
            with open(key_path, "wb") as f:
                f.write(self.server_key.private_bytes(serialization.Encoding.PEM,
                                                      serialization.PrivateFormat.PKCS8,
                                                      serialization.NoEncryption()))
            ctx.load_cert_chain(cert_path, key_path)
        ctx.load_verify_locations(cadata=_pem(self.push_ca).decode())
        ctx.verify_mode = ssl.CERT_REQUIRED
        ctx.set_alpn_protocols(["h2"])
        return ctx


# -- answers ---------------------------------------------------------------------------------------
class Answer:
    """What the stand-in answers to one request.
        kind "status": an HTTP status (200 with a fresh apns-id; others with a JSON reason)
        kind "goaway": a GOAWAY frame refusing this stream (last-stream-id below it), then the
                       connection is closed
        kind "drop":   the TCP connection is closed without an answer
    hold: a threading.Event; the answer waits until it is set (or hold_timeout passes)."""

    def __init__(self, kind="status", status=200, reason=None, timestamp_ms=None, hold=None,
                 hold_timeout=60.0):
        self.kind = kind
        self.status = status
        self.reason = reason
        self.timestamp_ms = timestamp_ms  # int, or a callable returning one, for 410
        self.hold = hold
        self.hold_timeout = hold_timeout

    def held(self, event, timeout=60.0):
        """The same answer, held until event is set."""
        return Answer(self.kind, self.status, self.reason, self.timestamp_ms, event, timeout)

    def label(self):
        return str(self.status) if self.kind == "status" else self.kind

    def __repr__(self):
        return f"<Answer {self.label()}{' ' + self.reason if self.reason else ''}>"


def ok():
    return Answer(status=200)


def unregistered(timestamp_ms=None):
    """410 {"reason": "Unregistered", "timestamp": ms}; ms defaults to the time of the answer."""
    return Answer(status=410, reason="Unregistered", timestamp_ms=timestamp_ms)


def rejected(reason="BadDeviceToken"):
    return Answer(status=400, reason=reason)


def bad_device_token():
    return rejected("BadDeviceToken")


def forbidden(reason="BadCertificate"):
    return Answer(status=403, reason=reason)


def too_many_requests():
    return Answer(status=429, reason="TooManyRequests")


def server_error(status=500, reason="InternalServerError"):
    return Answer(status=status, reason=reason)


def unavailable():
    return Answer(status=503, reason="ServiceUnavailable")


def goaway():
    return Answer(kind="goaway", reason="Shutdown")


def drop():
    return Answer(kind="drop")


def times(n, answer):
    """[answer] * n, for script(token, *times(2, server_error()), ok())."""
    return [answer] * n


# -- records ---------------------------------------------------------------------------------------
class Record:
    """One request the stand-in received, and what it answered."""

    def __init__(self, seq, conn, stream_id, headers, body):
        self.seq = seq
        self.time = time.time()
        self.monotonic = time.monotonic()
        self.conn_id = conn.conn_id
        self.client_uid = conn.client_uid
        self.client_serial = conn.client_serial
        self.client_subject = conn.client_subject
        self.stream_id = stream_id
        self.header_list = list(headers)  # [(name, value)] as received, pseudo-headers too
        self.headers = {}
        for k, v in self.header_list:
            self.headers.setdefault(k.lower(), v)
        self.body = bytes(body)
        self.method = self.headers.get(":method")
        self.path = self.headers.get(":path") or ""
        m = PATH_RE.match(self.path)
        self.token = m.group(1).lower() if m else None
        self.problems = []
        self.answer = None  # "200", "410", "goaway", "drop", "refused" (after a GOAWAY) ...
        self.apns_id = None
        self.error_body = None  # the JSON sent with an error status

    def header_count(self, name):
        return sum(1 for k, _ in self.header_list if k.lower() == name.lower())

    def __repr__(self):
        return (f"<push #{self.seq} conn {self.conn_id} stream {self.stream_id} "
                f"{self.method} {self.path} -> {self.answer}"
                f"{' problems ' + str(self.problems) if self.problems else ''}>")


class _Conn:
    """One client connection and its h2 state (handled by one thread)."""

    def __init__(self, server, conn_id, tls):
        self.server = server
        self.conn_id = conn_id
        self.tls = tls
        self.client_uid = None
        self.client_serial = None
        self.client_subject = None
        self.streams = {}  # stream id -> [headers, bytearray body]
        self.held = []  # [(stream_id, Answer, Record, deadline)]
        self.h2 = h2.connection.H2Connection(h2.config.H2Configuration(
            client_side=False, header_encoding="utf-8"))
        self.closed = False
        self.goaway_sent = False


class H2ApnsServer:
    """The stand-in APNs. Thread-safe accessors; answers run on connection threads."""

    def __init__(self, pki, host="127.0.0.1", port=0, max_concurrent_streams=500):
        self.pki = pki
        self.host = host
        self.port = port
        self.max_concurrent_streams = max_concurrent_streams
        self.ctx = pki.server_context()
        self._lock = threading.Condition()
        self._records = []
        self._scripts = {}  # token hex -> [list of Answer, then Answer or None]
        self.default = ok()
        self.connections = []  # dicts: conn_id, client_uid, client_serial, alpn, time
        self.handshake_failures = []  # (time, error text)
        self._listeners = []
        self._seq = itertools.count(1)
        self._conn_ids = itertools.count(1)
        self._sock = None
        self._threads = []
        self._stopping = threading.Event()
        self._conns = []

    # -- life ---------------------------------------------------------------------------------
    @property
    def url(self):
        return f"https://{self.host}:{self.port}"

    def start(self):
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind((self.host, self.port))
        s.listen(128)
        s.settimeout(0.2)
        self._sock = s
        self.port = s.getsockname()[1]
        t = threading.Thread(target=self._accept_loop, name="h2-apns-accept", daemon=True)
        t.start()
        self._threads.append(t)
        return self

    def stop(self):
        self._stopping.set()
        if self._sock is not None:
            try:
                self._sock.close()
            except OSError:
                pass
        for t in list(self._threads):
            t.join(timeout=5)

    def drop_connections(self):
        """Closes every client connection now (as a network failure would)."""
        with self._lock:
            conns = list(self._conns)
        for c in conns:
            c.closed = True

    # -- scripting ---------------------------------------------------------------------------
    @staticmethod
    def _token_key(token):
        return token.hex() if isinstance(token, (bytes, bytearray)) else token.lower()

    def script(self, token, *answers, then=None):
        """Answers for this token (bytes or hex), in order; afterwards `then` for ever (None:
        the server's default, 200). Replaces any script the token had."""
        flat = []
        for a in answers:
            flat.extend(a if isinstance(a, (list, tuple)) else [a])
        with self._lock:
            self._scripts[self._token_key(token)] = [flat, then]

    def _next_answer(self, token):
        with self._lock:
            entry = self._scripts.get(token)
            if entry is None:
                return self.default
            answers, then = entry
            if answers:
                return answers.pop(0)
            return then if then is not None else self.default

    def add_listener(self, fn):
        """fn(record) runs (on a connection thread) after every request is answered."""
        with self._lock:
            self._listeners.append(fn)

    def remove_listener(self, fn):
        with self._lock:
            if fn in self._listeners:
                self._listeners.remove(fn)

    # -- records -----------------------------------------------------------------------------
    def requests(self):
        with self._lock:
            return list(self._records)

    def requests_for(self, token, answered_only=True):
        key = self._token_key(token)
        with self._lock:
            return [r for r in self._records if r.token == key and
                    (not answered_only or r.answer is not None)]

    def wait_for(self, predicate, timeout=30.0, what="condition"):
        """Waits until predicate(records) is true; returns its value."""
        deadline = time.monotonic() + timeout
        with self._lock:
            while True:
                value = predicate(list(self._records))
                if value:
                    return value
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(
                        f"stand-in APNs: timed out after {timeout:.0f} s waiting for {what}; "
                        f"requests so far: {self._records[-12:]!r}; handshake failures: "
                        f"{self.handshake_failures[-3:]!r}")
                self._lock.wait(min(left, 0.5))

    def wait_for_requests(self, token, count, timeout=30.0, answered_only=True):
        """Waits until at least count requests for token were received (and answered);
        returns them all."""
        key = self._token_key(token)
        return self.wait_for(
            lambda recs: (lambda mine: mine if len(mine) >= count else None)(
                [r for r in recs if r.token == key and
                 (not answered_only or r.answer is not None)]),
            timeout, f"{count} request(s) for token {key[:16]}...")

    # -- serving ------------------------------------------------------------------------------
    def _accept_loop(self):
        while not self._stopping.is_set():
            try:
                raw, _addr = self._sock.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            t = threading.Thread(target=self._serve, args=(raw,), name="h2-apns-conn",
                                 daemon=True)
            t.start()
            self._threads = [x for x in self._threads if x.is_alive()] + [t]

    def _serve(self, raw):
        conn_id = next(self._conn_ids)
        raw.settimeout(10)
        try:
            tls = self.ctx.wrap_socket(raw, server_side=True, do_handshake_on_connect=False)
            tls.do_handshake()
        except (ssl.SSLError, OSError) as exc:
            with self._lock:
                self.handshake_failures.append((time.time(), f"{type(exc).__name__}: {exc}"))
                self._lock.notify_all()
            raw.close()
            return
        conn = _Conn(self, conn_id, tls)
        try:
            der = tls.getpeercert(binary_form=True)
            cert = x509.load_der_x509_certificate(der)
            uids = cert.subject.get_attributes_for_oid(NameOID.USER_ID)
            conn.client_uid = uids[0].value if uids else None
            conn.client_serial = cert.serial_number
            conn.client_subject = cert.subject.rfc4514_string()
            alpn = tls.selected_alpn_protocol()
            with self._lock:
                self.connections.append({"conn_id": conn_id, "client_uid": conn.client_uid,
                                         "client_serial": conn.client_serial, "alpn": alpn,
                                         "time": time.time()})
                self._conns.append(conn)
                self._lock.notify_all()
            if alpn != "h2":
                return
            self._run(conn)
        except Exception as exc:  # a broken client must not take the stand-in down
            with self._lock:
                self.handshake_failures.append((time.time(), f"connection {conn_id}: {exc!r}"))
        finally:
            with self._lock:
                if conn in self._conns:
                    self._conns.remove(conn)
            try:
                tls.close()
            except OSError:
                pass

    def _flush(self, conn):
        data = conn.h2.data_to_send()
        if data:
            conn.tls.sendall(data)

    def _run(self, conn):
        h = conn.h2
        h.initiate_connection()
        h.update_settings({h2.settings.SettingCodes.MAX_CONCURRENT_STREAMS:
                           self.max_concurrent_streams})
        self._flush(conn)
        tls = conn.tls
        while not self._stopping.is_set() and not conn.closed:
            self._release_held(conn)
            if conn.closed:
                break
            if tls.pending() == 0:
                r, _, _ = select.select([tls], [], [], 0.05)
                if not r:
                    continue
            try:
                data = tls.recv(65536)
            except (socket.timeout, ssl.SSLWantReadError):
                continue
            except (ssl.SSLError, OSError):
                break
            if not data:
                break
            try:
                events = h.receive_data(data)
            except h2.exceptions.ProtocolError:
                self._flush(conn)
                break
            for ev in events:
                self._event(conn, ev)
                if conn.closed:
                    break
            if conn.goaway_sent:
                break
            self._flush(conn)
        # In-flight held answers of a closing connection are never sent.
        with self._lock:
            for _sid, _a, rec, _d in conn.held:
                rec.answer = rec.answer or "lost"
            self._lock.notify_all()

    def _event(self, conn, ev):
        h = conn.h2
        if isinstance(ev, h2.events.RequestReceived):
            conn.streams[ev.stream_id] = [ev.headers, bytearray()]
            if ev.stream_ended:
                self._request_done(conn, ev.stream_id)
        elif isinstance(ev, h2.events.DataReceived):
            st = conn.streams.get(ev.stream_id)
            if st is not None:
                st[1].extend(ev.data)
            h.acknowledge_received_data(ev.flow_controlled_length, ev.stream_id)
            if ev.stream_ended:
                self._request_done(conn, ev.stream_id)
        elif isinstance(ev, h2.events.StreamEnded):
            if ev.stream_id in conn.streams:
                self._request_done(conn, ev.stream_id)
        elif isinstance(ev, h2.events.StreamReset):
            conn.streams.pop(ev.stream_id, None)
            conn.held = [x for x in conn.held if x[0] != ev.stream_id]
        elif isinstance(ev, h2.events.ConnectionTerminated):
            conn.closed = True

    def _request_done(self, conn, stream_id):
        headers, body = conn.streams.pop(stream_id)
        rec = Record(next(self._seq), conn, stream_id, headers, body)
        with self._lock:
            self._records.append(rec)
            self._lock.notify_all()
        if conn.goaway_sent:
            with self._lock:
                rec.answer = "refused"
                self._lock.notify_all()
            return
        problem = self._check(conn, rec)
        if problem is not None:
            answer = Answer(status=problem[0], reason=problem[1])
        else:
            answer = self._next_answer(rec.token)
        if answer.hold is not None and not answer.hold.is_set():
            conn.held.append((stream_id, answer, rec, time.monotonic() + answer.hold_timeout))
            return
        self._answer(conn, stream_id, answer, rec)

    def _release_held(self, conn):
        if not conn.held:
            return
        now = time.monotonic()
        ready = [x for x in conn.held if x[1].hold.is_set() or now >= x[3]]
        if not ready:
            return
        conn.held = [x for x in conn.held if x not in ready]
        for stream_id, answer, rec, _deadline in ready:
            self._answer(conn, stream_id, answer, rec)
            if conn.closed or conn.goaway_sent:
                break
        if not conn.closed:
            try:
                self._flush(conn)
            except OSError:
                conn.closed = True

    def _check(self, conn, rec):
        """What APNs would refuse, as (status, reason); problems are listed on the record."""
        p = rec.problems
        first = None

        def bad(status, reason, text):
            nonlocal first
            p.append(text)
            if first is None:
                first = (status, reason)

        if rec.method != "POST":
            bad(405, "MethodNotAllowed", f"method {rec.method!r}, not POST")
        if rec.token is None:
            bad(404, "BadPath", f"path {rec.path!r} is not /3/device/<hex token>")
        if rec.headers.get(":scheme") != "https":
            bad(400, "BadPath", f":scheme {rec.headers.get(':scheme')!r}")
        topic = rec.headers.get("apns-topic")
        if topic is None:
            bad(400, "MissingTopic", "no apns-topic")
        elif topic != conn.client_uid:
            bad(400, "TopicDisallowed",
                f"apns-topic {topic!r} is not the certificate's UID {conn.client_uid!r}")
        if rec.headers.get("apns-push-type") != "mdm":
            bad(400, "InvalidPushType", f"apns-push-type {rec.headers.get('apns-push-type')!r}")
        exp = rec.headers.get("apns-expiration")
        if exp is None or not re.fullmatch(r"[0-9]+", exp):
            bad(400, "BadExpirationDate", f"apns-expiration {exp!r}")
        if rec.headers.get("apns-priority") not in ("5", "10"):
            bad(400, "BadPriority", f"apns-priority {rec.headers.get('apns-priority')!r}")
        for name in ("apns-topic", "apns-push-type", "apns-expiration", "apns-priority"):
            if rec.header_count(name) > 1:
                bad(400, "DuplicateHeaders", f"{name} sent {rec.header_count(name)} times")
        if not rec.body:
            bad(400, "PayloadEmpty", "empty body")
        else:
            try:
                doc = json.loads(rec.body)
            except ValueError:
                doc = None
            if not (isinstance(doc, dict) and set(doc) == {"mdm"} and
                    isinstance(doc["mdm"], str)):
                bad(400, "BadPayload", f"body {rec.body[:200]!r} is not {{\"mdm\": magic}}")
        return first

    def _answer(self, conn, stream_id, answer, rec):
        h = conn.h2
        apns_id = str(uuid.uuid4()).upper()
        try:
            if answer.kind == "drop":
                rec.answer = "drop"
                conn.closed = True
                try:
                    conn.tls.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
            elif answer.kind == "goaway":
                rec.answer = "goaway"
                h.close_connection(error_code=h2.errors.ErrorCodes.NO_ERROR,
                                   additional_data=json.dumps(
                                       {"reason": answer.reason or "Shutdown"}).encode(),
                                   last_stream_id=max(0, stream_id - 2))
                conn.goaway_sent = True
                self._flush(conn)
            elif answer.status == 200:
                h.send_headers(stream_id, [(":status", "200"), ("apns-id", apns_id)],
                               end_stream=True)
                rec.answer = "200"
                rec.apns_id = apns_id
            else:
                doc = {"reason": answer.reason or "InternalServerError"}
                if answer.status == 410:
                    ts = answer.timestamp_ms
                    doc["timestamp"] = ts() if callable(ts) else (ts if ts is not None
                                                                  else now_ms())
                payload = json.dumps(doc).encode()
                h.send_headers(stream_id, [(":status", str(answer.status)),
                                           ("apns-id", apns_id),
                                           ("content-type", "application/json"),
                                           ("content-length", str(len(payload)))])
                h.send_data(stream_id, payload, end_stream=True)
                rec.answer = str(answer.status)
                rec.apns_id = apns_id
                rec.error_body = doc
        except (h2.exceptions.StreamClosedError, h2.exceptions.ProtocolError) as exc:
            rec.answer = f"lost ({exc.__class__.__name__})"
        with self._lock:
            listeners = list(self._listeners)
            self._lock.notify_all()
        for fn in listeners:
            try:
                fn(rec)
            except Exception as exc:  # a listener's bug must not break the stand-in
                rec.problems.append(f"listener failed: {exc!r}")
