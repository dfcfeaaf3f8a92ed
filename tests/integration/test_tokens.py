"""Named API tokens with scopes, and the audit of the admin API (docs/api.md, "Tokens and scopes").

A trust token reaches nothing of the admin API, a read token only its reads; tokens are stored as
SHA-256; a revoked token is refused at once by the instance that revoked it and within moments by
another sharing the database (NOTIFY vouch_tokens); every authorized admin call is in the audit,
through the API and `vouchctl audit`; admin_token and the failed-login limit work as before."""

import hashlib
import http.client
import json
import plistlib

import harness
from harness import VOUCHCTL, VouchTestCase, command_plist, require_executable, run_tool, wait_for

NOTIFY_DEADLINE_S = 3.0


class TokenCase(VouchTestCase):
    def create(self, name, scope, server=None):
        r = (server or self.vouchd).admin("POST", "/v1/tokens",
                                          body=json.dumps({"name": name, "scope": scope}).encode(),
                                          content_type="application/json")
        self.assertStatus(r, 201, f"POST /v1/tokens {name} ({scope})")
        body = r.json()
        self.assertEqual(set(body), {"name", "scope", "token"}, body)
        self.assertEqual((body["name"], body["scope"]), (name, scope))
        self.assertRegex(body["token"], r"^vouch_[0-9a-f]{64}$")
        return body["token"]

    def ctl(self, token, *args, server=None):
        require_executable(VOUCHCTL, "vouchctl")
        return run_tool([VOUCHCTL, "--url", (server or self.vouchd).url, "--token", token]
                        + list(args))

    def audit(self, limit=1000):
        r = self.vouchd.admin("GET", f"/v1/audit?limit={limit}")
        self.assertStatus(r, 200, "GET /v1/audit")
        return r.json()


