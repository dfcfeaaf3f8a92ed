"""An independent MDM device client for the integration tests.

Not the project's simulator: it shares no code with vouchd or vouch-sim, so a bug in one cannot hide
the same bug in the other. Identity certificates come from a test CA made here with `cryptography`,
request bodies from plistlib, the `Mdm-Signature` header from cryptography's PKCS#7 builder
(detached, binary, SHA-256, DER, base64), HTTP from http.client.

    ca = TestCA("Vouch Test Device CA")
    dev = Device(server, ca)                  # server: anything with .host and .port
    dev.enroll()                              # Authenticate + TokenUpdate, both must give 200
    r = dev.idle()                            # Response: .status, .headers, .body, .plist()
    dev.report("Acknowledged", r.plist()["CommandUUID"], QueryResponses={...})

Every request method takes the same keyword options to misbehave on purpose:
    signer=(key, cert)   sign with another identity (another device, an untrusted CA, ...)
    sign_body=bytes      sign these bytes instead of the body that is sent
    signature=str|None   send this Mdm-Signature value verbatim (None: no header at all)
    content_type=str     another Content-Type (None: no Content-Type header)
    path=str             another path (/mdm, /mdm/checkin, /mdm/connect)
    headers={...}        extra headers
"""

import base64
import datetime
import http.client
import json
import plistlib
import secrets
import socket
import threading
import uuid

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.serialization import pkcs7
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

CHECKIN_TYPE = "application/x-apple-aspen-mdm-checkin"
CONNECT_TYPE = "application/x-apple-aspen-mdm"
TOPIC = "com.apple.mgmt.External.2d4c9a7e-1f6b-4b43-9a55-6c1f3b0e8d21"
HTTP_TIMEOUT = 60

_DEFAULT = object()


def new_key(kind="ec"):
    if kind == "rsa":
        return rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return ec.generate_private_key(ec.SECP256R1())


def _name(cn, org="Vouch integration tests"):
    return x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, org),
                      x509.NameAttribute(NameOID.COMMON_NAME, cn)])


class TestCA:
    """A self-signed CA that issues device identity certificates."""

    __test__ = False  # not a unittest/pytest class

    def __init__(self, common_name="Vouch Test Device CA", key_kind="ec"):
        self.key = new_key(key_kind)
        self.name = _name(common_name)
        now = datetime.datetime.now(datetime.timezone.utc)
        self.cert = (
            x509.CertificateBuilder()
            .subject_name(self.name).issuer_name(self.name)
            .public_key(self.key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(days=1))
            .not_valid_after(now + datetime.timedelta(days=3650))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .add_extension(x509.KeyUsage(digital_signature=True, content_commitment=False,
                                         key_encipherment=False, data_encipherment=False,
                                         key_agreement=False, key_cert_sign=True, crl_sign=True,
                                         encipher_only=False, decipher_only=False), critical=True)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(self.key.public_key()),
                           critical=False)
            .sign(self.key, hashes.SHA256()))

    def pem(self):
        return self.cert.public_bytes(serialization.Encoding.PEM)

    def write_pem(self, path):
        with open(path, "wb") as f:
            f.write(self.pem())
        return path

    def issue(self, common_name, key=None, key_kind="ec", days=365, not_before=None):
        """A device identity certificate: returns (key, cert)."""
        key = key or new_key(key_kind)
        now = datetime.datetime.now(datetime.timezone.utc)
        not_before = not_before or now - datetime.timedelta(hours=1)
        cert = (
            x509.CertificateBuilder()
            .subject_name(_name(common_name)).issuer_name(self.name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(not_before)
            .not_valid_after(not_before + datetime.timedelta(days=days))
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.KeyUsage(digital_signature=True, content_commitment=False,
                                         key_encipherment=True, data_encipherment=False,
                                         key_agreement=False, key_cert_sign=False, crl_sign=False,
                                         encipher_only=False, decipher_only=False), critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]),
                           critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(
                self.key.public_key()), critical=False)
            .sign(self.key, hashes.SHA256()))
        return key, cert


def mdm_signature(body, key, cert, attributes=True, include_cert=True):
    """base64 of a detached DER CMS SignedData over body, SHA-256, signer cert included."""
    options = [pkcs7.PKCS7Options.DetachedSignature, pkcs7.PKCS7Options.Binary]
    if not attributes:
        options.append(pkcs7.PKCS7Options.NoAttributes)
    if not include_cert:
        options.append(pkcs7.PKCS7Options.NoCerts)
    der = (pkcs7.PKCS7SignatureBuilder().set_data(body)
           .add_signer(cert, key, hashes.SHA256())
           .sign(serialization.Encoding.DER, options))
    return base64.b64encode(der).decode("ascii")


