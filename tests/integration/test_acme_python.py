"""vouchd's ACME server driven by an ACME client library nobody here wrote: Debian's python3-acme
(2.1.0, the library certbot uses, with josepy 1.13). It registers an account, places the order,
answers the challenge with a device-attest-01 response object built on its challenge framework,
polls, finalizes and downloads the certificate; and it meets vouchd's refusals, nonces and
revocation the way it meets any RFC 8555 server.

What python3-acme is given, and why:
  * DeviceAttest01 / DeviceAttest01Response: the device-attest-01 challenge and its answer
    {"attObj": ...}, registered with acme.challenges.Challenge / ChallengeResponse (the library
    knows http-01, dns-01 and tls-alpn-01 only; an unknown type would be UnrecognizedChallenge,
    which has no response()).
  * messages.IdentifierType("permanent-identifier"): the library's constants register
    themselves when made; without it an order's identifiers do not decode.
  * DeviceAttestClient.new_order_for(): ClientV2.new_order(csr_pem) takes its identifiers from
    the CSR's DNS and IP names only, so it cannot order a permanent-identifier. new_order_for()
    is new_order's own body with the identifier given (messages.NewOrder posted with _post,
    the authorizations read with _post_as_get); everything else (answer_challenge,
    poll_and_finalize, revoke, query_registration, the nonce handling and its badNonce retry)
    is the library unmodified.
  * The directory's URLs are https://mdm.acme.test/... (public_url) while vouchd listens on
    http://127.0.0.1:PORT: a requests transport adapter mounted on the ClientNetwork's session
    sends them there. The JWS url is still the public one, as a device behind a TLS proxy
    signs it.
"""

import datetime
import hashlib

import josepy as jose
import OpenSSL
from acme import challenges, client, errors, messages
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID
from requests.adapters import HTTPAdapter

from acme_device import att_obj, pem_certificates
from test_acme import PROBLEM, PUBLIC_URL, AcmeTestCase, der_of, sha256_hex

PERMANENT_IDENTIFIER = messages.IdentifierType("permanent-identifier")


@challenges.Challenge.register
class DeviceAttest01(challenges.Challenge):
    """draft-ietf-acme-device-attest: {"type": "device-attest-01", "token": ...}. The token is
    kept as the text it is: Apple's freshness code is SHA-256 of that ASCII text."""

    typ = "device-attest-01"
    token: str = jose.field("token")

    def response(self, attestation_object):
        return DeviceAttest01Response(att_obj=attestation_object)


@challenges.ChallengeResponse.register
class DeviceAttest01Response(challenges.ChallengeResponse):
    """The answer: {"attObj": base64url(CBOR attestation object)}."""

    typ = "device-attest-01"
    att_obj: str = jose.field("attObj")


class DeviceAttestClient(client.ClientV2):
    def new_order_for(self, identifier_value, csr_pem):
        """ClientV2.new_order with a permanent-identifier instead of the CSR's DNS names."""
        order = messages.NewOrder(identifiers=[
            messages.Identifier(typ=PERMANENT_IDENTIFIER, value=identifier_value)])
        response = self._post(self.directory["newOrder"], order)
        body = messages.Order.from_json(response.json())
        authorizations = [self._authzr_from_response(self._post_as_get(url), uri=url)
                          for url in body.authorizations]
        return messages.OrderResource(body=body, uri=response.headers.get("Location"),
                                      authorizations=authorizations, csr_pem=csr_pem)


class ToVouchd(HTTPAdapter):
    """Sends https://mdm.acme.test/... to vouchd's own http://127.0.0.1:PORT/..."""

    def __init__(self, base):
        super().__init__()
        self.base = base

    def send(self, request, **kwargs):
        assert request.url.startswith(PUBLIC_URL + "/"), request.url
        request.url = self.base + request.url[len(PUBLIC_URL):]
        return super().send(request, **kwargs)


