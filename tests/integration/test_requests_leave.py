"""An ended attestation request leaves attestation_requests (issue 22, migration 0014): its
attestations row (a verdict, an error answer, a time-out) keeps what the request was, so the row
goes in the statement that ends it; a canceled request, which no attestations row ends, keeps its
row. Everything that read ended requests reads them from attestations as well, and shows what it
showed: the device's command list and GET /v1/commands/{uuid}, a late or repeated answer, the
UUIDs an operator's command may not take (409), cancel-all by UUID; and a database from before
0014 loses only the rows its attestations duplicate.
"""

import secrets
import uuid

from harness import VouchTestCase, command_plist, migrations_before, suite


def pending_request(case, udid):
    return case.psql(f"SELECT command_uuid FROM attestation_requests "
                     f"WHERE udid = '{udid}' AND answered_at IS NULL").strip()


class RequestsLeaveTest(VouchTestCase):

    def request_rows(self, udid, cu):
        return self.psql(f"SELECT coalesce(outcome, '-') || ' ' || (answered_at IS NOT NULL) "
                         f"FROM attestation_requests "
                         f"WHERE udid = '{udid}' AND command_uuid = '{cu}'").split("\n")[0]

    def test_an_answered_request_leaves_its_row(self):
        dev = self.enrolled_device()
        cu = pending_request(self, dev.udid)
        self.assertTrue(cu, "enrollment asked for an attestation")
        nonce = self.psql(f"SELECT encode(nonce, 'hex') FROM attestation_requests "
                          f"WHERE command_uuid = '{cu}'").strip()
        self.assertEmpty200(dev.settle_attestation(), "answer it")
        self.assertEqual(self.request_rows(dev.udid, cu), "", "the answered request's row")
        # Its attestations row keeps what the request was.
        self.assertEqual(self.psql(
            f"SELECT encode(nonce, 'hex'), request_reason, requested_at IS NOT NULL, source "
            f"FROM attestations WHERE udid = '{dev.udid}' AND command_uuid = '{cu}'").strip(),
            f"{nonce}|enrollment|t|mdm")
        # The API shows the answered request as a DeviceInformation answered.
        listed = self.command_status(dev.udid, cu)
        self.assertEqual([(c["request_type"], c["status"]) for c in listed],
                         [("DeviceInformation", "Acknowledged")], listed)
        r = self.vouchd.admin("GET", f"/v1/devices/{dev.udid}/commands/{cu}")
        self.assertStatus(r, 200, "GET the answered request")
        self.assertEqual((r.json()["request_type"], r.json()["status"]),
                         ("DeviceInformation", "Acknowledged"), r.json())
        r = self.vouchd.admin("GET", f"/v1/commands/{cu}")
        self.assertStatus(r, 200, "GET /v1/commands of the answered request")
        self.assertEqual((r.json()["request_type"],
                          [(d["udid"], d["status"]) for d in r.json()["devices"]]),
                         ("DeviceInformation", [(dev.udid, "Acknowledged")]), r.json())
        # A repeat of the answer (a device that did not hear the 200) is a repeat: nothing new.
        before = self.vouchd.commands(dev.udid)
        r = dev.answer_attestation(dev.last_attestation_request)
        self.assertEmpty200(r, "the repeated answer")
        self.assertEqual(self.vouchd.commands(dev.udid), before, "the command list")
        self.assertEqual(self.psql(
            f"SELECT (SELECT count(*) FROM command_results WHERE command_uuid = '{cu}') || ' ' "
            f"|| (SELECT count(*) FROM attestations WHERE command_uuid = '{cu}')").strip(),
            "0 1", "a repeat stores nothing")
        # An operator's command may not take its UUID on this device.
        r = self.vouchd.enqueue([dev.udid], command_plist("ProfileList", command_uuid=cu))
        self.assertStatus(r, 409, "the UUID of the device's answered request")

    def test_an_error_answer_leaves_its_row(self):
        dev = self.enrolled_device()
        cu = pending_request(self, dev.udid)
        self.assertEmpty200(dev.settle_attestation("error"), "answer with an Error")
        self.assertEqual(self.request_rows(dev.udid, cu), "", "the request's row")
        self.assertEqual(self.psql(f"SELECT status, request_reason FROM attestations "
                                   f"WHERE command_uuid = '{cu}'").strip(), "error|enrollment")
        # A late Acknowledged of the same request: a DeviceInformation result, as before.
        r = dev.answer_attestation(dev.last_attestation_request)
        self.assertStatus(r, 200, "a late answer after the Error")
        self.assertEqual(self.psql(f"SELECT count(*) FROM attestations "
                                   f"WHERE command_uuid = '{cu}'").strip(), "1",
                         "a late answer records no verdict")
        self.assertEqual([c["request_type"] for c in self.command_status(dev.udid, cu)],
                         ["DeviceInformation"])

    def test_a_canceled_request_keeps_its_row(self):
        dev = self.enrolled_device()
        cu = pending_request(self, dev.udid)
        r = self.vouchd.admin("DELETE", f"/v1/devices/{dev.udid}/commands/{cu}")
        self.assertStatus(r, 200, "cancel the request")
        self.assertEqual(self.request_rows(dev.udid, cu), "canceled true")
        self.assertEqual(self.psql(f"SELECT count(*) FROM attestations "
                                   f"WHERE command_uuid = '{cu}'").strip(), "0")

    def test_a_timed_out_request_is_still_a_command(self):
        """A request ended by its time-out has no answer: GET /v1/commands/{uuid} still names
        it (with no device rows), cancel-all by its UUID finds nothing to cancel rather than no
        command, and its UUID stays the device's."""
        dev = self.enrolled_device()
        cu = pending_request(self, dev.udid)
        requested = self.psql(f"SELECT vouch_time(requested_at) FROM attestation_requests "
                              f"WHERE command_uuid = '{cu}'").strip()
        self.psql(f"SELECT vouch_end_attestation_request('{dev.udid}', '{cu}', 'error', "
                  f"'NoAnswer')")
        self.assertEqual(self.request_rows(dev.udid, cu), "", "the timed-out request's row")
        r = self.vouchd.admin("GET", f"/v1/commands/{cu}")
        self.assertStatus(r, 200, "GET /v1/commands of the timed-out request")
        self.assertEqual((r.json()["request_type"], r.json()["created_at"], r.json()["devices"]),
                         ("DeviceInformation", requested, []), r.json())
        r = self.vouchd.admin("DELETE", f"/v1/commands/{cu}")
        self.assertStatus(r, 200, "cancel-all of the timed-out request")
        self.assertEqual(r.json()["canceled"], 0, r.json())
        r = self.vouchd.enqueue([dev.udid], command_plist("ProfileList", command_uuid=cu))
        self.assertStatus(r, 409, "the UUID of the device's timed-out request")


