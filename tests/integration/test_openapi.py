"""docs/openapi.yaml against the code and a running vouchd (issue 20, point 6).

What must hold:
  * the document is OpenAPI 3.1 as far as can be checked here: every $ref resolves, every
    operation has responses with valid status codes and a unique operationId, path templates and
    path parameters agree, every schema is a valid JSON Schema 2020-12
    (Draft202012Validator.check_schema), every security requirement names a defined scheme;
  * a real vouchd (ACME server, push certificate, a trust policy, a web-hook receiver) is driven
    through every documented path and method; each answer's status is documented for its
    operation, its Content-Type is one documented for that status, and its body validates
    against the schema (JSON parsed, NanoMDM's tab-indented answers too);
  * nothing documented goes unexercised, and vouchd answers nothing the document does not
    describe: the routes registered in server/ (http_route) and the paths the admin handlers
    compare are documented (or are the device and ACME routes, described elsewhere), and every
    method a documented path does not take, and unknown paths under /v1/, get 404 or 405;
  * GET /v1/openapi.yaml serves docs/openapi.yaml byte for byte as application/yaml, to a token
    of any scope.

OpenApiLiveTest.test_command_answers_cancelling_pushcert_upload_and_serial exercises what other
parts of issue 20 add beside this document (command answers and cancelling, PUT /v1/pushcert,
?serial=); the other tests stand on their own.
"""

import base64
import glob
import json
import os
import plistlib
import re
import secrets
import unittest
import urllib.parse
import uuid

from device import Response, raw_exchange
from harness import REPO, command_plist, unavailable, wait_for
from test_acme import AcmeTestCase
from test_cert_header import nginx_escaped

try:
    import yaml
    import jsonschema
    from jsonschema import Draft202012Validator
    MISSING = None
except ImportError as exc:  # a skip here, a failure under CI=true
    MISSING = f"python3-yaml and python3-jsonschema (apt-get install them): {exc}"

SPEC_PATH = os.path.join(REPO, "docs", "openapi.yaml")
METHODS = ("get", "put", "post", "delete", "head", "options", "patch", "trace")
PROBED_METHODS = ("GET", "PUT", "POST", "DELETE")
# Routes vouchd registers that are not the admin API: the MDM device protocol
# (docs/protocol.md) and the ACME server (docs/acme.md).
DEVICE_ROUTES = {"/mdm/checkin", "/mdm/connect", "/mdm", "/mdm/enroll", "/acme/"}
# The paths that answer any method the same (no 405): they are documented as GET.
ANY_METHOD = {"/healthz", "/metrics", "/version"}
# Command answers and cancelling, PUT /v1/pushcert (other parts of issue 20): exercised by
# test_command_answers_cancelling_pushcert_upload_and_serial, with ?serial= of GET /v1/devices.
ANSWERS_UPLOAD_SERIAL_OPERATIONS = {
    ("get", "/v1/devices/{udid}/commands/{command_uuid}"),
    ("delete", "/v1/devices/{udid}/commands/{command_uuid}"),
    ("get", "/v1/commands/{command_uuid}"),
    ("delete", "/v1/commands/{command_uuid}"),
    ("put", "/v1/pushcert"),
}


def load_spec():
    if MISSING:
        unavailable(MISSING)
    with open(SPEC_PATH, "rb") as f:
        raw = f.read()
    return raw, yaml.safe_load(raw)


def resolve_pointer(doc, ref):
    """The object a local $ref ('#/a/b') names; KeyError when it names nothing."""
    if not ref.startswith("#/"):
        raise KeyError(f"not a local reference: {ref}")
    node = doc
    for part in ref[2:].split("/"):
        part = urllib.parse.unquote(part).replace("~1", "/").replace("~0", "~")
        if isinstance(node, list):
            node = node[int(part)]
        else:
            node = node[part]
    return node


def walk(node, where="#"):
    """(location, dict) of every mapping in the document."""
    if isinstance(node, dict):
        yield where, node
        for k, v in node.items():
            yield from walk(v, f"{where}/{k}")
    elif isinstance(node, list):
        for i, v in enumerate(node):
            yield from walk(v, f"{where}/{i}")


def deref(doc, node):
    while isinstance(node, dict) and "$ref" in node and len(node) == 1:
        node = resolve_pointer(doc, node["$ref"])
    return node


