"""A verified verdict that cannot be borrowed, outlived or opted out of (issue 16), against a real
vouchd and PostgreSQL, living through weeks by the database's clock.

What must hold (docs/attestation.md):
  * a new certificate for an enrolled UDID starts a new enrollment generation: no verdict,
    device.reenrolled, a fresh request; an intruder that then answers with errors ends in
    failed (no_answer), and a year later is still not verified;
  * a cached answer counts only for a nonce of the same generation, in a leaf made after that
    request and less than Apple's 7-day cache ago; an OS-change request needs a new one;
  * silence fails: a request left unanswered for answer_timeout is retried, then failed;
  * a verified verdict expires at attestation_max_age after Apple made it (attestation.expired),
    and a re-check pending beside it does not hide it;
  * an enrollment without a serial takes it from its first verified attestation, and every
    later answer must match it.
"""

import datetime
import hashlib
import json
import os
import subprocess

from cryptography.hazmat.primitives import serialization

from device import Device
from harness import VOUCHD, Vouchd, clean_env, suite, vouchctl, wait_for
from test_attestation import IPHONE, AttestationCase
from test_scheduler import DEADLINE_S, SchedulerCase, db_clock, set_clock, sql

DAY = datetime.timedelta(days=1)


class VerdictTest(SchedulerCase):
    # One retry, a second after a failure: a silent device fails within two time-outs. A long
    # mean interval keeps random re-checks out of the way.
    vouchd_config = {"attestation_retry_limit": "1", "attestation_retry_delay": "1s",
                     "attestation_mean_interval": "365d", "attestation_max_age": "30d"}

    # -- helpers ------------------------------------------------------------------------------
    def events(self, dev, topic):
        out = sql(self, f"SELECT body FROM events WHERE topic = '{topic}' "
                        f"AND udid = '{dev.udid}' ORDER BY id")
        return [json.loads(line) for line in out.splitlines() if line.strip()]

    def wait_pending(self, dev, what):
        return wait_for(lambda: self.attestation(dev.udid)["request"], DEADLINE_S,
                        what=f"{what}: a request out")

    def wait_status(self, dev, status, what, reason=None):
        def reached():
            att = self.attestation(dev.udid)
            return att if (att["status"], att["reason"]) == (status, reason) else None
        return wait_for(reached, DEADLINE_S, what=f"{what}: {status} ({reason})")

    def cert_sha256(self, dev):
        return hashlib.sha256(dev.cert.public_bytes(serialization.Encoding.DER)).hexdigest()

    def now_leaf(self):
        """Leaf options for a leaf Apple made just now by the database's clock, which the tests
        of this class move on (weeks, and a year)."""
        return {"not_before": db_clock(self).replace(microsecond=0)
                - datetime.timedelta(minutes=5)}

    def intruder_for(self, dev):
        """Another certificate from the same trusted CA, claiming dev's UDID and serial."""
        return Device(self.vouchd, self.ca, udid=dev.udid, serial=dev.serial,
                      model=dev.model, product_name=dev.product_name,
                      os_version=dev.os_version, build_version=dev.build_version)

    # -- generations ----------------------------------------------------------------------------
    def test_takeover_then_errors_then_a_year_is_never_verified(self):
        victim = self.iphone()
        self.attest_at_clock(victim, "the real device")
        gen = self.device_obj(victim.udid)["generation"]
        self.assertIn(victim.udid, self.listed("verified"))

        intruder = self.intruder_for(victim).enroll()
        obj = self.device_obj(victim.udid)
        self.assertEqual(obj["generation"], gen + 1, obj)
        att = self.attestation(victim.udid)
        self.assertEqual(att["status"], "none", f"the verdict followed the new certificate: {att}")
        self.assertEqual(att["request"]["reason"], "enrollment", att)
        self.assertNotIn(victim.udid, self.listed("verified"))
        [event] = self.events(victim, "device.reenrolled")
        self.assertEqual((event["previous_cert_sha256"], event["cert_sha256"], event["generation"]),
                         (self.cert_sha256(victim), self.cert_sha256(intruder), gen + 1), event)
        self.assertEqual(event["device"]["attestation"]["status"], "none", event)
        # The earlier generation stays in the history, as such.
        self.assertEqual([e["generation"] for e in self.history(victim.udid)], [gen])
        # The real device is now refused (never 401).
        self.assertStatus(victim.idle(), 403, "the real device after the takeover")

        # The intruder answers every request with an error: retried once, then failed.
        for attempt in ("enrollment", "retry"):
            self.wait_pending(intruder, attempt)
            cu, _nonce = self.take_request(intruder, attempt)
            self.assertEmpty200(intruder.report("Error", cu, ErrorChain=[]), f"{attempt}: Error")
        att = self.wait_status(intruder, "failed", "errors past the retry limit", "no_answer")
        health = self.vouchd.healthz().json()
        self.assertEqual(health["clock"], "test", health)  # this suite lives by the test clock
        self.assertNotIn(victim.udid, self.listed("verified"))
        self.assertIn(victim.udid, self.listed("failed"))

        # Every request of the device: pending or canceled in attestation_requests, ended in
        # its attestations row (since 0014).
        def asked():
            return int(sql(self, "SELECT (SELECT count(*) FROM attestation_requests "
                                 f"WHERE udid = '{victim.udid}') + (SELECT count(*) "
                                 f"FROM attestations WHERE udid = '{victim.udid}' "
                                 "AND source = 'mdm')").strip())
        before = asked()
        set_clock(self, db_clock(self) + 200 * DAY)
        wait_for(lambda: asked() > before,
                 DEADLINE_S, what="a year on: the scheduler asks again")
        att = self.attestation(victim.udid)
        self.assertNotIn(att["status"], ("verified",), f"200 days later: {att}")
        self.assertNotIn(victim.udid, self.listed("verified"))

    def test_cached_answer_from_an_earlier_generation(self):
        dev = self.iphone()
        _cu, _nonce, old_chain = self.attest_fresh(dev, "generation 1", **self.now_leaf())
        wiped = self.intruder_for(dev).enroll()  # erased and enrolled again: a new certificate
        cu, _nonce = self.take_request(wiped, "generation 2")
        self.answer(wiped, cu, old_chain, what="generation 1's chain")
        self.assertVerdict(wiped, cu, "failed", "nonce_mismatch", "unknown",
                           "a nonce of the earlier generation")

    # -- cached answers -------------------------------------------------------------------------
    def test_cached_answer_eight_days_old_is_stale(self):
        dev = self.iphone()
        generated = db_clock(self).replace(microsecond=0) - datetime.timedelta(minutes=5)
        _cu, _nonce, chain = self.attest_fresh(dev, "fresh", not_before=generated)
        set_clock(self, db_clock(self) + 8 * DAY)
        self.post_attest(dev.udid)
        cu, _nonce = self.take_request(dev, "8 days later")
        # (The reply may carry the day's light query.)
        r = dev.report("Acknowledged", cu, QueryResponses=self.query_responses(dev, chain))
        self.assertStatus(r, 200, "the 8-day-old chain")
        self.assertVerdict(dev, cu, "failed", "stale_attestation", "cached", "8 days old")

    def test_clock_moved_between_request_and_answer(self):
        """vouchd keeps the context it hands out with a request until the answer; the answer is
        still verified at the clock of its arrival, here 8 days after the request was fetched."""
        dev = self.iphone()
        generated = db_clock(self).replace(microsecond=0) - datetime.timedelta(minutes=5)
        _cu, _nonce, chain = self.attest_fresh(dev, "fresh", not_before=generated)
        self.post_attest(dev.udid)
        cu, _nonce = self.take_request(dev, "the next request")
        # Not set_clock: its NOTIFY would start a scheduler tick (8 days of other devices due)
        # whose locks could make the answer wait past the database timeout. A tick of its own
        # would end the request, 8 days old, as unanswered (answer_timeout) between the answer's
        # two calls: the time-out is lengthened for this test.
        sql(self, "UPDATE scheduler_policy "
                  "SET answer_timeout = answer_timeout + interval '30 days'")
        try:
            sql(self, "UPDATE vouch_clock SET skew = skew + interval '8 days'")
            r = dev.report("Acknowledged", cu, QueryResponses=self.query_responses(dev, chain))
            self.assertStatus(r, 200, "the chain, 8 days old when the answer comes")
            self.assertVerdict(dev, cu, "failed", "stale_attestation", "cached",
                               "8 days old when the answer comes")
        finally:
            sql(self, "UPDATE scheduler_policy "
                      "SET answer_timeout = answer_timeout - interval '30 days'")

    def test_cached_answer_does_not_cover_an_os_change(self):
        dev = self.iphone(os_version="17.4")
        _cu, generated = self.attest_at_clock(dev, "fresh at 17.4")
        cu1 = self.history(dev.udid)[0]["command_uuid"]
        chain = None
        # The device updates; the light query a day later says so.
        set_clock(self, db_clock(self) + DAY + datetime.timedelta(minutes=1))
        cmd = self.take_info_query(dev, "a day later")
        self.answer_info(dev, cmd, "17.5", "21F79")
        due, reason = self.next_due(dev)
        self.assertEqual(reason, "os_change")
        # When the OS-change request comes, the old 17.4 leaf is no answer to it.
        set_clock(self, due + datetime.timedelta(seconds=30))
        self.wait_pending(dev, "the OS-change request")
        self.assertEqual(self.attestation(dev.udid)["request"]["reason"], "os_change")
        cu, _nonce = self.take_request(dev, "os_change")
        first_nonce = bytes.fromhex(self.history(dev.udid)[-1]["nonce"])
        self.assertEqual(self.history(dev.udid)[-1]["command_uuid"], cu1)
        chain = self.chain_for(dev, first_nonce, os_version="17.4", not_before=generated)
        self.answer(dev, cu, chain, what="the cached 17.4 leaf", OSVersion="17.5")
        att, _ = self.assertVerdict(dev, cu, "failed", "stale_attestation", "cached",
                                    "cached leaf for the OS change")
        self.assertNotIn(dev.udid, self.listed("verified"))

    # -- silence and expiry ---------------------------------------------------------------------
    def test_silence_fails(self):
        dev = self.iphone()
        self.attest_at_clock(dev, "verified")
        body = self.post_attest(dev.udid)
        # Never answered: after answer_timeout (24 hours) the request ends, and is asked again.
        set_clock(self, db_clock(self) + DAY + datetime.timedelta(minutes=1))
        wait_for(lambda: [e for e in self.history(dev.udid)
                          if e["command_uuid"] == body["command_uuid"]], DEADLINE_S,
                 what="the unanswered request ended")
        entry = [e for e in self.history(dev.udid) if e["command_uuid"] == body["command_uuid"]]
        self.assertEqual((entry[0]["status"], entry[0]["device_status"]), ("error", "NoAnswer"))
        self.assertNotIn(body["command_uuid"],
                         [c["command_uuid"] for c in self.vouchd.commands(dev.udid)
                          if c["status"] in ("queued", "NotNow")],
                         "the unanswered command is still queued")
        self.assertEqual(self.attestation(dev.udid)["status"], "verified",
                         "one unanswered request is not yet a verdict")
        retry = self.wait_pending(dev, "the retry")
        self.assertEqual(retry["reason"], "retry")
        set_clock(self, db_clock(self) + DAY + datetime.timedelta(minutes=1))
        self.wait_status(dev, "failed", "silence past the retry limit", "no_answer")
        self.assertEqual([(e["status"], e["reason"], e["device_status"])
                          for e in self.history(dev.udid)[:3]],
                         [("failed", "no_answer", "NoAnswer"), ("error", None, "NoAnswer"),
                          ("verified", None, "Acknowledged")], "the history of the silence")
        self.assertNotIn(dev.udid, self.listed("verified"))

    def test_verdict_expires(self):
        dev = self.iphone()
        _cu, generated = self.attest_at_clock(dev, "verified")
        att = self.attestation(dev.udid)
        self.assertEqual(att["expires_at"],
                         (generated + 30 * DAY).strftime("%Y-%m-%dT%H:%M:%SZ"), att)
        # A re-check pending beside it does not hide the verdict.
        self.post_attest(dev.udid)
        self.assertIn(dev.udid, self.listed("verified"))
        self.assertEqual(self.attestation(dev.udid)["status"], "verified")
        # The device never answers; a month after Apple made its leaf the verdict is over.
        set_clock(self, generated + 30 * DAY + datetime.timedelta(minutes=1))
        att = self.wait_status(dev, "expired", "past attestation_max_age")
        self.assertIsNotNone(att["verified_at"], att)
        self.assertIn(dev.udid, self.listed("expired"))
        self.assertNotIn(dev.udid, self.listed("verified"))
        # A tick marks it (and writes attestation.expired for a receiver that takes it).
        wait_for(lambda: sql(self, "SELECT attestation_status FROM devices "
                                   f"WHERE udid = '{dev.udid}'").strip() == "expired",
                 DEADLINE_S, what="the tick marked the verdict expired")
        # A new fresh answer makes it verified again.
        self.wait_pending(dev, "a request out")
        self.attest_at_clock(dev, "verified again")
        self.assertIn(dev.udid, self.listed("verified"))

    # -- checking again ---------------------------------------------------------------------------
    def reverify(self, dev, answer_id=None, roots=None):
        args = ["verify", "--server", "--roots", roots or self.roots_path, "--json", dev.udid]
        out = vouchctl(self.vouchd, *args + ([str(answer_id)] if answer_id else []))
        return out.returncode, (json.loads(out.stdout) if out.stdout.strip() else None), out

    def test_every_stored_verdict_can_be_checked_again(self):
        dev = self.iphone()
        _cu, _n, chain = self.attest_fresh(dev, "fresh", **self.now_leaf())
        self.post_attest(dev.udid)
        cu, _nonce = self.take_request(dev, "cached")
        self.answer(dev, cu, chain, what="the same chain again")
        self.assertVerdict(dev, cu, "verified", None, "cached", "cached")
        self.post_attest(dev.udid)
        cu, nonce = self.take_request(dev, "another device's")
        self.answer(dev, cu, self.chain_for(dev, nonce, udid="00008030-0000000000000000",
                                            **self.now_leaf()),
                    what="another UDID")
        self.assertVerdict(dev, cu, "failed", "udid_mismatch", "fresh", "another UDID")
        history = self.history(dev.udid)
        for entry in history:
            with self.subTest(entry["status"], freshness=entry["freshness"]):
                rc, body, out = self.reverify(dev, entry["id"])
                self.assertEqual(rc, 0, out.stdout + out.stderr)
                self.assertTrue(body["agree"], body)
                self.assertEqual((body["rechecked"]["status"], body["rechecked"]["reason"],
                                  body["rechecked"]["freshness"]),
                                 (entry["status"], entry["reason"], entry["freshness"]), body)
        # The newest with a chain by default; another root does not agree.
        rc, body, _out = self.reverify(dev)
        self.assertEqual(body["id"], history[0]["id"])
        other = os.path.join(suite().run_dir, f"other-roots-{dev.udid}.pem")
        self.other_pki.write_roots(other)
        rc, body, out = self.reverify(dev, history[-1]["id"], roots=other)
        self.assertEqual(rc, 1, out.stdout + out.stderr)
        self.assertFalse(body["agree"], body)
        self.assertEqual(body["rechecked"]["reason"], "untrusted_chain", body)

    # -- the serial -----------------------------------------------------------------------------
    def test_serial_taken_from_the_first_verified_attestation(self):
        dev = self.new_device(os_version="17.4", **IPHONE)
        message = dev.authenticate_message()
        del message["SerialNumber"]  # optional in Authenticate
        self.assertEmpty200(dev.checkin(message), "Authenticate without SerialNumber")
        self.assertEmpty200(dev.token_update(), "TokenUpdate")
        self.assertIsNone(self.device_obj(dev.udid)["serial_number"])
        self.attest_at_clock(dev, "the first verified attestation")
        self.assertEqual(self.device_obj(dev.udid)["serial_number"], dev.serial)
        self.post_attest(dev.udid)
        cu, nonce = self.take_request(dev, "another serial")
        self.answer(dev, cu, self.chain_for(dev, nonce, serial="C02ZZZZZZZZZ", **self.now_leaf()),
                    what="another serial")
        self.assertVerdict(dev, cu, "failed", "serial_mismatch", "fresh", "another serial")


