"""A stand-in for Apple's Managed Device Attestation PKI, for the integration tests.

Independent of vouchd (shares no code with server/attestation/attest.c): made here with `cryptography`, shaped
after docs/attestation.md and the real leaf in tests/testdata/apple/:

    root    "Apple Enterprise Attestation Root CA", P-384, ECDSA-SHA384, CA:TRUE, SKI, KU certSign
    sub CA  "Apple Enterprise Attestation Sub CA 1", P-384, ECDSA-SHA384, CA:TRUE pathlen 0,
            AKI/SKI, issued by the root
    leaf    P-384, ECDSA-SHA384, issued by the sub CA, NO Authority/Subject Key Identifier,
            basicConstraints critical CA:FALSE, keyUsage critical, then the Apple extensions
            under 1.2.840.113635.100.8, non-critical, in the order seen on the real leaf, each
            value being the raw OCTET STRING contents:
              .10.2 sepOS, .10.3 LLB, .10.1 OS, .9.4 SoftwareUpdateDeviceID, .13.2 secure boot
                    (raw ASCII)
              .13.1 SIP status, .13.3 third-party kexts (DER INTEGER, 02 01 00 for 0)
              .9.1 serial, .9.2 UDID (raw ASCII)
              .11.1 freshness code (the raw nonce bytes)

    pki = AttestationPKI()               # a fresh root + sub CA (keys live only in memory)
    pki.write_roots(path)                # the PEM for vouchd's attestation_roots
    chain = pki.chain(nonce=n, serial=s, udid=u, os_version="17.4")   # [leaf DER, sub DER]
    AttestationPKI()  .chain(...)        # same names, another key: "another root"

Every property is settable: a str (ASCII) or bytes (raw) value, "" for a blank value (the
extension is present and empty), None to leave the extension out. Integers for .13.1/.13.3 are
DER-encoded; bytes are taken raw. Validity is settable (not_before/not_after or days), and the
leaf can be signed by any PKI's sub CA (issuer=...), or by its root directly.
"""

import datetime
import hashlib

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID, ObjectIdentifier

APPLE_ARC = "1.2.840.113635.100.8"
OID_SERIAL = ObjectIdentifier(APPLE_ARC + ".9.1")
OID_UDID = ObjectIdentifier(APPLE_ARC + ".9.2")
OID_SOFTWARE_UPDATE_DEVICE_ID = ObjectIdentifier(APPLE_ARC + ".9.4")
OID_OS_VERSION = ObjectIdentifier(APPLE_ARC + ".10.1")
OID_SEPOS_VERSION = ObjectIdentifier(APPLE_ARC + ".10.2")
OID_LLB_VERSION = ObjectIdentifier(APPLE_ARC + ".10.3")
OID_FRESHNESS = ObjectIdentifier(APPLE_ARC + ".11.1")
OID_SIP = ObjectIdentifier(APPLE_ARC + ".13.1")
OID_SECURE_BOOT = ObjectIdentifier(APPLE_ARC + ".13.2")
OID_KEXTS = ObjectIdentifier(APPLE_ARC + ".13.3")

ROOT_CN = "Apple Enterprise Attestation Root CA"
SUB_CN = "Apple Enterprise Attestation Sub CA 1"
LEAF_DAYS = 91  # leaves seen in the field are valid for about 91 days

_DEFAULT = object()


def utcnow():
    return datetime.datetime.now(datetime.timezone.utc).replace(microsecond=0)


def rfc3339(when):
    """The form vouchd is expected to print: YYYY-MM-DDTHH:MM:SSZ (UTC, whole seconds). A naive
    datetime is taken as UTC (what cryptography < 42 returns for a certificate's validity)."""
    if when.tzinfo is None:
        when = when.replace(tzinfo=datetime.timezone.utc)
    return when.astimezone(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def not_before(cert):
    """The certificate's notBefore, timezone-aware UTC, on any cryptography version."""
    value = getattr(cert, "not_valid_before_utc", None) or cert.not_valid_before
    return value if value.tzinfo else value.replace(tzinfo=datetime.timezone.utc)


def not_after(cert):
    value = getattr(cert, "not_valid_after_utc", None) or cert.not_valid_after
    return value if value.tzinfo else value.replace(tzinfo=datetime.timezone.utc)


def der_integer(value):
    """DER INTEGER of a Python int (0 -> 02 01 00)."""
    if value == 0:
        body = b"\x00"
    else:
        length = (value.bit_length() + 8) // 8 if value > 0 else (
            (-value - 1).bit_length() + 8) // 8
        body = value.to_bytes(length, "big", signed=True)
    if len(body) >= 128:
        raise ValueError("integer too large for this encoder")
    return b"\x02" + bytes([len(body)]) + body