def template_regex(template):
    parts = [("[^/]+" if re.fullmatch(r"\{[^/{}]+\}", seg) else re.escape(seg))
             for seg in template.split("/")]
    return re.compile("^" + "/".join(parts) + "$")


class Spec:
    """The document, its operations, and what a test run exercised of them."""

    def __init__(self, doc):
        self.doc = doc
        self.paths = doc["paths"]
        self.templates = [(template_regex(t), t) for t in self.paths]
        self.exercised = {}  # (method, template) -> {status, ...}
        # Local references ("#/components/...") resolve in the whole document.
        self._resolver = jsonschema.RefResolver(base_uri="", referrer=doc)
        self._validators = {}

    def operations(self):
        return {(m, t) for t, item in self.paths.items() for m in item if m in METHODS}

    def template_of(self, path):
        path = path.split("?", 1)[0]
        matches = [t for rx, t in self.templates if rx.match(path)]
        # A literal segment wins over a template one (as OpenAPI says).
        matches.sort(key=lambda t: t.count("{"))
        return matches[0] if matches else None

    def validator(self, schema):
        key = id(schema)
        if key not in self._validators:
            self._validators[key] = Draft202012Validator(
                schema, resolver=self._resolver, format_checker=jsonschema.FormatChecker())
        return self._validators[key]

    def problems(self, method, path, response):
        """What is wrong with this answer by the document (empty: it conforms); records the
        operation as exercised."""
        template = self.template_of(path)
        if template is None:
            return [f"{method} {path}: the path is not documented"]
        op = self.paths[template].get(method.lower())
        if op is None:
            return [f"{method} {path}: {template} documents no {method}"]
        self.exercised.setdefault((method.lower(), template), set()).add(response.status)
        where = f"{method} {path} ({template}) -> {response.status}"
        spec_response = op["responses"].get(str(response.status))
        if spec_response is None:
            return [f"{where}: status not documented (documented: "
                    f"{sorted(op['responses'])})"]
        spec_response = deref(self.doc, spec_response)
        content = spec_response.get("content")
        if not response.body:
            if content and not spec_response.get("x-vouch-empty-body"):
                return [f"{where}: an empty body, documented: {sorted(content)}"]
            return []
        if not content:
            return [f"{where}: a body where none is documented: {response.body[:200]!r}"]
        media = response.media_type()
        if media not in content:
            return [f"{where}: Content-Type {media!r} not documented ({sorted(content)})"]
        schema = content[media].get("schema", {})
        if media == "application/json":
            try:
                value = response.json()
            except ValueError as exc:
                return [f"{where}: not JSON ({exc}): {response.body[:200]!r}"]
        else:
            value = response.body.decode("utf-8", errors="replace")
        errors = sorted(self.validator(schema).iter_errors(value), key=lambda e: list(e.path))
        out = []
        for e in errors[:5]:
            out.append(f"{where}: at {'/'.join(map(str, e.absolute_path)) or '(root)'}: "
                       f"{e.message[:300]}")
        for name, header in spec_response.get("headers", {}).items():
            header = deref(self.doc, header)
            got = response.header(name)
            if got is not None and "schema" in header:
                for e in self.validator(header["schema"]).iter_errors(got):
                    out.append(f"{where}: header {name}: {e.message}")
        return out


