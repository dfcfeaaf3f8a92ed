"""How attestation answers are stored (issue 22; docs/attestation.md, "Storage"), and that they
read back through the admin API as the device sent them.

What must hold:
  * an answer the attestation row can give back whole (UDID, CommandUUID, Status and strings
    in QueryResponses beside the chain; never put off) leaves no command_results row: the row
    keeps its shape (attestations.answer), and GET .../commands/{uuid} (and the device's command
    list) shows the report as the device sent it: every QueryResponses key in the device's
    order, the chain's certificates in order, characters XML must escape;
  * any other answer to an attestation request is stored in command_results without its
    certificates (a binary plist, its DevicePropertiesAttestation an empty array), and reads
    back the same way; a repeated answer stays a repeat;
  * the Sub CA of N verified chains is stored once (attestation_cas), each attestation row keeps
    its leaf alone, and the history (GET .../attestations) still shows the whole chain;
  * a chain that did not verify, or that carried a certificate its path did not need, is kept
    whole in its row, and its extra CAs never enter the shared table;
  * the attestation request's command body is not stored, and the device still gets it;
  * a database of the previous schema (migrations 0001-0007) with answers in it upgrades: its
    chains move to the shared table and its answers read as before.
"""

import base64
import hashlib
import json
import plistlib
import uuid

from fake_apple import der
from harness import migration_entries, migration_text, suite
from test_attestation import AttestationCase



# The objects as vouchd writes them (server/attestation/attest_json.c), keys in order.
PROPERTIES_KEYS = ["serial_number", "udid", "os_version", "sepos_version", "llb_version",
                   "software_update_device_id", "sip_enabled", "secure_boot",
                   "third_party_kexts_allowed"]
CHECKED_KEYS = ["udid", "serial", "os_version", "at", "require_fresh", "cached_requested_at"]


def b64(data):
    return base64.b64encode(data).decode()