def _apple_name(cn):
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn),
                      x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Apple Inc."),
                      x509.NameAttribute(NameOID.COUNTRY_NAME, "US")])


def _ca_key_usage():
    return x509.KeyUsage(digital_signature=False, content_commitment=False,
                         key_encipherment=False, data_encipherment=False, key_agreement=False,
                         key_cert_sign=True, crl_sign=True, encipher_only=False,
                         decipher_only=False)


def _leaf_key_usage():
    return x509.KeyUsage(digital_signature=True, content_commitment=True, key_encipherment=True,
                         data_encipherment=True, key_agreement=False, key_cert_sign=False,
                         crl_sign=False, encipher_only=False, decipher_only=False)


def _raw(value):
    if isinstance(value, str):
        return value.encode("ascii")
    return bytes(value)


def _int_or_raw(value):
    if isinstance(value, bool):
        raise TypeError("give .13.1/.13.3 as the raw int Apple encodes (0 = enabled/not "
                        "allowed) or raw bytes, not a bool")
    if isinstance(value, int):
        return der_integer(value)
    return _raw(value)


def der(cert):
    return cert.public_bytes(serialization.Encoding.DER)


def pem(cert):
    return cert.public_bytes(serialization.Encoding.PEM)


def sha256_hex(cert_or_der):
    data = cert_or_der if isinstance(cert_or_der, (bytes, bytearray)) else der(cert_or_der)
    return hashlib.sha256(data).hexdigest()


