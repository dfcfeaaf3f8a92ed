"""An attestation request is its own queue entry (issue 22, migration 0012): asking for an
attestation writes its attestation_requests row and nothing in commands or command_queue, yet
the device gets it first, a NotNow puts it off to the next session, the admin API shows it as
a queued DeviceInformation as before, an operator's command may not take its CommandUUID on the
same device, and a database from before 0012 keeps its queued, put-off and answered requests.
"""

import secrets
import uuid

from harness import VouchTestCase, command_plist, migrations_before, suite


def pending_request(case, udid):
    return case.psql(f"SELECT command_uuid FROM attestation_requests "
                     f"WHERE udid = '{udid}' AND answered_at IS NULL").strip()


class AttestationQueueTest(VouchTestCase):

    def test_a_request_writes_no_command_and_comes_first(self):
        dev = self.enrolled_device()
        cu = pending_request(self, dev.udid)
        self.assertTrue(cu, "enrollment asked for an attestation")
        self.assertEqual(self.psql(
            f"SELECT (SELECT count(*) FROM command_queue WHERE udid = '{dev.udid}') + "
            f"(SELECT count(*) FROM commands WHERE command_uuid = '{cu}')").strip(), "0",
            "the request wrote a commands or command_queue row")
        # An operator's command queued after it still comes second.
        other = command_plist("ProfileList")
        self.enqueue_ok([dev.udid], other)
        listed = {c["command_uuid"]: c for c in self.vouchd.commands(dev.udid)}
        self.assertEqual((listed[cu]["request_type"], listed[cu]["status"],
                          listed[cu]["not_now_count"]), ("DeviceInformation", "queued", 0),
                         listed)
        cmd = self.assertCommand(dev.idle(), cu, "Idle: the attestation request first")
        self.assertIn("DeviceAttestationNonce", cmd["Command"])
        # Put off: the other command now, the request again in the next session.
        self.assertCommand(dev.report("NotNow", cu), other["CommandUUID"],
                           "NotNow: the queue's next command")
        self.assertEqual(self.psql(
            f"SELECT not_now_count, not_now_at IS NOT NULL FROM attestation_requests "
            f"WHERE udid = '{dev.udid}' AND command_uuid = '{cu}'").strip(), "1|t")
        listed = {c["command_uuid"]: c for c in self.vouchd.commands(dev.udid)}
        self.assertEqual((listed[cu]["status"], listed[cu]["not_now_count"]), ("NotNow", 1))
        r = self.vouchd.admin("GET", f"/v1/devices/{dev.udid}/commands/{cu}")
        self.assertStatus(r, 200, "GET the put-off request")
        self.assertEqual((r.json()["status"], r.json()["not_now_count"],
                          r.json()["request_type"]), ("queued", 1, "DeviceInformation"))
        r = dev.report("Acknowledged", other["CommandUUID"])
        self.assertStatus(r, 200, "answer the other command")
        self.assertFalse(r.body, "the put-off request waits for the next session")
        self.assertCommand(dev.idle(), cu, "the next session's Idle: the request again")
        self.assertEmpty200(dev.settle_attestation(), "answer it")
        self.assertEqual(pending_request(self, dev.udid), "", "the request is answered")
        self.assertEqual([c for c in self.vouchd.commands(dev.udid) if c["status"] == "queued"],
                         [], "nothing queued after the answer")
        # A put-off answer is kept in command_results, with the request's time and NotNows
        # (the ended request is its attestations row, since 0014).
        self.assertEqual(self.psql(
            f"SELECT r.request_type, r.not_now_count, r.queued_at = q.requested_at "
            f"FROM command_results r JOIN attestations q USING (udid, command_uuid) "
            f"WHERE r.udid = '{dev.udid}' AND r.command_uuid = '{cu}'").strip(),
            "DeviceInformation|1|t")

    def test_an_operator_command_may_not_take_a_request_uuid(self):
        dev = self.enrolled_device()
        bystander = self.enrolled_device()
        cu = pending_request(self, dev.udid)
        r = self.vouchd.enqueue([dev.udid], command_plist("ProfileList", command_uuid=cu))
        self.assertStatus(r, 409, "the UUID of the device's pending attestation request")
        self.assertEmpty200(dev.settle_attestation(), "answer it")
        r = self.vouchd.enqueue([bystander.udid, dev.udid],
                                command_plist("ProfileList", command_uuid=cu))
        self.assertStatus(r, 409, "the UUID of an answered attestation request of a target")
        self.assertEqual(self.psql(f"SELECT count(*) FROM command_queue "
                                   f"WHERE command_uuid = '{cu}'").strip(), "0")
        # Another device's request UUID is no command of this one.
        r = self.vouchd.enqueue([bystander.udid], command_plist("ProfileList", command_uuid=cu))
        self.assertStatus(r, 200, "the UUID of another device's request")

    def test_an_operator_uuid_names_only_the_operator_command(self):
        """An operator's command that took the UUID of another device's attestation request
        (pending or answered) is that command alone: its answers and its cancel never reach
        the other device's request."""
        asked, answered, target = (self.enrolled_device() for _ in range(3))
        pending_uuid = pending_request(self, asked.udid)
        answered_uuid = pending_request(self, answered.udid)
        self.assertEmpty200(answered.settle_attestation(), "answer one request")
        for cu in (pending_uuid, answered_uuid):
            r = self.vouchd.enqueue([target.udid], command_plist("ProfileList", command_uuid=cu))
            self.assertStatus(r, 200, "another device's request UUID")
            r = self.vouchd.admin("GET", f"/v1/commands/{cu}")
            self.assertStatus(r, 200, "GET the operator's command")
            self.assertEqual(r.json()["request_type"], "ProfileList", r.json())
            self.assertEqual([a["udid"] for a in r.json()["devices"]], [target.udid], r.json())
            r = self.vouchd.admin("DELETE", f"/v1/commands/{cu}")
            self.assertStatus(r, 200, "cancel the operator's command")
            self.assertEqual(r.json()["canceled"], 1, r.json())
        self.assertEqual(pending_request(self, asked.udid), pending_uuid,
                         "the other device's request is still pending")

    def test_cancel_all_and_command_answers_of_a_request(self):
        dev = self.enrolled_device()
        cu = pending_request(self, dev.udid)
        r = self.vouchd.admin("GET", f"/v1/commands/{cu}")
        self.assertStatus(r, 200, "GET the request as a command")
        body = r.json()
        self.assertEqual(body["request_type"], "DeviceInformation", body)
        self.assertTrue(body["created_at"], body)
        self.assertEqual([(a["udid"], a["status"]) for a in body["devices"]],
                         [(dev.udid, "queued")], body)
        r = self.vouchd.admin("DELETE", f"/v1/commands/{cu}")
        self.assertStatus(r, 200, "cancel the request everywhere")
        self.assertEqual(r.json()["canceled"], 1, r.json())
        self.assertEqual(self.psql(f"SELECT outcome FROM attestation_requests "
                                   f"WHERE command_uuid = '{cu}'").strip(), "canceled")
        r = dev.idle()
        self.assertStatus(r, 200, "Idle after the cancel")
        self.assertFalse(r.body, "the canceled request is not handed out")


    def test_a_pending_request_with_a_stored_result_ends(self):
        """A pending request whose answer was already stored without a verdict (the state a
        migrated identity's first answer left before 0012) is not handed out again for ever:
        the next answer ends it as its time-out would (error, NoAnswer)."""
        dev = self.enrolled_device()
        cu = pending_request(self, dev.udid)
        self.psql(f"INSERT INTO command_results (udid, command_uuid, request_type, status, report) "
                  f"VALUES ('{dev.udid}', '{cu}', 'DeviceInformation', 'Acknowledged', '\\x00')")
        self.assertCommand(dev.idle(), cu, "still handed out while pending")
        r = dev.settle_attestation()
        self.assertStatus(r, 200, "the answer")
        self.assertFalse(r.body, "the request is not handed out again")
        # Ended as an error: its attestations row keeps it, its request row is gone (0014).
        self.assertEqual(self.psql(f"SELECT status, device_status FROM attestations "
                                   f"WHERE udid = '{dev.udid}' AND command_uuid = '{cu}'").strip(),
                         "error|NoAnswer")
        self.assertEqual(self.psql(f"SELECT count(*) FROM attestation_requests "
                                   f"WHERE udid = '{dev.udid}' AND command_uuid = '{cu}'").strip(),
                         "0")
        r = dev.idle()
        self.assertStatus(r, 200, "Idle")
        self.assertFalse(r.body, "nothing queued")