# -- (a) the document itself -----------------------------------------------------------------
class OpenApiDocumentTest(unittest.TestCase):
    """The document alone: no vouchd needed."""

    @classmethod
    def setUpClass(cls):
        cls.raw, cls.doc = load_spec()

    def test_openapi_3_1_header(self):
        self.assertEqual(self.doc["openapi"], "3.1.0")
        self.assertIsInstance(self.doc["info"]["title"], str)
        self.assertIsInstance(self.doc["info"]["version"], str)
        self.raw.decode("ascii")  # embedded by server/attestation/embed_text.py: ASCII only

    def test_every_ref_resolves(self):
        refs = 0
        for where, node in walk(self.doc):
            if "$ref" in node:
                refs += 1
                try:
                    resolve_pointer(self.doc, node["$ref"])
                except (KeyError, IndexError, ValueError):
                    self.fail(f"{where}: $ref {node['$ref']} resolves to nothing")
        self.assertGreater(refs, 50)

    def test_every_operation_has_responses(self):
        ids = set()
        for template, item in self.doc["paths"].items():
            self.assertTrue(template.startswith("/"), template)
            for method, op in item.items():
                if method not in METHODS:
                    self.assertIn(method, ("parameters", "summary", "description"), template)
                    continue
                what = f"{method} {template}"
                self.assertTrue(op.get("responses"), f"{what}: no responses")
                for status in op["responses"]:
                    self.assertRegex(str(status), r"^([1-5][0-9][0-9]|[1-5]XX|default)$", what)
                    response = deref(self.doc, op["responses"][status])
                    self.assertIsInstance(response.get("description"), str, f"{what} {status}")
                self.assertNotIn(op.get("operationId"), ids, f"{what}: operationId used twice")
                ids.add(op.get("operationId"))

    def test_path_parameters_match_templates(self):
        for template, item in self.doc["paths"].items():
            in_template = set(re.findall(r"\{([^/{}]+)\}", template))
            common = [deref(self.doc, p) for p in item.get("parameters", [])]
            for method, op in item.items():
                if method not in METHODS:
                    continue
                params = common + [deref(self.doc, p) for p in op.get("parameters", [])]
                declared = {p["name"] for p in params if p["in"] == "path"}
                self.assertEqual(declared, in_template, f"{method} {template}")
                for p in params:
                    self.assertIn(p["in"], ("path", "query", "header", "cookie"), p)
                    if p["in"] == "path":
                        self.assertIs(p.get("required"), True, f"{template}: {p['name']}")

    def test_schemas_are_json_schema_2020_12(self):
        self.assertEqual(self.doc.get("jsonSchemaDialect"),
                         "https://json-schema.org/draft/2020-12/schema")
        checked = 0
        for where, node in walk(self.doc):
            if "schema" in node and isinstance(node["schema"], dict):
                Draft202012Validator.check_schema(node["schema"])
                checked += 1
        for name, schema in self.doc["components"]["schemas"].items():
            Draft202012Validator.check_schema(schema)
            checked += 1
        self.assertGreater(checked, 100)

    def test_security(self):
        schemes = self.doc["components"]["securitySchemes"]
        self.assertEqual((schemes["bearer"]["type"], schemes["bearer"]["scheme"]),
                         ("http", "bearer"))
        self.assertEqual((schemes["nanomdm"]["type"], schemes["nanomdm"]["scheme"]),
                         ("http", "basic"))
        self.assertIn("nanomdm", schemes["nanomdm"]["description"])
        requirements = list(self.doc["security"])
        for template, item in self.doc["paths"].items():
            for method, op in item.items():
                if method not in METHODS:
                    continue
                security = op.get("security", self.doc["security"])
                requirements += security
                # /v1/ needs a token, and so does NanoMDM's /migration; the rest does not.
                self.assertEqual(bool(security),
                                 template.startswith("/v1/") or template == "/migration",
                                 f"{method} {template}: security {security}")
        for requirement in requirements:
            for name in requirement:
                self.assertIn(name, schemes)

    def test_routes_and_handled_paths_are_documented(self):
        """Every route registered with the HTTP front, and every path an admin handler
        compares, is in the document (or is a device route, described elsewhere)."""
        sources = glob.glob(os.path.join(REPO, "server", "**", "*.c"), recursive=True)
        routes = set()
        for src in sources:
            with open(src) as f:
                routes |= set(re.findall(r'http_route\("([^"]+)"', f.read()))
        self.assertTrue(routes >= {"/v1/", "/healthz"}, routes)
        documented = list(self.doc["paths"])
        for route in routes - DEVICE_ROUTES:
            covered = [t for t in documented
                       if t == route or (route.endswith("/") and t.startswith(route))]
            self.assertTrue(covered, f"route {route} is registered but not documented")
        literal = re.compile(r'strn?cmp\(\s*(?:path|sub|rest|name)[^,]*,\s*"([^"]*)"|'
                             r'static const char \w+\[\] = "(/v1/[^"]*)"')
        handlers = (glob.glob(os.path.join(REPO, "server", "operator", "*.c")) +
                    [os.path.join(REPO, "server", "trust", "trust.c")])
        segments_of = [t.strip("/").split("/") for t in documented]
        found = 0
        for src in handlers:
            with open(src) as f:
                text = f.read()
            for m in literal.finditer(text):
                segs = (m.group(1) or m.group(2)).strip("/").split("/")
                found += 1
                covered = any(
                    all(d[i + k] == s or d[i + k].startswith("{") for k, s in enumerate(segs))
                    for d in segments_of for i in range(len(d) - len(segs) + 1))
                self.assertTrue(covered, f"{os.path.relpath(src, REPO)} handles "
                                         f"{'/'.join(segs)!r}: not in the document")
        self.assertGreater(found, 15)