def cert_sha256(cert):
    """SHA-256 of the certificate's DER: what vouchd binds to a UDID."""
    h = hashes.Hash(hashes.SHA256())
    h.update(cert.public_bytes(serialization.Encoding.DER))
    return h.finalize()


class Response:
    def __init__(self, status, reason, headers, body):
        self.status = status
        self.reason = reason
        self.headers = {k.lower(): v for k, v in headers}
        self.body = body

    def header(self, name, default=None):
        return self.headers.get(name.lower(), default)

    def media_type(self):
        return (self.header("content-type") or "").split(";")[0].strip().lower()

    def plist(self):
        return plistlib.loads(self.body)

    def text(self):
        return self.body.decode("utf-8", errors="replace")

    def json(self):
        return json.loads(self.body)

    def __repr__(self):
        snippet = self.body[:300]
        ctype = self.headers.get("content-type")
        return f"<HTTP {self.status} {self.reason} {ctype!r} {snippet!r}>"


def http_request(host, port, method, path, body=None, headers=None, timeout=HTTP_TIMEOUT):
    """One request on its own connection. Returns a Response."""
    conn = http.client.HTTPConnection(host, port, timeout=timeout)
    try:
        conn.request(method, path, body=body, headers=headers or {})
        resp = conn.getresponse()
        data = resp.read()
        return Response(resp.status, resp.reason, resp.getheaders(), data)
    finally:
        conn.close()


def raw_exchange(host, port, request_bytes, timeout=HTTP_TIMEOUT):
    """Send raw bytes (from a thread, so a server that answers early and stops reading cannot
    block us) and read the reply until the server closes. Returns (status or None, raw reply)."""
    sock = socket.create_connection((host, port), timeout=timeout)
    send_error = []

    def sender():
        try:
            sock.sendall(request_bytes)
        except OSError as exc:
            send_error.append(exc)

    t = threading.Thread(target=sender, daemon=True)
    t.start()
    chunks = []
    try:
        while True:
            try:
                data = sock.recv(65536)
            except (ConnectionResetError, socket.timeout):
                break
            if not data:
                break
            chunks.append(data)
            reply = b"".join(chunks)
            head, sep, rest = reply.partition(b"\r\n\r\n")
            if sep:
                length = None
                for line in head.split(b"\r\n")[1:]:
                    k, _, v = line.partition(b":")
                    if k.strip().lower() == b"content-length":
                        length = int(v.strip())
                if length is not None and len(rest) >= length:
                    break
    finally:
        try:
            sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        sock.close()
        t.join(timeout=timeout)
    reply = b"".join(chunks)
    status = None
    if reply.startswith(b"HTTP/"):
        try:
            status = int(reply.split(b" ", 2)[1])
        except (IndexError, ValueError):
            pass
    return status, reply