class ReenrollRefuseTest(AttestationCase):
    """reenroll = refuse: a new certificate for an enrolled device waits for an operator."""

    vouchd_config = {"reenroll": "refuse"}

    def test_new_certificate_refused_until_allowed_once(self):
        dev = self.iphone()
        self.attest_fresh(dev, "verified")
        newcomer = Device(self.vouchd, self.ca, udid=dev.udid, serial=dev.serial,
                          model=dev.model, product_name=dev.product_name,
                          os_version=dev.os_version, build_version=dev.build_version)
        r = newcomer.authenticate()
        self.assertStatus(r, 403, "a new certificate for an enrolled device")
        self.assertIn(b"reenroll_refused", r.body, repr(r))
        obj = self.device_obj(dev.udid)
        self.assertEqual((obj["generation"], obj["attestation"]["status"]), (1, "verified"), obj)
        self.assertEmpty200(dev.idle(), "the enrolled device is untouched")

        out = vouchctl(self.vouchd, "device", dev.udid, "allow-reenroll")
        self.assertEqual(out.returncode, 0, out.stderr)
        newcomer.enroll()
        obj = self.device_obj(dev.udid)
        self.assertEqual((obj["generation"], obj["attestation"]["status"]), (2, "none"), obj)

        # The allowance was for one certificate.
        third = Device(self.vouchd, self.ca, udid=dev.udid, serial=dev.serial)
        self.assertStatus(third.authenticate(), 403, "a third certificate")
        # After a CheckOut the device may come back with any certificate.
        self.assertEmpty200(newcomer.checkout(), "CheckOut")
        self.assertEmpty200(third.authenticate(), "a new certificate after CheckOut")

        out = vouchctl(self.vouchd, "device", "NO-SUCH-DEVICE", "allow-reenroll")
        self.assertEqual(out.returncode, 1, out.stdout + out.stderr)
        out = vouchctl(self.vouchd, "device", dev.udid, "let-me-in")
        self.assertEqual(out.returncode, 2, out.stdout + out.stderr)