class AttestationPKI:
    """A root and "Sub CA 1". Two instances have the same names and different keys."""

    def __init__(self, root_cn=ROOT_CN, sub_cn=SUB_CN, root_not_before=None, root_days=9000,
                 sub_not_before=None, sub_days=5000, sub_is_ca=True):
        """sub_is_ca=False: the sub CA says CA:FALSE (and has no keyCertSign): must not verify."""
        now = utcnow()
        self.root_key = ec.generate_private_key(ec.SECP384R1())
        self.root_name = _apple_name(root_cn)
        rnb = root_not_before or now - datetime.timedelta(days=700)
        self.root = (
            x509.CertificateBuilder()
            .subject_name(self.root_name).issuer_name(self.root_name)
            .public_key(self.root_key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(rnb).not_valid_after(rnb + datetime.timedelta(days=root_days))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(
                self.root_key.public_key()), critical=False)
            .add_extension(_ca_key_usage(), critical=True)
            .sign(self.root_key, hashes.SHA384()))

        self.sub_key = ec.generate_private_key(ec.SECP384R1())
        self.sub_name = _apple_name(sub_cn)
        snb = sub_not_before or now - datetime.timedelta(days=600)
        self.sub = (
            x509.CertificateBuilder()
            .subject_name(self.sub_name).issuer_name(self.root_name)
            .public_key(self.sub_key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(snb).not_valid_after(snb + datetime.timedelta(days=sub_days))
            .add_extension(x509.BasicConstraints(ca=sub_is_ca, path_length=0 if sub_is_ca
                                                 else None), critical=True)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(
                self.root_key.public_key()), critical=False)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(
                self.sub_key.public_key()), critical=False)
            .add_extension(_ca_key_usage() if sub_is_ca else _leaf_key_usage(), critical=True)
            .sign(self.root_key, hashes.SHA384()))

    # -- trust anchors ------------------------------------------------------------------------
    def roots_pem(self):
        return pem(self.root)

    def write_roots(self, path, *more):
        """Write this root (and the roots of the other PKIs given) as one PEM file."""
        with open(path, "wb") as f:
            f.write(self.roots_pem())
            for other in more:
                f.write(other.roots_pem())
        return path

    # -- leaves -------------------------------------------------------------------------------
    def leaf(self, nonce=None, serial=None, udid=None, os_version="17.4",
             sepos_version="17.4", llb_version="iBoot-10151.101.3",
             software_update_device_id="D83AP", secure_boot=None, sip_status=None,
             kexts_status=None, not_before=None, not_after=None, days=LEAF_DAYS,
             issuer=None, sign_with_root=False, extra_extensions=(), common_name=None,
             key=None):
        """One attestation leaf (an x509.Certificate).

        key: the private key whose public key the leaf attests (default: a new P-384 key), as
        an ACME device's Secure Enclave key is attested for device-attest-01.

        issuer: another AttestationPKI whose sub CA signs the leaf (default: self).
        sign_with_root: the root signs the leaf directly (issuer name = the root's).
        extra_extensions: more (x509.ExtensionType or (oid_string, raw_bytes), critical) pairs.
        """
        ca = issuer or self
        if sign_with_root:
            signer_key, issuer_name = ca.root_key, ca.root_name
        else:
            signer_key, issuer_name = ca.sub_key, ca.sub_name
        key = key or ec.generate_private_key(ec.SECP384R1())
        now = utcnow()
        nb = not_before or now - datetime.timedelta(minutes=5)
        na = not_after or nb + datetime.timedelta(days=days)
        cn = common_name or hashlib.sha256(
            key.public_key().public_bytes(serialization.Encoding.X962,
                                          serialization.PublicFormat.UncompressedPoint)
        ).hexdigest()
        subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn),
                             x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME,
                                                "AAA Certification"),
                             x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Apple Inc."),
                             x509.NameAttribute(NameOID.STATE_OR_PROVINCE_NAME, "California")])
        b = (x509.CertificateBuilder()
             .subject_name(subject).issuer_name(issuer_name)
             .public_key(key.public_key())
             .serial_number(x509.random_serial_number())
             .not_valid_before(nb).not_valid_after(na)
             .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
             .add_extension(_leaf_key_usage(), critical=True))
        # The order of the real leaf (tests/testdata/apple/real-leaf-macos-TMWFWWWP67.expected.json).
        props = [(OID_SEPOS_VERSION, sepos_version, _raw),
                 (OID_LLB_VERSION, llb_version, _raw),
                 (OID_OS_VERSION, os_version, _raw),
                 (OID_SOFTWARE_UPDATE_DEVICE_ID, software_update_device_id, _raw),
                 (OID_SECURE_BOOT, secure_boot, _raw),
                 (OID_SIP, sip_status, _int_or_raw),
                 (OID_KEXTS, kexts_status, _int_or_raw),
                 (OID_SERIAL, serial, _raw),
                 (OID_UDID, udid, _raw),
                 (OID_FRESHNESS, nonce, _raw)]
        for oid, value, encode in props:
            if value is not None:
                b = b.add_extension(x509.UnrecognizedExtension(oid, encode(value)),
                                    critical=False)
        for ext, critical in extra_extensions:
            if isinstance(ext, tuple):
                ext = x509.UnrecognizedExtension(ObjectIdentifier(ext[0]), _raw(ext[1]))
            b = b.add_extension(ext, critical=critical)
        return b.sign(signer_key, hashes.SHA384())

    def chain(self, issuer=None, **leaf_options):
        """[leaf DER, sub CA DER] as a device sends it (the root is not included). The sub CA
        is the issuer's (default: this PKI's)."""
        leaf = self.leaf(issuer=issuer, **leaf_options)
        return [der(leaf), der((issuer or self).sub)]


def apple_extensions(cert):
    """{oid string: raw value} of the Apple extensions of a certificate (for self-checks)."""
    out = {}
    for ext in cert.extensions:
        if ext.oid.dotted_string.startswith(APPLE_ARC + "."):
            out[ext.oid.dotted_string] = (ext.value.value, ext.critical)
    return out