class AnswerStorageTest(AttestationCase):

    def command_answer(self, dev, command_uuid):
        r = self.vouchd.admin("GET", f"/v1/devices/{dev.udid}/commands/{command_uuid}")
        self.assertStatus(r, 200, f"GET the answer of {dev.udid} to {command_uuid}")
        return r.json()

    def stored_report(self, dev, command_uuid):
        return bytes.fromhex(self.psql(
            f"SELECT encode(report, 'hex') FROM command_results "
            f"WHERE udid = '{dev.udid}' AND command_uuid = '{command_uuid}'").strip())

    def test_answer_reads_back_as_sent_and_the_sub_ca_is_stored_once(self):
        sub = der(self.pki.sub)
        answers = []
        for i in range(3):
            dev = self.iphone()
            cu, nonce, chain = self.attest_fresh(dev, what=f"device {i}")
            answers.append((dev, cu, chain))
        for dev, cu, chain in answers:
            self.assertEqual(chain[1], sub, "the stand-in PKI's chain ends with its Sub CA")
            got = self.command_answer(dev, cu)
            self.assertEqual(got["status"], "Acknowledged", got)
            want = self.query_responses(dev, [b64(c) for c in chain])
            self.assertEqual(got["report"]["QueryResponses"], want,
                             "the answer read back is not what the device sent")
            # device.py writes its plists with sorted keys: the order the device sent
            self.assertEqual(list(got["report"]["QueryResponses"]), sorted(want),
                             "the keys of QueryResponses are not in the device's order")
            self.assertEqual(self.stored_report(dev, cu), b"",
                             "an answer the attestation row gives back has a command_results row")
            self.assertEqual(self.psql(
                f"SELECT split_part(answer, E'\\x1f', 1) FROM attestations "
                f"WHERE command_uuid = '{cu}'").strip(),
                "CQSU", "the attestation row does not keep the answer's shape (plistlib's "
                        "sorted keys: CommandUUID, QueryResponses, Status, UDID)")
            listed = self.vouchd.admin("GET", f"/v1/devices/{dev.udid}/commands").json()
            self.assertEqual([(c["command_uuid"], c["status"]) for c in listed],
                             [(cu, "Acknowledged")], "the device's command list")
            history = [e for e in self.history(dev.udid) if e["command_uuid"] == cu]
            self.assertEqual(history[0]["chain"], [b64(c) for c in chain],
                             "the history's chain is not the one the device sent")
            self.assertEqual(self.psql(
                f"SELECT cardinality(chain) FROM attestations WHERE command_uuid = '{cu}'"
            ).strip(), "1", "a verified row keeps its leaf alone")
            # properties and checked kept as their values, and shown as vouchd wrote them.
            self.assertEqual(self.psql(
                "SELECT properties IS NULL, checked IS NULL, properties_packed IS NOT NULL, "
                f"checked_packed IS NOT NULL FROM attestations WHERE command_uuid = '{cu}'"
            ).strip(), "t|t|t|t", "properties and checked are not kept as their values")
            props, checked = history[0]["properties"], history[0]["checked"]
            self.assertEqual(list(props), PROPERTIES_KEYS, "the properties' keys or their order")
            self.assertEqual((props["udid"], props["serial_number"], props["os_version"]),
                             (dev.udid, dev.serial, dev.os_version), props)
            self.assertEqual(list(checked), CHECKED_KEYS, "checked's keys or their order")
            self.assertEqual((checked["udid"], checked["serial"], checked["require_fresh"]),
                             (dev.udid, dev.serial, False), checked)
            self.assertEqual(self.device_obj(dev.udid)["attestation"]["properties"], props,
                             "the device object's properties")
        self.assertEqual(self.psql(
            "SELECT count(*) FROM attestation_cas WHERE sha256 = "
            f"'\\x{hashlib.sha256(sub).hexdigest()}'").strip(), "1",
            "the Sub CA of three verified chains is not stored once")
        self.assertEqual(self.psql(
            # (an answered request is its attestations row since 0014)
            "SELECT count(*) FROM commands c WHERE c.command_uuid IN (SELECT command_uuid "
            "FROM attestation_requests UNION ALL SELECT command_uuid FROM attestations "
            "WHERE source = 'mdm')").strip(), "0", "an attestation request is stored as a command (its body, or its "
                            "commands row: the request is its own queue entry)")

    def assertStoredWithoutChain(self, dev, cu, chain, what):
        stored = self.stored_report(dev, cu)
        self.assertEqual(stored[:8], b"bplist00", f"{what}: not stored as a binary plist")
        self.assertEqual(plistlib.loads(stored)["QueryResponses"]["DevicePropertiesAttestation"],
                         [], f"{what}: stored: the answer without its certificates")
        for cert in chain:
            self.assertNotIn(cert[-64:], stored,
                             f"{what}: a certificate of the chain is still in command_results")
        self.assertEqual(self.psql(
            f"SELECT answer IS NULL FROM attestations WHERE command_uuid = '{cu}'").strip(), "t",
            f"{what}: kept twice")

    def test_answers_the_row_cannot_give_back_are_stored_without_their_chain(self):
        """Another key beside the four, a QueryResponses value that is no string, a string with
        a control character, an answer put off before: each in command_results, as sent."""
        cases = [
            ("a key more", {"EnrollmentUserID": "someone"}, {}, False),
            ("an integer", {}, {"BatteryLevel": 1}, False),
            ("a control character", {}, {"DeviceName": "tab\there"}, False),
            ("put off first", {}, {}, True),
        ]
        for what, root_extra, qr_extra, not_now in cases:
            with self.subTest(what):
                dev = self.iphone()
                cu, nonce = self.take_request(dev, what)
                if not_now:
                    self.assertEmpty200(dev.report("NotNow", cu), f"{what}: NotNow")
                    again = self.assertCommand(dev.idle(), what=f"{what}: Idle again")
                    self.assertEqual(again["CommandUUID"], cu, f"{what}: the same request")
                chain = self.chain_for(dev, nonce)
                qr = self.query_responses(dev, chain, **qr_extra)
                r = dev.report("Acknowledged", cu, QueryResponses=qr, **root_extra)
                self.assertEmpty200(r, f"{what}: reply to the answer")
                self.assertVerdict(dev, cu, "verified", None, "fresh", what)
                self.assertStoredWithoutChain(dev, cu, chain, what)
                got = self.command_answer(dev, cu)
                self.assertEqual(got["report"]["QueryResponses"],
                                 {**qr, "DevicePropertiesAttestation": [b64(c) for c in chain]},
                                 f"{what}: read back")
                for key, value in root_extra.items():
                    self.assertEqual(got["report"][key], value, f"{what}: read back")
                self.assertEqual(got["not_now_count"], 1 if not_now else 0, what)

    def test_characters_xml_escapes_and_a_repeated_answer(self):
        """The row's answer goes back as XML: &, < and > in its strings come back as sent. The
        same answer again is a repeat: nothing more is stored."""
        dev = self.iphone()
        cu, nonce = self.take_request(dev, "XML characters")
        chain = self.chain_for(dev, nonce)
        odd = "<a href='x'>&amp; \"é\" ]]></a>"
        qr = self.query_responses(dev, chain, DeviceName=odd)
        self.answer(dev, cu, chain, DeviceName=odd, what="XML characters")
        self.assertVerdict(dev, cu, "verified", None, "fresh", "XML characters")
        self.assertEqual(self.stored_report(dev, cu), b"", "kept in the attestation row")
        want = {**qr, "DevicePropertiesAttestation": [b64(c) for c in chain]}
        got = self.command_answer(dev, cu)
        self.assertEqual(got["report"]["QueryResponses"], want, "read back")
        self.assertEqual(got["report"]["UDID"], dev.udid)
        self.assertEqual(got["report"]["CommandUUID"], cu)
        every = self.vouchd.admin("GET", f"/v1/commands/{cu}").json()
        self.assertEqual([d["report"]["QueryResponses"] for d in every["devices"]], [want],
                         "GET /v1/commands/{uuid}")
        self.answer(dev, cu, chain, DeviceName=odd, what="the same answer again")
        self.assertEqual(self.stored_report(dev, cu), b"", "a repeat was stored")
        self.assertEqual(self.psql(
            f"SELECT count(*) FROM attestations WHERE command_uuid = '{cu}'").strip(), "1")
        r = self.vouchd.admin("DELETE", f"/v1/devices/{dev.udid}/commands/{cu}")
        self.assertStatus(r, 409, "cancelling an answered command")

    def test_an_empty_key_comes_back(self):
        """A QueryResponses key that is the empty string is read back with the rest (the
        packed shape would have taken it for a key code)."""
        dev = self.iphone()
        cu, nonce = self.take_request(dev, "an empty key")
        chain = self.chain_for(dev, nonce)
        qr = self.query_responses(dev, chain, **{"": "x"})
        self.answer(dev, cu, chain, what="an empty key", **{"": "x"})
        self.assertVerdict(dev, cu, "verified", None, "fresh", "an empty key")
        got = self.command_answer(dev, cu)
        self.assertEqual(got["report"]["QueryResponses"],
                         {**qr, "DevicePropertiesAttestation": [b64(c) for c in chain]},
                         "read back")

    def test_a_chain_that_did_not_verify_stays_whole(self):
        dev = self.iphone()
        cu, nonce = self.take_request(dev, "untrusted chain")
        chain = self.chain_for(dev, nonce, pki=self.other_pki)
        self.answer(dev, cu, chain, what="untrusted chain")
        self.assertVerdict(dev, cu, "failed", "untrusted_chain", None, "untrusted chain")
        self.assertEqual(self.psql(
            f"SELECT cardinality(chain), ca_sha256 IS NULL FROM attestations "
            f"WHERE command_uuid = '{cu}'").strip(), "2|t")
        other_sub = hashlib.sha256(der(self.other_pki.sub)).hexdigest()
        self.assertEqual(self.psql(
            f"SELECT count(*) FROM attestation_cas WHERE sha256 = '\\x{other_sub}'").strip(), "0",
            "an untrusted CA entered the shared table")
        got = self.command_answer(dev, cu)
        self.assertEqual(got["report"]["QueryResponses"]["DevicePropertiesAttestation"],
                         [b64(c) for c in chain])

    def test_a_chain_with_a_certificate_more_stays_whole(self):
        """A certificate the path did not need (here another PKI's Sub CA after the right one)
        never enters the shared table, whatever the verdict."""
        dev = self.iphone()
        cu, nonce = self.take_request(dev, "one certificate more")
        extra = der(self.other_pki.sub)
        chain = self.chain_for(dev, nonce) + [extra]
        self.answer(dev, cu, chain, what="one certificate more")
        self.verdict(dev, cu, "one certificate more")
        self.assertEqual(self.psql(
            f"SELECT cardinality(chain), ca_sha256 IS NULL FROM attestations "
            f"WHERE command_uuid = '{cu}'").strip(), "3|t")
        self.assertEqual(self.psql(
            "SELECT count(*) FROM attestation_cas WHERE sha256 = "
            f"'\\x{hashlib.sha256(extra).hexdigest()}'").strip(), "0",
            "a certificate the path did not need entered the shared table")
        got = self.command_answer(dev, cu)
        self.assertEqual(got["report"]["QueryResponses"]["DevicePropertiesAttestation"],
                         [b64(c) for c in chain])