class PythonAcmeTest(AcmeTestCase):

    def library_client(self, key=None, jwk=None, alg=None):
        """python3-acme's ClientV2 for an account key (default: a new RSA 2048 key and RS256,
        what certbot makes) and no account yet."""
        if jwk is not None:
            pass
        elif key is None:
            jwk, alg = jose.JWKRSA(key=rsa.generate_private_key(65537, 2048)), jose.RS256
        else:
            jwk, alg = jose.JWKEC(key=key), {256: jose.ES256, 384: jose.ES384}[key.key_size]
        net = client.ClientNetwork(jwk, alg=alg, user_agent="vouch-integration-tests")
        net.session.mount(PUBLIC_URL + "/", ToVouchd(self.vouchd.url))
        directory = client.ClientV2.get_directory(PUBLIC_URL + "/acme/directory", net)
        return DeviceAttestClient(directory, net)

    def device_csr_pem(self, device):
        csr = (x509.CertificateSigningRequestBuilder()
               .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, device.udid)]))
               .sign(device.device_key, hashes.SHA256()))
        return csr.public_bytes(serialization.Encoding.PEM)

    def attestation_for(self, device, challb, **leaf_options):
        token = challb.chall.token
        options = dict(nonce=hashlib.sha256(token.encode()).digest(), serial=device.serial,
                       udid=device.udid, key=device.device_key)
        options.update(leaf_options)
        return att_obj(self.apple.chain(**options))

    def ordered(self, key=None):
        """A device with its profile, and python3-acme's client with an account and an order
        for the profile's ClientIdentifier."""
        device = self.acme_device()
        device.enroll_profile()
        acme = self.library_client(key)
        regr = acme.new_account(messages.NewRegistration.from_data(
            email="fleet@example.org", terms_of_service_agreed=True))
        self.assertEqual(regr.body.status, "valid")  # a plain string in Registration
        self.assertEqual(regr.body.contact, ("mailto:fleet@example.org",))
        self.assertTrue(regr.uri.startswith(PUBLIC_URL + "/acme/account/"), regr.uri)
        orderr = acme.new_order_for(device.client_id, self.device_csr_pem(device))
        return device, acme, regr, orderr

    def challenge_of(self, orderr):
        [authzr] = orderr.authorizations
        self.assertEqual(authzr.body.identifier.typ, PERMANENT_IDENTIFIER)
        [challb] = authzr.body.challenges
        self.assertIsInstance(challb.chall, DeviceAttest01)
        return challb

    def check_chain(self, device, fullchain_pem):
        chain = pem_certificates(fullchain_pem.encode())
        self.assertEqual(len(chain), 2)
        leaf = chain[0]
        self.assertEqual(leaf.public_key().public_numbers(),
                         device.device_key.public_key().public_numbers())
        self.assertEqual(leaf.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value,
                         device.udid)
        self.assertEqual(der_of(chain[1]), der_of(self.acme_ca))
        self.acme_ca.public_key().verify(leaf.signature, leaf.tbs_certificate_bytes,
                                         ec.ECDSA(leaf.signature_hash_algorithm))
        return leaf

    def test_whole_flow_with_python_acme(self):
        """new_account, new_order, answer_challenge, poll_and_finalize: the fullchain is the
        certificate for the attested key, then the ACME CA; the certificate is the one vouchd
        lists and announces."""
        device, acme, regr, orderr = self.ordered()
        self.assertEqual(orderr.body.status, messages.STATUS_PENDING)
        self.assertEqual([(i.typ, i.value) for i in orderr.body.identifiers],
                         [(PERMANENT_IDENTIFIER, device.client_id)])
        challb = self.challenge_of(orderr)
        challr = acme.answer_challenge(challb, challb.chall.response(
            self.attestation_for(device, challb)))
        self.assertEqual(challr.body.status, messages.STATUS_VALID)
        self.assertEqual(challr.authzr_uri, orderr.authorizations[0].uri)
        deadline = datetime.datetime.now() + datetime.timedelta(seconds=30)
        finalized = acme.poll_and_finalize(orderr, deadline)
        self.assertEqual(finalized.body.status, messages.STATUS_VALID)
        leaf = self.check_chain(device, finalized.fullchain_pem)
        [cert] = self.certs(device.udid)
        self.assertEqual(cert["sha256"], sha256_hex(der_of(leaf)))
        self.wait_event("identity.issued", udid=device.udid,
                        certificate_sha256=sha256_hex(der_of(leaf)))

        # The library's other calls: the same key is the same account (ConflictError with its
        # URL), onlyReturnExisting finds it, and revocation by the ordering account.
        again = self.library_client(jwk=acme.net.key, alg=acme.net.alg)
        with self.assertRaises(errors.ConflictError) as cm:
            again.new_account(messages.NewRegistration.from_data(terms_of_service_agreed=True))
        self.assertEqual(str(cm.exception.location), regr.uri)
        found = acme.query_registration(regr)
        self.assertEqual(found.uri, regr.uri)
        acme.revoke(jose.ComparableX509(OpenSSL.crypto.load_certificate(
            OpenSSL.crypto.FILETYPE_PEM, finalized.fullchain_pem.encode())), 4)
        [cert] = self.certs(device.udid)
        self.assertEqual(cert["revoked_reason"], "superseded")
        self.wait_event("identity.revoked", udid=device.udid, by="acme")

    def test_whole_flow_with_an_ec_account_key(self):
        """ES256 account key; finalize_order with its own deadline."""
        device, acme, _regr, orderr = self.ordered(ec.generate_private_key(ec.SECP256R1()))
        challb = self.challenge_of(orderr)
        acme.answer_challenge(challb, challb.chall.response(self.attestation_for(device, challb)))
        deadline = datetime.datetime.now() + datetime.timedelta(seconds=30)
        orderr = acme.poll_authorizations(orderr, deadline)
        self.assertEqual(orderr.authorizations[0].body.status, messages.STATUS_VALID)
        finalized = acme.finalize_order(orderr, deadline)
        self.check_chain(device, finalized.fullchain_pem)

    def test_refused_attestation_as_python_acme_sees_it(self):
        """A wrong freshness code: answer_challenge raises the server's problem
        (badAttestationStatement), and poll_and_finalize a ValidationError naming it."""
        device, acme, _regr, orderr = self.ordered()
        challb = self.challenge_of(orderr)
        response = challb.chall.response(self.attestation_for(
            device, challb, nonce=hashlib.sha256(b"not the token").digest()))
        with self.assertRaises(messages.Error) as cm:
            acme.answer_challenge(challb, response)
        # Error.code is None for a type python3-acme does not list (RFC 8555's only).
        self.assertEqual(cm.exception.typ, PROBLEM + "badAttestationStatement")
        self.assertIn("freshness_mismatch", cm.exception.detail)
        with self.assertRaises(errors.ValidationError) as cm:
            acme.poll_and_finalize(orderr, datetime.datetime.now()
                                   + datetime.timedelta(seconds=10))
        [authzr] = cm.exception.failed_authzrs
        self.assertEqual(authzr.body.status, messages.STATUS_INVALID)
        self.assertEqual(authzr.body.challenges[0].error.typ, PROBLEM + "badAttestationStatement")
        self.assertEqual(self.certs(device.udid), [])

    def test_finalize_too_early_and_identifier_refusals(self):
        """orderNotReady before the challenge, rejectedIdentifier for an unknown identifier and
        unsupportedIdentifier for a DNS name (the library's own new_order)."""
        device, acme, _regr, orderr = self.ordered()
        with self.assertRaises(messages.Error) as cm:
            acme.finalize_order(orderr, datetime.datetime.now() + datetime.timedelta(seconds=5))
        self.assertEqual(cm.exception.code, "orderNotReady")
        with self.assertRaises(messages.Error) as cm:
            acme.new_order_for("0123456789abcdef0123456789abcdef", orderr.csr_pem)
        self.assertEqual(cm.exception.code, "rejectedIdentifier")
        key = ec.generate_private_key(ec.SECP256R1())
        csr = (x509.CertificateSigningRequestBuilder()
               .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "d.example")]))
               .add_extension(x509.SubjectAlternativeName([x509.DNSName("d.example")]), False)
               .sign(key, hashes.SHA256()))
        with self.assertRaises(messages.Error) as cm:
            acme.new_order(csr.public_bytes(serialization.Encoding.PEM))
        self.assertEqual(cm.exception.code, "unsupportedIdentifier")
        # The order goes on after all that.
        challb = self.challenge_of(orderr)
        acme.answer_challenge(challb, challb.chall.response(self.attestation_for(device, challb)))
        self.check_chain(device, acme.poll_and_finalize(orderr).fullchain_pem)

    def test_bad_nonce_is_retried_with_the_fresh_one(self):
        """python3-acme retries a badNonce once, with the Replay-Nonce of the error: a spent
        nonce in its pool costs one refusal and nothing else."""
        _device, acme, _regr, orderr = self.ordered()
        [spent] = acme.net._nonces  # the nonce of the last answer, as the library keeps it
        acme._post_as_get(orderr.uri)  # spends it
        acme.net._nonces.clear()
        acme.net._nonces.add(spent)
        before = self.refusals()
        r = acme._post_as_get(orderr.uri)
        self.assertEqual(r.status_code, 200)
        self.assertCounted(before, self.refusals(), "bad_nonce")