# -- (b), (c) a real vouchd ----------------------------------------------------------------------
def basic(key, user="nanomdm"):
    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{key}".encode()).decode()}


class OpenApiLiveTest(AcmeTestCase):
    """Every documented operation against vouchd with its ACME server, a push certificate, a
    web-hook receiver and a trust policy."""

    acme_config = {"policy.web.require": "enrolled", "admin_login_limit": "0",
                   "migration": "on"}

    @classmethod
    def setUpClass(cls):
        cls.raw, doc = load_spec()
        cls.spec = Spec(doc)
        super().setUpClass()

    def call(self, method, path, body=None, token=None, nanomdm=False, headers=None,
             expect=None):
        """One request, checked against the document; expect: the status the test wants."""
        h = dict(headers or {})
        key = token if token is not None else self.vouchd.admin_token
        if nanomdm:
            h.update(basic(key))
        elif token != "":
            h["Authorization"] = f"Bearer {key}"
        if isinstance(body, (dict, list)):
            body = json.dumps(body).encode()
            h.setdefault("Content-Type", "application/json")
        r = self.vouchd.request(method, path, body=body, headers=h)
        problems = self.spec.problems(method, path, r)
        self.assertEqual(problems, [], "\n".join(problems))
        if expect is not None:
            self.assertStatus(r, expect, f"{method} {path}")
        return r

    def oversized_body(self, path):
        """A body over max_body_bytes (1 MiB): libevent's 413, checked against the document."""
        body = b"[" * ((1 << 20) + 1)
        head = (f"POST {path} HTTP/1.1\r\nHost: {self.vouchd.host}\r\n"
                f"Authorization: Bearer {self.vouchd.admin_token}\r\n"
                f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n"
                "Connection: close\r\n\r\n").encode()
        status, reply = raw_exchange(self.vouchd.host, self.vouchd.port, head + body)
        self.assertEqual(status, 413, reply[:300])
        head, _, rest = reply.partition(b"\r\n\r\n")
        headers = [tuple(x.strip() for x in line.decode("latin-1").split(":", 1))
                   for line in head.split(b"\r\n")[1:]]
        r = Response(status, "", headers, rest)
        problems = self.spec.problems("POST", path, r)
        self.assertEqual(problems, [], "\n".join(problems))

    def probe_undocumented(self, method, path):
        r = self.vouchd.request(method, path,
                                headers={"Authorization": f"Bearer {self.vouchd.admin_token}"},
                                body=b"" if method in ("PUT", "POST") else None)
        self.assertIn(r.status, (404, 405), f"{method} {path} is not documented: {r!r}")
        self.assertEqual(r.media_type(), "application/json", f"{method} {path}: {r!r}")
        self.assertIsInstance(r.json().get("error"), str, f"{method} {path}: {r!r}")

    def acme_enrolled(self):
        """A device enrolled (Authenticate, TokenUpdate) under an identity vouchd's ACME server
        issued, its enrollment's attestation request answered."""
        acme = self.acme_device()
        acme.enroll()
        dev = self.new_device(udid=acme.udid, serial=acme.serial, product_name="iPhone16,1",
                              model="MTUV3LL/A", os_version="17.4")
        dev.key, dev.cert = acme.device_key, acme.certificate
        self.enroll(dev)
        self.assertEmpty200(dev.settle_attestation(), "attestation request answered")
        return acme, dev

    def test_every_operation(self):
        v = self.vouchd
        ghost = "00000000-0000-0000-0000-0000000DEAD0"
        # The first delivery of every event fails: there are deliveries to retry.
        with self.receiver.lock:
            self.receiver.script = [500] * 1000
        try:
            self.exercise_all(v, ghost)
        finally:
            with self.receiver.lock:
                self.receiver.script = []
        missing = (self.spec.operations() - ANSWERS_UPLOAD_SERIAL_OPERATIONS -
                   set(self.spec.exercised))
        self.assertEqual(missing, set(), "documented operations never exercised")

    def exercise_all(self, v, ghost):
        # Without a token.
        self.call("GET", "/healthz", token="", expect=200)
        self.call("GET", "/metrics", token="", expect=200)
        self.call("GET", "/version", token="", expect=200)
        self.call("GET", "/v1/devices", token="", expect=401)
        self.call("GET", "/v1/devices", token="wrong", nanomdm=True, expect=401)
        # The HTTP front's refusals, before any handler.
        self.call("GET", "/v1/devices/%2F", expect=400)
        self.call("GET", "/healthz", headers={"X-Forwarded-For": "192.0.2.1"}, expect=403)
        self.oversized_body("/v1/attest")

        # The document itself.
        r = self.call("GET", "/v1/openapi.yaml", expect=200)
        self.assertEqual(r.body, self.raw, "GET /v1/openapi.yaml is not docs/openapi.yaml")
        self.assertEqual(r.header("Content-Type"), "application/yaml")

        # The dashboard's files, without a token (issue 21).
        self.call("GET", "/ui", token="", expect=308)
        self.call("GET", "/ui/", token="", expect=200)
        self.call("GET", "/ui/app.js", token="", expect=200)
        self.call("GET", "/ui/app.css", token="", expect=200)
        self.call("GET", "/ui/nothing.js", token="", expect=404)

        acme, dev = self.acme_enrolled()
        plain = self.enroll()
        self.assertEmpty200(plain.settle_attestation(), "attestation request answered")

        # Devices.
        listed = self.call("GET", "/v1/devices?limit=1000", expect=200).json()
        self.assertTrue({dev.udid, plain.udid} <= {d["udid"] for d in listed})
        self.call("GET", "/v1/devices?limit=1&attestation=unsupported", expect=200)
        self.call("GET", "/v1/devices?limit=0", expect=400)
        self.call("GET", "/v1/devices?attestation=maybe", expect=400)
        # What the dashboard reads of the fleet (issue 21).
        fleet = self.call("GET", "/v1/fleet", expect=200).json()
        self.assertGreaterEqual(fleet["devices"], 2, fleet)
        page = self.call("GET", "/v1/fleet/devices?q=-&attestation=unsupported&sort=verdict"
                                "&order=desc&offset=0&limit=5", expect=200).json()
        self.assertIn(plain.udid, {d["udid"] for d in page["devices"]}, page)
        self.call("GET", "/v1/fleet/devices?limit=201", expect=400)
        device = self.call("GET", f"/v1/devices/{dev.udid}", expect=200).json()
        self.assertEqual(device["identity"]["kind"], "acme-attested")
        self.call("GET", f"/v1/devices/{ghost}", expect=404)
        self.call("GET", f"/v1/devices/{plain.udid}/commands", expect=200)
        self.call("GET", f"/v1/devices/{ghost}/commands", expect=404)
        history = self.call("GET", f"/v1/devices/{dev.udid}/attestations", expect=200).json()
        self.assertIn("acme", {h["source"] for h in history}, history)
        self.call("GET", f"/v1/devices/{ghost}/attestations", expect=404)
        self.call("POST", f"/v1/devices/{plain.udid}/attest", expect=200)
        self.call("POST", f"/v1/devices/{plain.udid}/attest", expect=200)  # already pending
        self.call("POST", f"/v1/devices/{ghost}/attest", expect=404)
        self.call("POST", f"/v1/devices/{plain.udid}/allow-reenroll", expect=200)
        self.call("POST", f"/v1/devices/{ghost}/allow-reenroll", expect=404)
        self.call("POST", "/v1/attest", {"udids": [dev.udid, ghost]}, expect=200)
        self.call("POST", "/v1/attest", {"udids": []}, expect=400)

        # Commands.
        cmd = command_plist("ProfileList")
        self.call("PUT", f"/v1/enqueue/{plain.udid},{ghost}", plistlib.dumps(cmd), expect=200)
        self.call("PUT", f"/v1/enqueue/{plain.udid}", plistlib.dumps(cmd), expect=409)
        self.call("POST", f"/v1/enqueue/{ghost}?nopush=1",
                  plistlib.dumps(command_plist("ProfileList")), expect=404)
        self.call("POST", f"/v1/enqueue/{plain.udid}", b"not a plist", expect=400)
        r = self.call("PUT", f"/v1/enqueue/{plain.udid},{ghost}",
                      plistlib.dumps(command_plist("SecurityInfo")), nanomdm=True, expect=207)
        self.assertIn(b"\n\t", r.body, "NanoMDM's answer is tab-indented")
        self.call("POST", f"/v1/enqueue/{plain.udid}?nopush=1",
                  plistlib.dumps(command_plist("SecurityInfo"), fmt=plistlib.FMT_BINARY),
                  nanomdm=True, expect=200)
        self.call("PUT", f"/v1/enqueue/{plain.udid}", b"not a plist", nanomdm=True, expect=400)

        # Pushes and the push certificate.
        self.call("GET", f"/v1/push/{plain.udid}", expect=200)
        self.call("POST", f"/v1/push/{plain.udid},{ghost}", expect=200)
        self.call("GET", f"/v1/push/{ghost}", expect=404)
        self.call("GET", f"/v1/push/{plain.udid},{ghost}", nanomdm=True, expect=207)
        self.call("POST", f"/v1/push/{plain.udid}", nanomdm=True, expect=200)
        self.call("GET", f"/v1/pushcert?topic={self.topic}", expect=200)
        self.call("GET", "/v1/pushcert", nanomdm=True, expect=200)
        self.call("GET", "/v1/pushcert?topic=com.apple.mgmt.other", expect=404)

        # NanoMDM's /migration (issue 25) and how far it has come.
        migrated = self.new_device()
        self.call("PUT", "/migration", plistlib.dumps(migrated.authenticate_message()),
                  nanomdm=True, expect=200)
        self.call("POST", "/migration", plistlib.dumps(migrated.token_update_message()),
                  expect=200)
        self.call("PUT", "/migration", b"not a plist", nanomdm=True, expect=400)
        self.call("PUT", "/migration", plistlib.dumps(self.new_device().token_update_message()),
                  nanomdm=True, expect=409)
        self.call("PUT", "/migration", b"", token="", expect=401)
        self.call("GET", "/v1/migration", expect=200)
        self.call("GET", f"/v1/devices/{migrated.udid}", expect=200)

        # Events: the identity.issued event's delivery is failing (the receiver answers 500).
        events = self.call("GET", "/v1/events?limit=1000", expect=200).json()
        issued = [e for e in events if e["topic"] == "identity.issued"]
        self.assertTrue(issued, events)
        self.call("GET", "/v1/events?status=pending&limit=5", expect=200)
        self.call("GET", "/v1/events?status=lost", expect=400)
        self.call("POST", f"/v1/events/{issued[0]['id']}/retry", expect=200)
        self.call("POST", "/v1/events/999999999999/retry", expect=404)

        # Identities.
        certs = self.call("GET", f"/v1/certs?udid={dev.udid}", expect=200).json()
        self.assertEqual(len(certs), 1, certs)
        self.call("GET", "/v1/certs?limit=1001", expect=400)
        self.call("POST", "/v1/certs/abcdef0123/revoke", expect=404)
        self.call("POST", f"/v1/certs/{certs[0]['serial']}/revoke", {"reason": ""}, expect=400)
        serial = "F" + secrets.token_hex(5).upper()
        self.call("POST", "/v1/expected-devices", {"serial_numbers": [serial]}, expect=200)
        self.call("POST", "/v1/expected-devices", {"serial_numbers": ["not a serial"]},
                  expect=400)
        self.call("GET", "/v1/expected-devices", expect=200)

        # Trust decisions.
        r = self.call("POST", "/v1/trust/web", {"udid": dev.udid}, expect=200)
        self.assertEqual(r.json()["decision"], "allow", r.json())
        r = self.call("POST", "/v1/trust/web", {"serial_number": "NOSUCHSERIAL"}, expect=200)
        self.assertIsNone(r.json()["device"])
        self.call("POST", "/v1/trust/web", {"udid": dev.udid, "serial_number": dev.serial},
                  expect=400)
        self.call("POST", "/v1/trust/nope", {"udid": dev.udid}, expect=404)
        self.call("GET", "/v1/trust/web/nginx",
                  headers={"Vouch-Client-Cert": nginx_escaped(acme.certificate)}, expect=204)
        r = self.call("GET", "/v1/trust/web/nginx", expect=403)
        self.assertEqual(r.header("Vouch-Decision"), "deny")

        # Tokens, scopes and the audit.
        name = "openapi-" + secrets.token_hex(3)
        read = self.call("POST", "/v1/tokens", {"name": name, "scope": "read"}, expect=201)
        read_token = read.json()["token"]
        trust = self.call("POST", "/v1/tokens", {"name": name + "-t", "scope": "trust"},
                          expect=201).json()["token"]
        self.call("POST", "/v1/tokens", {"name": name, "scope": "read"}, expect=409)
        self.call("POST", "/v1/tokens", {"name": "a b", "scope": "read"}, expect=400)
        self.call("GET", "/v1/tokens", expect=200)
        self.call("GET", "/v1/audit?limit=50", expect=200)
        self.call("GET", "/v1/audit?before=0", expect=400)
        self.call("GET", "/v1/fleet", token=read_token, expect=200)
        self.call("GET", "/v1/fleet/devices", token=trust, expect=403)
        for token in (read_token, trust):
            r = self.call("GET", "/v1/openapi.yaml", token=token, expect=200)
            self.assertEqual(r.body, self.raw, "any scope reads the document")

        def audited():
            entries = self.call("GET", "/v1/audit?limit=100", expect=200).json()
            return {e["token"] for e in entries if e["path"] == "/v1/openapi.yaml"}
        wait_for(lambda: {name, name + "-t"} <= audited(), 10, what="the reads audited")
        self.call("GET", "/v1/tokens", token=read_token, expect=403)
        self.call("GET", "/v1/devices", token=trust, expect=403)
        self.call("POST", "/v1/trust/web", {"udid": dev.udid}, token=trust, expect=200)
        self.call("POST", "/v1/trust/web", {"udid": dev.udid}, token=read_token, expect=403)
        self.call("GET", f"/v1/devices/{dev.udid}", token=read_token, nanomdm=True, expect=200)
        self.call("DELETE", f"/v1/tokens/{name}", expect=200)
        self.call("POST", f"/v1/tokens/{name}/revoke", expect=200)
        self.call("POST", "/v1/tokens/no-such-token/revoke", expect=404)
        self.call("DELETE", "/v1/tokens/admin_token", expect=400)
        self.call("GET", "/v1/devices", token=read_token, expect=401)

        # Last: revoking the ACME identity.
        r = self.call("POST", f"/v1/certs/{certs[0]['serial']}/revoke",
                      {"reason": "superseded"}, expect=200)
        self.assertIsNotNone(r.json()["revoked_at"])

        # (c) vouchd answers nothing else: every method a documented path does not take, and
        # unknown paths, are 404 or 405.
        samples = {"udid": plain.udid, "command_uuid": cmd["CommandUUID"], "ids": plain.udid,
                   "id": str(issued[0]["id"]), "serial": certs[0]["serial"], "name": name,
                   "policy": "web", "asset": "app.js"}
        for template, item in self.spec.paths.items():
            if template in ANY_METHOD:
                continue
            path = re.sub(r"\{([^/{}]+)\}", lambda m: samples[m.group(1)], template)
            for method in PROBED_METHODS:
                if method.lower() not in item:
                    self.probe_undocumented(method, path)
        for path in ("/v1/nothing", "/v1/trust", f"/v1/devices/{plain.udid}/nothing",
                     f"/v1/devices/{plain.udid}/commands/{cmd['CommandUUID']}/x",
                     "/v1/events/1/x", "/v1/certs/abc/x", f"/v1/tokens/{name}/x",
                     "/v1/trust/web/x", "/v1/openapi.json"):
            for method in PROBED_METHODS:
                self.probe_undocumented(method, path)

    def test_command_answers_cancelling_pushcert_upload_and_serial(self):
        """Command answers and cancelling, PUT /v1/pushcert and ?serial=: what the other parts
        of issue 20 add to the API."""
        dev = self.enroll()
        self.assertEmpty200(dev.settle_attestation(), "attestation request answered")
        ghost_uuid = str(uuid.uuid4()).upper()

        # A command's answer: queued, then the device's report.
        cmd = command_plist("ProfileList")
        self.call("PUT", f"/v1/enqueue/{dev.udid}?nopush=1", plistlib.dumps(cmd), expect=200)
        path = f"/v1/devices/{dev.udid}/commands/{cmd['CommandUUID']}"
        answer = self.call("GET", path, expect=200).json()
        self.assertEqual((answer["status"], answer["report"]), ("queued", None), answer)
        self.assertCommand(dev.idle(), cmd["CommandUUID"])
        self.assertEmpty200(dev.report("Acknowledged", cmd["CommandUUID"], ProfileList=[]))
        answer = self.call("GET", path, expect=200).json()
        self.assertEqual(answer["status"], "Acknowledged", answer)
        self.assertEqual(answer["report"]["ProfileList"], [], answer)
        self.call("GET", f"/v1/devices/{dev.udid}/commands/{ghost_uuid}", expect=404)
        whole = self.call("GET", f"/v1/commands/{cmd['CommandUUID']}", expect=200).json()
        self.assertEqual([d["udid"] for d in whole["devices"]], [dev.udid], whole)
        self.call("GET", f"/v1/commands/{ghost_uuid}", expect=404)
        self.call("DELETE", path, expect=409)  # answered already

        # An Error answer carries its ErrorChain.
        failing = command_plist("InstallProfile", Payload=b"x")
        self.call("PUT", f"/v1/enqueue/{dev.udid}?nopush=1", plistlib.dumps(failing), expect=200)
        self.assertCommand(dev.idle(), failing["CommandUUID"])
        chain = [{"ErrorCode": 4001, "ErrorDomain": "MCProfileErrorDomain",
                  "LocalizedDescription": "The profile is bad.",
                  "USEnglishDescription": "The profile is bad."}]
        self.assertEmpty200(dev.report("Error", failing["CommandUUID"], ErrorChain=chain))
        answer = self.call("GET", f"/v1/devices/{dev.udid}/commands/{failing['CommandUUID']}",
                           expect=200).json()
        self.assertEqual(answer["error_chain"][0]["ErrorCode"], 4001, answer)

        # Cancelling queued commands, per device and everywhere.
        for query_path, expected in (
                (lambda u: f"/v1/devices/{dev.udid}/commands/{u}",
                 lambda u: {"udid": dev.udid, "command_uuid": u, "canceled": True}),
                (lambda u: f"/v1/commands/{u}", lambda u: {"command_uuid": u, "canceled": 1})):
            queued = command_plist("ProfileList")
            self.call("PUT", f"/v1/enqueue/{dev.udid}?nopush=1", plistlib.dumps(queued),
                      expect=200)
            r = self.call("DELETE", query_path(queued["CommandUUID"]), expect=200)
            self.assertEqual(r.json(), expected(queued["CommandUUID"]))
            self.call("DELETE", query_path(ghost_uuid), expect=404)
        self.assertEmpty200(dev.idle(), "nothing left in the queue")

        # PUT /v1/pushcert: the certificate vouchd uses, again; then not a certificate.
        with open(self.cert_path, "rb") as f:
            pem = f.read()
        with open(self.key_path, "rb") as f:
            pem += f.read()
        r = self.call("PUT", "/v1/pushcert", pem, expect=200)
        self.assertEqual(r.json()["topic"], self.topic)
        self.call("PUT", "/v1/pushcert", b"-----BEGIN GARBAGE-----\n", expect=400)

        # ?serial= filters the device list.
        listed = self.call("GET", f"/v1/devices?serial={dev.serial}", expect=200).json()
        self.assertEqual([d["udid"] for d in listed], [dev.udid], listed)
        self.assertEqual(self.call("GET", "/v1/devices?serial=NOSUCHSERIAL1",
                                   expect=200).json(), [])

        missing = ANSWERS_UPLOAD_SERIAL_OPERATIONS - set(self.spec.exercised)
        self.assertEqual(missing, set(), "command answer and upload operations never exercised")