class UpgradeTest(AttestationCase):
    """A database made by migrations 0001-0007, with a verified answer stored whole (its
    properties and checked objects whole) and a pending request, is migrated by a new vouchd
    and reads as before."""

    def test_an_upgraded_database_keeps_its_answers_readable(self):
        dbname = suite().new_database("answer_storage_upgrade", self.pg)
        sql = ["CREATE TABLE schema_migrations (version integer PRIMARY KEY, name text NOT NULL,"
               " applied_at timestamptz NOT NULL DEFAULT now(), checksum text);"]
        for number, entry in migration_entries().items():
            if number >= 8:
                continue
            text = migration_text(entry)
            name = entry[5:].removesuffix(".sql")
            sql.append(text.decode())
            sql.append(f"; INSERT INTO schema_migrations (version, name, checksum) VALUES "
                       f"({number}, '{name}', '{hashlib.sha256(text).hexdigest()}');")
        # An answer as vouchd stored it before: the whole chain in the attestation row, the
        # report the device sent, byte for byte, in command_results.
        dev = self.iphone(enroll=False)
        cu = str(uuid.uuid4()).upper()
        leaf, sub = self.chain_for(dev, b"\x01" * 32)
        pending = str(uuid.uuid4()).upper()
        # Kept whole before 0009, and in another spacing than vouchd's: read back as they were.
        old_properties = ('{"serial_number": "%s", "udid": "%s", "os_version": "17.4"}'
                          % (dev.serial, dev.udid))
        old_checked = '{"udid": "%s", "at": "2026-01-01T00:00:00Z"}' % dev.udid
        report = plistlib.dumps(dev.report_message("Acknowledged", cu, QueryResponses={
            "OSVersion": "17.4", "DevicePropertiesAttestation": [leaf, sub]}))
        sql.append(f"""
            INSERT INTO devices (udid, serial_number) VALUES ('{dev.udid}', '{dev.serial}');
            INSERT INTO attestations (udid, command_uuid, status, freshness, chain, generation,
                                      properties, checked)
            VALUES ('{dev.udid}', '{cu}', 'verified', 'fresh',
                    ARRAY['\\x{leaf.hex()}'::bytea, '\\x{sub.hex()}'::bytea], 1,
                    '{old_properties}', '{old_checked}');
            INSERT INTO enrollments (udid, topic, enabled, identity_cert_sha256,
                                     authenticated_at)
            VALUES ('{dev.udid}', 'topic', true, sha256('x'), now());
            INSERT INTO attestation_requests (command_uuid, udid, nonce, reason)
            VALUES ('{pending}', '{dev.udid}', '\\x{"02" * 32}', 'operator');
            INSERT INTO command_results (udid, command_uuid, request_type, status, report)
            VALUES ('{dev.udid}', '{cu}', 'DeviceInformation', 'Acknowledged',
                    '\\x{report.hex()}');""")
        self.pg.psql("\n".join(sql), dbname)

        with self.vouchd_on(dbname, f"{__name__}.upgrade", dict(self.vouchd_config)) as v:
            self.assertEqual(self.pg.psql(
                "SELECT count(*), bool_and(sha256::bytea = sha256(der)) FROM attestation_cas",
                dbname).strip(), "1|t", "the Sub CA did not move to attestation_cas")
            r = v.admin("GET", f"/v1/devices/{dev.udid}/commands/{cu}")
            self.assertStatus(r, 200, "GET the upgraded answer")
            self.assertEqual(r.json()["report"]["QueryResponses"],
                             {"OSVersion": "17.4",
                              "DevicePropertiesAttestation": [b64(leaf), b64(sub)]})
            r = v.admin("GET", f"/v1/devices/{dev.udid}/attestations")
            self.assertStatus(r, 200, "GET the upgraded history")
            self.assertEqual(r.json()[0]["chain"], [b64(leaf), b64(sub)])
            self.assertEqual(r.json()[0]["properties"], json.loads(old_properties))
            self.assertEqual(r.json()[0]["checked"], json.loads(old_checked))
            # attestation_requests is keyed by device and command since 0009: the pending
            # request made before is still the device's request.
            r = v.admin("GET", f"/v1/devices/{dev.udid}")
            self.assertStatus(r, 200, "GET the upgraded device")
            self.assertEqual(r.json()["attestation"]["request"]["command_uuid"], pending)
            self.assertEqual(self.pg.psql(
                "SELECT pg_get_indexdef(indexrelid) FROM pg_index "
                "WHERE indrelid = 'attestation_requests'::regclass AND indisprimary",
                dbname).strip(),
                "CREATE UNIQUE INDEX attestation_requests_pkey ON public.attestation_requests "
                "USING btree (udid, command_uuid)")