class AttestationQueueUpgradeTest(VouchTestCase):
    """A database made by the migrations before 0012, with a queued, a put-off and an answered
    attestation request (each with its commands row) and an operator's command, is migrated by
    a new vouchd: the requests' queue state moves to their rows, their commands and queue
    entries go, and the API and the devices see them as before."""

    def test_an_upgraded_database_keeps_its_requests(self):
        dbname = suite().new_database("attestation_queue_upgrade", self.pg)
        sql = migrations_before("attestation_queue")
        a, b = ("UPGRADE-" + secrets.token_hex(8).upper() for _ in range(2))
        pending, put_off, answered, other = (str(uuid.uuid4()).upper() for _ in range(4))
        nonces = [secrets.token_bytes(32).hex() for _ in range(3)]
        for udid in (a, b):
            sql.append(f"""
                INSERT INTO devices (udid) VALUES ('{udid}');
                INSERT INTO identity_certs (sha256, udid)
                VALUES (sha256('{udid}'::bytea), '{udid}');
                INSERT INTO enrollments (udid, topic, enabled, identity_cert_sha256,
                                         authenticated_at)
                VALUES ('{udid}', 'com.example.topic', true, sha256('{udid}'::bytea), now());""")
        sql.append(f"""
            INSERT INTO commands (command_uuid, request_type, body) VALUES
                ('{pending}', 'DeviceInformation', NULL),
                ('{put_off}', 'DeviceInformation', NULL),
                ('{answered}', 'DeviceInformation', NULL),
                ('{other}', 'ProfileList', convert_to('<plist/>', 'UTF8'));
            INSERT INTO attestation_requests (command_uuid, udid, nonce, reason, requested_at,
                                              answered_at, outcome) VALUES
                ('{answered}', '{a}', '\\x{nonces[0]}', 'enrollment', now() - interval '2 days',
                 now() - interval '2 days', 'answered'),
                ('{pending}', '{a}', '\\x{nonces[1]}', 'random', now() - interval '1 hour',
                 NULL, NULL),
                ('{put_off}', '{b}', '\\x{nonces[2]}', 'operator', now() - interval '2 hours',
                 NULL, NULL);
            INSERT INTO command_queue (udid, command_uuid, priority, queued_at, not_now_at,
                                       not_now_count) VALUES
                ('{a}', '{pending}', 1, now() - interval '1 hour', NULL, 0),
                ('{b}', '{put_off}', 1, now() - interval '2 hours', now() - interval '90 minutes',
                 2),
                ('{a}', '{other}', 0, now() - interval '30 minutes', NULL, 0);
            INSERT INTO command_results (udid, command_uuid, request_type, status, report,
                                         queued_at, result_at) VALUES
                ('{a}', '{answered}', 'DeviceInformation', 'Acknowledged',
                 convert_to('<plist version="1.0"><dict/></plist>', 'UTF8'),
                 now() - interval '2 days', now() - interval '2 days');""")
        self.pg.psql("\n".join(sql), dbname)
        with self.vouchd_on(dbname, f"{__name__}.attestation_queue_upgrade") as v:

            def q(text):
                return self.pg.psql(text, dbname).strip()
            self.assertEqual(q("SELECT string_agg(command_uuid, ',' ORDER BY command_uuid) "
                               "FROM commands"), other, "only the operator's command is kept")
            self.assertEqual(q("SELECT string_agg(udid || ' ' || command_uuid, ',') "
                               "FROM command_queue"), f"{a} {other}", "the queue")
            self.assertEqual(q(f"SELECT coalesce(not_now_count, 0), not_now_at IS NOT NULL "
                               f"FROM attestation_requests WHERE command_uuid = '{put_off}'"),
                             "2|t", "the put-off request keeps its NotNows")
            self.assertEqual(q(f"SELECT coalesce(not_now_count, 0), not_now_at IS NOT NULL "
                               f"FROM attestation_requests WHERE command_uuid = '{pending}'"),
                             "0|f")
            listed = {c["command_uuid"]: c for c in v.commands(a)}
            self.assertEqual(
                {k: (c["request_type"], c["status"], c["not_now_count"])
                 for k, c in listed.items()},
                {pending: ("DeviceInformation", "queued", 0),
                 answered: ("DeviceInformation", "Acknowledged", 0),
                 other: ("ProfileList", "queued", 0)}, listed)
            listed = {c["command_uuid"]: c for c in v.commands(b)}
            self.assertEqual((listed[put_off]["status"], listed[put_off]["not_now_count"]),
                             ("NotNow", 2), listed)
            r = v.admin("GET", f"/v1/commands/{answered}")
            self.assertStatus(r, 200, "the answered request's answers")
            self.assertEqual((r.json()["request_type"],
                              [(d["udid"], d["status"]) for d in r.json()["devices"]]),
                             ("DeviceInformation", [(a, "Acknowledged")]), r.json())

            def report(udid, status, cu="NULL"):
                return q(f"SELECT coalesce(next_command_uuid, '-') || ' ' || "
                         f"coalesce(encode(next_nonce, 'hex'), '-') FROM vouch_report("
                         f"'{udid}', sha256('{udid}'::bytea), '{status}', {cu}, NULL, NULL, "
                         f"NULL, NULL)")
            self.assertEqual(report(a, "Idle"), f"{pending} {nonces[1]}",
                             "the queued request comes first, built from its nonce")
            self.assertEqual(report(b, "Idle"), f"{put_off} {nonces[2]}",
                             "the request put off in an earlier session comes again")
            self.assertEqual(report(b, "NotNow", f"'{put_off}'"), "- -",
                             "put off in this session: nothing more")
            self.assertEqual(q(f"SELECT not_now_count FROM attestation_requests "
                               f"WHERE command_uuid = '{put_off}'"), "3")