class Device:
    """A device with its own identity, talking to vouchd the way an Apple device does."""

    def __init__(self, server, ca, udid=None, serial=None, key_kind="ec", model="Mac14,2",
                 product_name="Mac14,2", os_version="14.4.1", build_version="23E224",
                 topic=TOPIC):
        self.server = server
        self.ca = ca
        self.udid = udid or str(uuid.uuid4()).upper()
        self.serial = serial or ("C02" + secrets.token_hex(5).upper())[:12]
        self.model = model
        self.product_name = product_name
        self.os_version = os_version
        self.build_version = build_version
        self.topic = topic
        self.key_kind = key_kind
        self.key, self.cert = ca.issue(f"Vouch test device {self.udid}", key_kind=key_kind)
        self.token = secrets.token_bytes(32)
        self.push_magic = str(uuid.uuid4()).upper()

    # -- identity ---------------------------------------------------------------------------
    @property
    def identity(self):
        return (self.key, self.cert)

    def new_identity(self, ca=None):
        """Replace the identity certificate (as a re-enrollment would); returns the old one."""
        old = self.identity
        self.key, self.cert = (ca or self.ca).issue(f"Vouch test device {self.udid} (renewed)",
                                                    key_kind=self.key_kind)
        return old

    # -- transport --------------------------------------------------------------------------
    def send(self, path, body, content_type, signer=None, sign_body=None, signature=_DEFAULT,
             headers=None, method="PUT"):
        h = {}
        if content_type is not None:
            h["Content-Type"] = content_type
        if signature is _DEFAULT:
            key, cert = signer or self.identity
            h["Mdm-Signature"] = mdm_signature(body if sign_body is None else sign_body, key,
                                               cert)
        elif signature is not None:
            h["Mdm-Signature"] = signature
        h.update(headers or {})
        return http_request(self.server.host, self.server.port, method, path, body=body,
                            headers=h)

    def raw_put(self, path, body, headers):
        """PUT exactly these bytes with exactly these headers (nothing added but Host and
        Content-Length)."""
        return http_request(self.server.host, self.server.port, "PUT", path, body=body,
                            headers=headers)

    def checkin_bytes(self, body, path="/mdm/checkin", content_type=CHECKIN_TYPE, **opts):
        return self.send(path, body, content_type, **opts)

    def connect_bytes(self, body, path="/mdm/connect", content_type=CONNECT_TYPE, **opts):
        return self.send(path, body, content_type, **opts)

    def checkin(self, message, **opts):
        return self.checkin_bytes(plistlib.dumps(message), **opts)

    # -- check-in messages ------------------------------------------------------------------
    def authenticate_message(self, **extra):
        m = {"MessageType": "Authenticate", "Topic": self.topic, "UDID": self.udid,
             "SerialNumber": self.serial, "Model": self.model, "ModelName": "Mac",
             "ProductName": self.product_name, "OSVersion": self.os_version,
             "BuildVersion": self.build_version, "DeviceName": f"test-{self.udid[:8]}"}
        m.update(extra)
        return m

    def authenticate(self, **opts):
        return self.checkin(self.authenticate_message(), **opts)

    def token_update_message(self, **extra):
        m = {"MessageType": "TokenUpdate", "Topic": self.topic, "UDID": self.udid,
             "Token": self.token, "PushMagic": self.push_magic, "AwaitingConfiguration": False}
        m.update(extra)
        return m

    def token_update(self, **opts):
        return self.checkin(self.token_update_message(), **opts)

    def checkout(self, **opts):
        return self.checkin({"MessageType": "CheckOut", "Topic": self.topic,
                             "UDID": self.udid}, **opts)

    def enroll(self):
        """Authenticate then TokenUpdate; raises AssertionError unless both answer 200."""
        for step in (self.authenticate, self.token_update):
            r = step()
            if r.status != 200:
                raise AssertionError(f"{step.__name__} for {self.udid}: {r!r}")
        return self

    # -- command reports --------------------------------------------------------------------
    def report_message(self, status, command_uuid=None, **result_keys):
        m = {"UDID": self.udid, "Status": status}
        if command_uuid is not None:
            m["CommandUUID"] = command_uuid
        m.update(result_keys)
        return m

    def report(self, status, command_uuid=None, _opts=None, **result_keys):
        body = plistlib.dumps(self.report_message(status, command_uuid, **result_keys))
        return self.connect_bytes(body, **(_opts or {}))

    def idle(self, **opts):
        return self.report("Idle", _opts=opts)

    # -- Managed Device Attestation -------------------------------------------------------------
    # vouchd queues by itself, on an enrollment's first TokenUpdate (the first after each
    # Authenticate), a DeviceInformation command asking for DevicePropertiesAttestation with a
    # fresh nonce, ahead of every other command. These helpers take and answer that request, so a
    # test that needs an empty queue can get one (see docs/attestation.md).
    ATTESTATION_QUERY = "DevicePropertiesAttestation"
    ATTESTATION_NONCE_BYTES = 32
    ANSWERS = ("unsupported", "bare", "error", "formaterror", "notnow")

    @property
    def attestation_requests(self):
        """Every attestation request this device was handed, oldest first (command plists)."""
        if "_attestation_requests" not in self.__dict__:
            self._attestation_requests = []
        return self._attestation_requests

    @property
    def last_attestation_request(self):
        return self.attestation_requests[-1] if self.attestation_requests else None

    def check_attestation_request(self, response, what="attestation request"):
        """response must be a 200 carrying vouchd's attestation request: RequestType
        DeviceInformation, Queries holding exactly the string DevicePropertiesAttestation, and a
        DeviceAttestationNonce of 32 bytes of <data> never handed to this device before.
        Returns the command plist (and remembers it in attestation_requests)."""
        if response.status != 200 or not response.body:
            raise AssertionError(f"{what}: expected the attestation request, got {response!r}")
        if response.media_type() != "application/xml":
            raise AssertionError(f"{what}: Content-Type of a command: {response!r}")
        cmd = response.plist()
        c = cmd.get("Command") if isinstance(cmd, dict) else None
        if not isinstance(c, dict) or not isinstance(cmd.get("CommandUUID"), str):
            raise AssertionError(f"{what}: not a command envelope: {cmd!r}")
        if c.get("RequestType") != "DeviceInformation":
            raise AssertionError(f"{what}: expected the attestation request (DeviceInformation) "
                                 f"first, got RequestType {c.get('RequestType')!r}: {cmd!r}")
        queries = c.get("Queries")
        if not isinstance(queries, list) or self.ATTESTATION_QUERY not in queries:
            raise AssertionError(f"{what}: Queries {queries!r} do not hold "
                                 f"{self.ATTESTATION_QUERY}: {cmd!r}")
        nonce = c.get("DeviceAttestationNonce")
        if not isinstance(nonce, bytes):
            raise AssertionError(f"{what}: DeviceAttestationNonce is not <data>: {nonce!r}")
        if len(nonce) != self.ATTESTATION_NONCE_BYTES:
            raise AssertionError(f"{what}: DeviceAttestationNonce of {len(nonce)} bytes, "
                                 f"expected {self.ATTESTATION_NONCE_BYTES}")
        for old in self.attestation_requests:
            if old["CommandUUID"] != cmd["CommandUUID"] and \
                    old["Command"]["DeviceAttestationNonce"] == nonce:
                raise AssertionError(f"{what}: nonce of {old['CommandUUID']} sent again in "
                                     f"{cmd['CommandUUID']}")
        if not any(old["CommandUUID"] == cmd["CommandUUID"] for old in self.attestation_requests):
            self.attestation_requests.append(cmd)
        return cmd

    def take_attestation_request(self, **opts):
        """Idle; the reply must be the attestation request. Returns the command plist."""
        return self.check_attestation_request(self.idle(**opts), "Idle")

    def attestation_query_responses(self, cmd, overrides=None):
        """QueryResponses of a device that cannot attest: its own facts for the other queries,
        no DevicePropertiesAttestation. overrides: keys to add or change (None removes one)."""
        facts = {"UDID": self.udid, "SerialNumber": self.serial, "OSVersion": self.os_version,
                 "BuildVersion": self.build_version, "ProductName": self.product_name,
                 "Model": self.model, "DeviceName": f"test-{self.udid[:8]}"}
        qr = {q: facts[q] for q in cmd["Command"].get("Queries", [])
              if q in facts and facts[q] is not None}
        for k, v in (overrides or {}).items():
            if v is None:
                qr.pop(k, None)
            else:
                qr[k] = v
        return qr

    def answer_attestation(self, cmd, answer="unsupported", query_responses=None, **opts):
        """Answers the attestation request cmd and returns vouchd's reply:
            unsupported   Acknowledged with QueryResponses but no DevicePropertiesAttestation
            bare          Acknowledged without QueryResponses
            error         Error with an ErrorChain
            formaterror   CommandFormatError
            notnow        NotNow
        query_responses: overrides for the unsupported answer's QueryResponses."""
        cu = cmd["CommandUUID"]
        if answer == "unsupported":
            return self.report("Acknowledged", cu, _opts=opts,
                               QueryResponses=self.attestation_query_responses(
                                   cmd, query_responses))
        if answer == "bare":
            return self.report("Acknowledged", cu, _opts=opts)
        if answer == "error":
            chain = [{"ErrorCode": 12021, "ErrorDomain": "MCMDMErrorDomain",
                      "LocalizedDescription": "The device cannot do that.",
                      "USEnglishDescription": "The device cannot do that."}]
            return self.report("Error", cu, _opts=opts, ErrorChain=chain)
        if answer == "formaterror":
            return self.report("CommandFormatError", cu, _opts=opts)
        if answer == "notnow":
            return self.report("NotNow", cu, _opts=opts)
        raise ValueError(f"answer must be one of {self.ANSWERS}, not {answer!r}")

    def settle_attestation(self, answer="unsupported", query_responses=None, **opts):
        """Idle, check that the first command is the attestation request, answer it (by default
        as a device that cannot attest) and return vouchd's reply to the answer: a zero-byte 200
        when nothing else is queued, else the next command. The request is in
        last_attestation_request. opts (path, content_type, signer, ...) apply to both
        requests."""
        cmd = self.take_attestation_request(**opts)
        return self.answer_attestation(cmd, answer, query_responses, **opts)