class ClockTest(AttestationCase):
    """One clock: verdicts are taken at the database's real time; vouch_clock (how the tests live
    through weeks) counts only when vouchd says test_clock = true and the database's owner
    allowed it."""

    vouchd_config = {"test_clock": None}  # as in production

    def test_a_moved_clock_does_not_move_verdicts(self):
        sql(self, "UPDATE vouch_clock SET skew = interval '-400 days'")
        try:
            self.vouchd.restart()
            self.assertIn("which vouchd ignores", self.vouchd.log_tail(),
                          "a moved clock is said at start")
            # 400 days ago the stand-in Apple leaf was not yet valid: verified means real time.
            dev = self.iphone()
            self.attest_fresh(dev, "a fresh leaf, vouch_clock moved back 400 days")
            self.assertEqual(self.vouchd.healthz().json()["clock"], "real")
        finally:
            sql(self, "UPDATE vouch_clock SET skew = interval '0'")

    def test_test_clock_needs_the_database_owner(self):
        dbname = suite().new_database("no_test_clock", test_clock=False)
        v = Vouchd(self.pg.conninfo(dbname), suite().identity_ca_path(),
                   name=f"{self.id()}.refused", extra={"test_clock": "true"})
        v.write_config()
        p = subprocess.run([VOUCHD, "--config", v.config_path], stdin=subprocess.DEVNULL,
                           capture_output=True, text=True, timeout=30, env=clean_env())
        self.assertEqual(p.returncode, 1, p.stderr)
        self.assertIn("ALTER DATABASE", p.stderr)
        self.assertIn("vouch.test_clock", p.stderr)