class RequestsLeaveUpgradeTest(VouchTestCase):
    """A database made by the migrations before 0014, with an answered request (its
    attestations row and its stored answer), a canceled one and a pending one, is migrated by a
    new vouchd: the answered request's row goes, the others stay, and the API and the devices
    see them as before."""

    def test_an_upgraded_database_keeps_its_requests(self):
        dbname = suite().new_database("requests_leave_upgrade", self.pg)
        sql = migrations_before("requests_leave")
        udid = "UPGRADE-" + secrets.token_hex(8).upper()
        answered, canceled, pending = (str(uuid.uuid4()).upper() for _ in range(3))
        nonces = [secrets.token_bytes(32).hex() for _ in range(3)]
        sql.append(f"""
            INSERT INTO devices (udid) VALUES ('{udid}');
            INSERT INTO identity_certs (sha256, udid) VALUES (sha256('{udid}'::bytea), '{udid}');
            INSERT INTO enrollments (udid, topic, enabled, identity_cert_sha256,
                                     authenticated_at)
            VALUES ('{udid}', 'com.example.topic', true, sha256('{udid}'::bytea), now());
            INSERT INTO attestation_requests (command_uuid, udid, nonce, reason, requested_at,
                                              answered_at, outcome) VALUES
                ('{answered}', '{udid}', '\\x{nonces[0]}', 'enrollment',
                 now() - interval '3 days', now() - interval '3 days', 'answered'),
                ('{canceled}', '{udid}', '\\x{nonces[1]}', 'operator',
                 now() - interval '2 days', now() - interval '2 days', 'canceled'),
                ('{pending}', '{udid}', '\\x{nonces[2]}', 'random', now() - interval '1 hour',
                 NULL, NULL);
            INSERT INTO attestations (udid, command_uuid, nonce, request_reason, requested_at,
                                      received_at, status, device_status)
            VALUES ('{udid}', '{answered}', '\\x{nonces[0]}', 'enrollment',
                    now() - interval '3 days', now() - interval '3 days', 'unsupported',
                    'Acknowledged');
            INSERT INTO command_results (udid, command_uuid, request_type, status, report,
                                         queued_at, result_at) VALUES
                ('{udid}', '{answered}', 'DeviceInformation', 'Acknowledged',
                 convert_to('<plist version="1.0"><dict/></plist>', 'UTF8'),
                 now() - interval '3 days', now() - interval '3 days');""")
        self.pg.psql("\n".join(sql), dbname)
        with self.vouchd_on(dbname, f"{__name__}.requests_leave_upgrade") as v:

            def q(text):
                return self.pg.psql(text, dbname).strip()
            self.assertEqual(q("SELECT string_agg(command_uuid || ' ' || coalesce(outcome, '-'), "
                               "',' ORDER BY requested_at) FROM attestation_requests"),
                             f"{canceled} canceled,{pending} -",
                             "the answered request's row went, the others stayed")
            listed = {c["command_uuid"]: (c["request_type"], c["status"])
                      for c in v.commands(udid)}
            self.assertEqual(listed, {answered: ("DeviceInformation", "Acknowledged"),
                                      pending: ("DeviceInformation", "queued")}, listed)
            for cu, devices in ((answered, [(udid, "Acknowledged")]), (canceled, []),
                                (pending, [(udid, "queued")])):
                r = v.admin("GET", f"/v1/commands/{cu}")
                self.assertStatus(r, 200, f"GET /v1/commands/{cu}")
                self.assertEqual((r.json()["request_type"],
                                  [(d["udid"], d["status"]) for d in r.json()["devices"]]),
                                 ("DeviceInformation", devices), r.json())
            r = v.admin("GET", f"/v1/devices/{udid}")
            self.assertStatus(r, 200, "the device")
            self.assertEqual(r.json()["attestation"]["request"]["command_uuid"], pending)
            for cu in (answered, canceled):
                r = v.enqueue([udid], command_plist("ProfileList", command_uuid=cu))
                self.assertStatus(r, 409, "the UUID of one of the device's requests")
            # The answer to the pending request is checked against every older nonce, the
            # answered one's too (newest first).
            self.assertEqual(q(f"SELECT outcome, encode(older_nonces, 'hex') FROM vouch_report("
                               f"'{udid}', sha256('{udid}'::bytea), 'Acknowledged', "
                               f"'{pending}', NULL, NULL, NULL, NULL)"),
                             f"attestation_context|{nonces[1]}{nonces[0]}")
