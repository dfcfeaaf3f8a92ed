"""An Apple device enrolling through vouchd's ACME server (device-attest-01), for the tests.

Written from RFC 8555 and docs/acme.md, independent of vouchd's code: JWS (flattened, ES256 or
ES384 account keys) with `cryptography`, a small CBOR encoder for the attestation object, and the
stand-in Apple PKI of fake_apple.py, which attests the device's P-384 key with freshness =
SHA-256(challenge token), as Apple does for a Secure Enclave key.

    dev = AcmeDevice(vouchd, pki, udid=..., serial=...)
    dev.enroll_profile()           # GET /mdm/enroll: the profile's ClientIdentifier
    dev.register()                 # newNonce, newAccount
    order = dev.new_order()        # permanent-identifier = ClientIdentifier
    dev.answer_challenge(order)    # attObj
    dev.finalize(order)            # CSR for the attested key
    pem = dev.download(order)      # the certificate chain
Every step returns the Response; the helpers raise AssertionError on an unexpected status
unless expect= says otherwise. The pieces (jws(), att_obj(), csr_der()) can be used alone to
build the wrong things on purpose.
"""

import base64
import hashlib
import http.client
import json
import plistlib

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
from cryptography.x509.oid import NameOID

from device import HTTP_TIMEOUT, Response


def b64url(data):
    if isinstance(data, str):
        data = data.encode()
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def b64url_decode(text):
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


# -- CBOR (RFC 8949), the few kinds an attestation object uses ------------------------------------
def _cbor_head(major, n):
    if n < 24:
        return bytes([major << 5 | n])
    for extra, size in ((24, 1), (25, 2), (26, 4), (27, 8)):
        if n < 1 << (8 * size):
            return bytes([major << 5 | extra]) + n.to_bytes(size, "big")
    raise ValueError("too large")


def cbor(value):
    if isinstance(value, bytes):
        return _cbor_head(2, len(value)) + value
    if isinstance(value, str):
        raw = value.encode()
        return _cbor_head(3, len(raw)) + raw
    if isinstance(value, (list, tuple)):
        return _cbor_head(4, len(value)) + b"".join(cbor(v) for v in value)
    if isinstance(value, dict):
        return _cbor_head(5, len(value)) + b"".join(cbor(k) + cbor(v) for k, v in value.items())
    if isinstance(value, int) and value >= 0:
        return _cbor_head(0, value)
    raise TypeError(type(value))


def att_obj(chain, fmt="apple"):
    """base64url of {fmt, attStmt: {x5c: chain}} (authData left out, as Apple's)."""
    return b64url(cbor({"fmt": fmt, "attStmt": {"x5c": list(chain)}}))


# -- JWS -----------------------------------------------------------------------------------------
def _int_bytes(n, size):
    return n.to_bytes(size, "big")


def jwk_of(key):
    numbers = key.public_key().public_numbers()
    size = (key.curve.key_size + 7) // 8
    crv = {256: "P-256", 384: "P-384"}[key.curve.key_size]
    return {"kty": "EC", "crv": crv, "x": b64url(_int_bytes(numbers.x, size)),
            "y": b64url(_int_bytes(numbers.y, size))}


def alg_of(key):
    return {256: "ES256", 384: "ES384"}[key.curve.key_size]


def jws(key, url, nonce, payload, kid=None, alg=None, jwk=None, sign_key=None):
    """A flattened JWS. payload: a dict, or "" for POST-as-GET, or raw bytes."""
    protected = {"alg": alg or alg_of(key), "nonce": nonce, "url": url}
    if kid is not None:
        protected["kid"] = kid
    else:
        protected["jwk"] = jwk or jwk_of(key)
    if isinstance(payload, dict):
        payload = json.dumps(payload).encode()
    elif isinstance(payload, str):
        payload = payload.encode()
    p64, b64 = b64url(json.dumps(protected)), b64url(payload)
    signer = sign_key or key
    der = signer.sign(f"{p64}.{b64}".encode(),
                      ec.ECDSA(hashes.SHA256() if signer.curve.key_size == 256
                               else hashes.SHA384()))
    r, s = decode_dss_signature(der)
    size = (signer.curve.key_size + 7) // 8
    return json.dumps({"protected": p64, "payload": b64,
                       "signature": b64url(_int_bytes(r, size) + _int_bytes(s, size))}).encode()


def jws_parts(protected, payload, signature=b""):
    """A flattened JWS from its parts as given (no signing): for alg none, HMAC, garbage."""
    if isinstance(payload, dict):
        payload = json.dumps(payload).encode()
    return json.dumps({"protected": b64url(json.dumps(protected)), "payload": b64url(payload),
                       "signature": b64url(signature)}).encode()


def http_request(host, port, method, path, body=None, headers=None, timeout=HTTP_TIMEOUT):
    """One request on its own connection: device.py's Response, plus header_list (every header
    in order: an ACME answer carries more than one Link)."""
    conn = http.client.HTTPConnection(host, port, timeout=timeout)
    try:
        conn.request(method, path, body=body, headers=headers or {})
        resp = conn.getresponse()
        data = resp.read()
        r = Response(resp.status, resp.reason, resp.getheaders(), data)
        r.header_list = resp.getheaders()
        return r
    finally:
        conn.close()


def links(response):
    """Every Link header value of a response."""
    return [v for k, v in response.header_list if k.lower() == "link"]


def pem_certificates(pem):
    """Every certificate of a PEM bundle, in order (Debian 12's cryptography has no
    load_pem_x509_certificates)."""
    end = b"-----END CERTIFICATE-----"
    return [x509.load_pem_x509_certificate(part + end)
            for part in pem.split(end) if part.strip()]