class ScopedTokensTest(TokenCase):
    # Revoked and wrong tokens are refused here on purpose: no login limit in this class
    # (LoginLimitWithTokensTest tests it).
    vouchd_config = {"admin_login_limit": "0"}

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.second = harness.Vouchd(cls.vouchd.database_url, cls.vouchd.identity_ca,
                                    name=f"{cls.__module__}.{cls.__name__}.second",
                                    admin_token=cls.vouchd.admin_token,
                                    extra=cls.vouchd_config).start()

    @classmethod
    def tearDownClass(cls):
        cls.second.stop()
        super().tearDownClass()

    def assertScopeRefused(self, r, scope, what):
        self.assertStatus(r, 403, what)
        self.assertEqual(r.json(), {"error": f"this token's scope ({scope}) does not allow this "
                                             "request"}, what)

    def test_trust_token_reaches_nothing_of_the_admin_api(self):
        dev = self.enrolled_device()
        token = self.create("gate-1", "trust")
        body = plistlib.dumps(command_plist("ProfileList"))
        for method, path, data in [
                ("GET", "/v1/devices", None),
                ("GET", f"/v1/devices/{dev.udid}", None),
                ("GET", f"/v1/devices/{dev.udid}/commands", None),
                ("PUT", f"/v1/enqueue/{dev.udid}", body),
                ("POST", f"/v1/devices/{dev.udid}/attest", b""),
                ("POST", "/v1/attest", json.dumps({"udids": [dev.udid]}).encode()),
                ("GET", f"/v1/push/{dev.udid}", None),
                ("GET", "/v1/events", None),
                ("GET", "/v1/certs", None),
                ("GET", "/v1/tokens", None),
                ("POST", "/v1/tokens", b'{"name": "mine", "scope": "admin"}'),
                ("GET", "/v1/audit", None)]:
            r = self.vouchd.admin(method, path, body=data, token=token)
            self.assertScopeRefused(r, "trust", f"trust token: {method} {path}")
        self.assertEqual(self.vouchd.commands(dev.udid)[0]["request_type"], "DeviceInformation",
                         "nothing was queued by the trust token")
        self.assertFalse([e for e in self.audit() if e["token"] == "gate-1"],
                         "refused calls are not audited as done")

    def test_read_token_reads_only(self):
        dev = self.enrolled_device()
        token = self.create("dashboard", "read")
        for path in ("/v1/devices", f"/v1/devices/{dev.udid}", f"/v1/devices/{dev.udid}/commands",
                     f"/v1/devices/{dev.udid}/attestations", "/v1/events", "/v1/certs"):
            self.assertStatus(self.vouchd.admin("GET", path, token=token), 200, f"read: GET {path}")
        body = plistlib.dumps(command_plist("ProfileList"))
        for method, path, data in [
                ("PUT", f"/v1/enqueue/{dev.udid}", body),
                ("POST", f"/v1/devices/{dev.udid}/attest", b""),
                ("POST", f"/v1/devices/{dev.udid}/allow-reenroll", b""),
                ("POST", "/v1/attest", json.dumps({"udids": [dev.udid]}).encode()),
                ("GET", f"/v1/push/{dev.udid}", None),
                ("GET", "/v1/tokens", None),
                ("POST", "/v1/tokens", b'{"name": "mine", "scope": "admin"}'),
                ("DELETE", "/v1/tokens/dashboard", None),
                ("GET", "/v1/audit", None)]:
            r = self.vouchd.admin(method, path, body=data, token=token)
            self.assertScopeRefused(r, "read", f"read token: {method} {path}")
        names = [t["name"] for t in self.vouchd.admin("GET", "/v1/tokens").json()]
        self.assertNotIn("mine", names)

    def test_admin_token_and_named_admin_tokens(self):
        self.assertStatus(self.vouchd.admin("GET", "/v1/devices"), 200, "admin_token")
        token = self.create("ops-admin", "admin")
        self.assertStatus(self.vouchd.admin("GET", "/v1/devices", token=token), 200, "named admin")
        token2 = self.create("ops-admin-2", "admin", server=self.vouchd)
        r = self.vouchd.admin("DELETE", "/v1/tokens/ops-admin-2", token=token)
        self.assertStatus(r, 200, "a named admin token revokes")
        self.assertStatus(self.vouchd.admin("GET", "/v1/devices", token=token2), 401, "revoked")
        listed = {t["name"]: t for t in self.vouchd.admin("GET", "/v1/tokens").json()}
        self.assertEqual(listed["ops-admin-2"]["created_by"], "admin_token")
        self.assertEqual(set(listed["ops-admin-2"]),
                         {"name", "scope", "created_at", "created_by", "revoked_at"})
        self.assertRFC3339(listed["ops-admin-2"]["revoked_at"], "revoked_at")
        self.assertIsNone(listed["ops-admin"]["revoked_at"])

    def test_create_refusals(self):
        self.create("taken", "read")
        for body, status in [
                ({"name": "taken", "scope": "read"}, 409),
                ({"name": "admin_token", "scope": "admin"}, 400),
                ({"name": "", "scope": "read"}, 400),
                ({"name": "x" * 65, "scope": "read"}, 400),
                ({"name": "bad name", "scope": "read"}, 400),
                ({"name": "ok", "scope": "root"}, 400),
                ({"name": "ok"}, 400),
                ({"scope": "read"}, 400)]:
            r = self.vouchd.admin("POST", "/v1/tokens", body=json.dumps(body).encode())
            self.assertStatus(r, status, f"POST /v1/tokens {body}")
        self.assertStatus(self.vouchd.admin("DELETE", "/v1/tokens/nobody"), 404, "unknown")
        self.assertStatus(self.vouchd.admin("DELETE", "/v1/tokens/admin_token"), 400, "reserved")
        self.assertStatus(self.vouchd.admin("PUT", "/v1/tokens"), 405, "PUT /v1/tokens")

    def test_revoked_token_refused_here_at_once_and_on_the_other_instance_soon(self):
        token = self.create("ci-bot", "read")
        for server in (self.vouchd, self.second):
            wait_for(lambda: server.admin("GET", "/v1/devices", token=token).status == 200,
                     NOTIFY_DEADLINE_S, what=f"the new token works on {server.name}")
        revoked = self.vouchd.admin("POST", "/v1/tokens/ci-bot/revoke")
        self.assertStatus(revoked, 200, "revoke")
        self.assertRFC3339(revoked.json()["revoked_at"], "revoked_at")
        r = self.vouchd.admin("GET", "/v1/devices", token=token)
        self.assertStatus(r, 401, "revoked token, the instance that revoked it, at once")
        self.assertEqual(r.header("WWW-Authenticate"), 'Bearer realm="vouch"')
        wait_for(lambda: self.second.admin("GET", "/v1/devices", token=token).status == 401,
                 NOTIFY_DEADLINE_S, what="the revoked token refused by the second instance")
        again = self.vouchd.admin("DELETE", "/v1/tokens/ci-bot")
        self.assertStatus(again, 200, "revoking it again")
        self.assertEqual(again.json()["revoked_at"], revoked.json()["revoked_at"],
                         "revoking a revoked token changes nothing")
        self.assertStatus(self.vouchd.admin("POST", "/v1/tokens", body=json.dumps(
            {"name": "ci-bot", "scope": "read"}).encode()), 409, "a revoked name stays taken")

    def test_token_created_on_one_instance_works_on_the_other(self):
        token = self.create("from-second", "read", server=self.second)
        self.assertStatus(self.second.admin("GET", "/v1/devices", token=token), 200,
                          "at once on the instance that made it")
        wait_for(lambda: self.vouchd.admin("GET", "/v1/devices", token=token).status == 200,
                 NOTIFY_DEADLINE_S, what="the token works on the other instance")

    def test_tokens_are_stored_hashed(self):
        token = self.create("hashed", "trust")
        self.assertEqual(self.db_find(token), {}, "the token in plain text in the database")
        self.assertEqual(self.db_find(token[len("vouch_"):]), {}, "its random part")
        digest = hashlib.sha256(token.encode()).digest()
        self.assertEqual(self.db_find(digest), {"public.api_tokens.sha256": 1}, "its SHA-256")
        listed = self.vouchd.admin("GET", "/v1/tokens").json()
        self.assertNotIn(token, json.dumps(listed))
        self.assertNotIn(digest.hex(), json.dumps(listed))

    def test_every_authorized_call_is_audited(self):
        dev = self.enrolled_device()
        token = self.create("auditor", "read")
        calls = [("GET", "/v1/devices?limit=5"), ("GET", f"/v1/devices/{dev.udid}"),
                 ("GET", f"/v1/devices/{dev.udid}/commands")]
        for method, path in calls:
            self.assertStatus(self.vouchd.admin(method, path, token=token), 200, path)
        self.assertStatus(self.vouchd.admin("PUT", f"/v1/enqueue/{dev.udid}", token=token,
                                            body=plistlib.dumps(command_plist("ProfileList"))),
                          403, "refused: not audited")
        self.assertStatus(self.vouchd.admin("POST", f"/v1/devices/{dev.udid}/attest", body=b""),
                          200, "admin_token attests")

        def entries():
            return [(e["token"], e["scope"], e["method"], e["path"], e["client"])
                    for e in self.audit()]
        wanted = [("auditor", "read", m, p, "127.0.0.1") for m, p in calls] + [
            ("admin_token", "admin", "POST", f"/v1/devices/{dev.udid}/attest", "127.0.0.1")]
        wait_for(lambda: all(w in entries() for w in wanted), 5, what=f"audit entries {wanted}")
        mine = [e for e in entries() if e[0] == "auditor"]
        self.assertEqual(sorted(mine), sorted(wanted[:3]), "only what auditor was allowed to do")
        audit = self.audit()
        ids = [e["id"] for e in audit]
        self.assertEqual(ids, sorted(ids, reverse=True), "newest first")
        self.assertEqual(set(audit[0]), {"id", "at", "token", "scope", "method", "path", "client"})
        self.assertRFC3339(audit[0]["at"], "at")
        # Paging from an entry old enough that nothing before it is still being written (the
        # audit is written beside the calls, the newest entries may commit out of order).
        anchor = min(e["id"] for e in audit if e["token"] == "auditor")
        page = self.vouchd.admin("GET", f"/v1/audit?limit=2&before={anchor}").json()
        self.assertEqual([e["id"] for e in page], [i for i in ids if i < anchor][:2],
                         "limit and before")
        for bad in ("limit=0", "limit=1001", "limit=x", "before=0", "before=-1", "before=x"):
            self.assertStatus(self.vouchd.admin("GET", f"/v1/audit?{bad}"), 400, bad)

        # The same through vouchctl, with the admin token.
        r = harness.vouchctl(self.vouchd, "audit", "--limit", "1000")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("auditor", r.stdout)
        self.assertRegex(r.stdout, rf"auditor\s+read\s+GET\s+/v1/devices/{dev.udid}\s+127\.0\.0\.1")
        self.assertTrue(r.stdout.startswith("ID"), r.stdout)
        r = harness.vouchctl(self.vouchd, "audit", "--json", "--limit", "1000")
        self.assertEqual(r.returncode, 0, r.stderr)
        listed = json.loads(r.stdout)
        self.assertIn({"token": "auditor", "scope": "read", "method": "GET",
                       "path": "/v1/devices?limit=5", "client": "127.0.0.1"},
                      [{k: e[k] for k in ("token", "scope", "method", "path", "client")}
                       for e in listed])
        r = harness.vouchctl(self.vouchd, "audit", "--json", "--limit", "1", "--before",
                             str(listed[-2]["id"]))
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual([e["id"] for e in json.loads(r.stdout)], [listed[-1]["id"]])
        r = self.ctl(token, "audit")
        self.assertEqual(r.returncode, 1, "a read token cannot read the audit")
        self.assertIn("does not allow this request", r.stderr)

    def test_vouchctl_tokens(self):
        r = harness.vouchctl(self.vouchd, "tokens", "create", "cli-made", "--scope", "read")
        self.assertEqual(r.returncode, 0, r.stderr)
        token = r.stdout.strip()
        self.assertRegex(token, r"^vouch_[0-9a-f]{64}$")
        self.assertEqual(r.stdout, token + "\n", "the token alone on standard output")
        self.assertIn("only time it is shown", r.stderr)
        r = self.ctl(token, "devices")
        self.assertEqual(r.returncode, 0, f"vouchctl devices with the new read token: {r.stderr}")
        r = self.ctl(token, "tokens")
        self.assertEqual(r.returncode, 1, "a read token does not list tokens")
        r = harness.vouchctl(self.vouchd, "tokens")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertRegex(r.stdout, r"cli-made\s+read\s+\S+\s+admin_token\s+active")
        r = harness.vouchctl(self.vouchd, "tokens", "create", "cli-made", "--scope", "read")
        self.assertEqual(r.returncode, 1, "a taken name")
        self.assertIn("exists", r.stderr)
        r = harness.vouchctl(self.vouchd, "tokens", "revoke", "cli-made")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("revoked", r.stdout)
        r = self.ctl(token, "devices")
        self.assertEqual(r.returncode, 1, "the revoked token")
        r = harness.vouchctl(self.vouchd, "tokens", "--json")
        listed = {t["name"]: t for t in json.loads(r.stdout)}
        self.assertIsNotNone(listed["cli-made"]["revoked_at"])
        self.assertNotIn("sha256", listed["cli-made"])
        for args in (["tokens", "create", "x"], ["tokens", "create", "x", "--scope", "root"],
                     ["tokens", "create", "bad name", "--scope", "read"], ["tokens", "remove"],
                     ["tokens", "--scope", "read"], ["audit", "--limit", "0"],
                     ["audit", "--before", "x"]):
            r = harness.vouchctl(self.vouchd, *args)
            self.assertEqual(r.returncode, 2, f"vouchctl {' '.join(args)}: {r.stderr}")

    def test_scope_refusals_are_counted(self):
        token = self.create("counted", "trust")
        self.vouchd.admin("GET", "/v1/devices", token=token)
        lines = [line for line in self.vouchd.metrics().text().splitlines()
                 if line.startswith('vouch_rejections_total{reason="admin_scope"}')]
        self.assertEqual(len(lines), 1, lines)


class LoginLimitWithTokensTest(TokenCase):
    """The failed-login limit is the same with named tokens: wrong tokens from one address,
    admin_login_limit of them within a minute, and that address gets 429, even with a named
    token that is right; a revoked token is a wrong one."""
    vouchd_config = {"admin_login_limit": "3"}

    def request_from(self, source, token):
        conn = http.client.HTTPConnection(self.vouchd.host, self.vouchd.port, timeout=10,
                                          source_address=(source, 0))
        try:
            conn.request("GET", "/v1/devices", headers={"Authorization": f"Bearer {token}"})
            resp = conn.getresponse()
            resp.read()
            return resp.status, resp.getheader("Retry-After"), resp.getheader("WWW-Authenticate")
        finally:
            conn.close()

    def test_wrong_tokens_then_429(self):
        attacker, operator = "127.0.0.4", "127.0.0.5"
        good = self.create("limit-read", "read")
        gone = self.create("limit-gone", "read")
        self.assertStatus(self.vouchd.admin("DELETE", "/v1/tokens/limit-gone"), 200, "revoke")
        self.assertEqual(self.request_from(attacker, good)[0], 200, "the right named token")
        for i, token in enumerate(["vouch_" + "0" * 64, gone, good + "0"]):
            status, _, www = self.request_from(attacker, token)
            self.assertEqual(status, 401, f"wrong token {i}")
            self.assertEqual(www, 'Bearer realm="vouch"')
        status, retry, _ = self.request_from(attacker, good)
        self.assertEqual(status, 429, "after 3 wrong tokens, the right one")
        self.assertTrue(retry is not None and 0 < int(retry) <= 60, retry)
        self.assertEqual(self.request_from(operator, good)[0], 200, "another address")
        text = self.vouchd.metrics().text()
        self.assertIn('vouch_rejections_total{reason="admin_rate_limited"} 1', text)
        self.assertIn('vouch_rejections_total{reason="admin_unauthorized"} 3', text)