def csr_der(key, common_name="device"):
    csr = (x509.CertificateSigningRequestBuilder()
           .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)]))
           .sign(key, hashes.SHA256()))
    return csr.public_bytes(serialization.Encoding.DER)


class AcmeDevice:
    """One device: its account key, its Secure Enclave key, what Apple would attest of it."""

    def __init__(self, vouchd, pki, udid, serial, os_version="17.4", account_key=None,
                 public_url=None):
        self.vouchd = vouchd
        # What URLs name (public_url): the JWS url. Requests go to vouchd itself.
        self.public_url = (public_url or vouchd.url).rstrip("/")
        self.pki = pki
        self.udid = udid
        self.serial = serial
        self.os_version = os_version
        self.account_key = account_key or ec.generate_private_key(ec.SECP256R1())
        self.device_key = ec.generate_private_key(ec.SECP384R1())
        self.account_url = None
        self.nonce = None
        self.client_id = None
        self.certificate = None  # x509.Certificate once issued
        self.sent_nonce = None  # the nonce of the last JWS sent
        self.last_attestation_chain = None  # [leaf DER, sub CA DER] of the last answer

    # -- transport ------------------------------------------------------------------------
    def base(self):
        return self.public_url + "/acme"

    def request(self, method, path, body=None, headers=None):
        r = http_request(self.vouchd.host, self.vouchd.port, method, path, body=body,
                         headers=headers)
        nonce = r.header("Replay-Nonce")
        if nonce:
            self.nonce = nonce
        return r

    def fresh_nonce(self):
        r = self.request("HEAD", "/acme/new-nonce")
        assert r.status == 200, r
        return self.nonce

    def post(self, path, payload, expect=None, kid=True, key=None, url=None, nonce=None,
             content_type="application/jose+json", **jws_options):
        """POST a JWS to path (relative to the server). expect: the status wanted. kid: True
        (this account's URL), False (a jwk instead) or another kid URL."""
        if self.nonce is None:
            self.fresh_nonce()
        self.sent_nonce = nonce or self.nonce
        kid_url = (self.account_url if kid is True else kid) or None
        body = jws(key or self.account_key, url or self.public_url + path, self.sent_nonce,
                   payload, kid=kid_url, **jws_options)
        return self.post_raw(path, body, expect=expect, content_type=content_type)

    def post_raw(self, path, body, expect=None, content_type="application/jose+json"):
        """POST these bytes as they are (a JWS built by hand)."""
        headers = {"Content-Type": content_type} if content_type else {}
        r = self.request("POST", path, body=body, headers=headers)
        if expect is not None:
            assert r.status == expect, f"{path}: {r.status} {r.body[:400]!r}"
        return r

    def take_nonce(self):
        """A nonce of the server for a JWS built by hand (and remembered as the one sent)."""
        if self.nonce is None:
            self.fresh_nonce()
        self.sent_nonce, self.nonce = self.nonce, None
        return self.sent_nonce

    @staticmethod
    def path_of(url):
        return "/" + url.split("/", 3)[3]

    # -- the flow ---------------------------------------------------------------------------
    def enroll_profile(self, token=None):
        """GET /mdm/enroll and keep the ACME payload's ClientIdentifier."""
        path = "/mdm/enroll" + (f"?token={token}" if token else "")
        r = self.request("GET", path)
        assert r.status == 200, r
        profile = plistlib.loads(r.body)
        acme = [p for p in profile["PayloadContent"]
                if p["PayloadType"] == "com.apple.security.acme"]
        assert len(acme) == 1, profile
        self.client_id = acme[0]["ClientIdentifier"]
        self.acme_payload = acme[0]
        return r

    def register(self, expect=201):
        r = self.post("/acme/new-account", {"termsOfServiceAgreed": True}, kid=False,
                      expect=expect)
        self.account_url = r.header("Location")
        return r

    def new_order(self, client_id=None, expect=201):
        r = self.post("/acme/new-order", {"identifiers": [
            {"type": "permanent-identifier", "value": client_id or self.client_id}]},
            expect=expect)
        if r.status == 201:
            order = r.json()
            order["url"] = r.header("Location")
            return order
        return r

    def authorization(self, order):
        r = self.post(self.path_of(order["authorizations"][0]), "", expect=200)
        return r.json()

    def challenge(self, order):
        return self.authorization(order)["challenges"][0]

    def attestation_chain(self, token, **leaf_options):
        """[leaf, sub CA] attesting the device key, freshness = SHA-256(token)."""
        options = dict(nonce=hashlib.sha256(token.encode()).digest(), serial=self.serial,
                       udid=self.udid, os_version=self.os_version, key=self.device_key)
        options.update(leaf_options)
        return self.pki.chain(**options)

    def answer_challenge(self, order, expect=200, chain=None, payload=None, **leaf_options):
        ch = self.challenge(order)
        if payload is None:
            chain = chain or self.attestation_chain(ch["token"], **leaf_options)
            self.last_attestation_chain = chain
            payload = {"attObj": att_obj(chain)}
        return self.post(self.path_of(ch["url"]), payload, expect=expect)

    def finalize(self, order, key=None, expect=200, csr=None):
        der = csr if csr is not None else csr_der(key or self.device_key)
        return self.post(self.path_of(order["finalize"]), {"csr": b64url(der)}, expect=expect)

    def download(self, order_or_url, expect=200):
        url = order_or_url if isinstance(order_or_url, str) else order_or_url["certificate"]
        r = self.post(self.path_of(url), "", expect=expect)
        if r.status == 200:
            self.certificate = pem_certificates(r.body)[0]
        return r

    def enroll(self):
        """The whole flow; returns the certificate chain PEM."""
        self.enroll_profile()
        self.register()
        order = self.new_order()
        self.answer_challenge(order)
        r = self.finalize(order)
        return self.download(r.json()).body
