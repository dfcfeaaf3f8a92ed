"""What /migration takes as input (issue 25, review fixes): a body as nano2nano sends it, and
nothing else.

  * A binary plist is refused unparsed (400 binary_plist, counted migration_binary_plist,
    nothing written): devices send check-ins as XML, NanoMDM keeps them as they came and
    nano2nano sends them as kept; and libplist 2.2's binary reader copies a shared object at
    each reference, so 1,227 bytes (5 levels of 16 references to one 1 KiB string) would become
    about a gigabyte on vouchd's event loop. That body is sent here too: refused at once, and
    vouchd keeps serving.
  * A user channel's check-in (nano2nano sends the user channels' TokenUpdates after the
    devices'; any of UserID, EnrollmentUserID, UserShortName, UserLongName) is refused (400
    user_channel, counted migration_user_channel, nothing written): Vouch has no user channel,
    and its token and PushMagic must not replace the device's.
  * The push log line for a device whose topic has no push certificate (a migrated fleet's
    case) shows the UDID sanitized."""

import base64
import os
import plistlib
import time

from harness import VouchTestCase, wait_for
from test_push import PushTestCase

USER_ID = "5DF1182E-C70B-4A3A-BADC-DD3E775040FB"


def basic(key):
    return "Basic " + base64.b64encode(f"nanomdm:{key}".encode()).decode()


def shared_reference_bomb(levels=5, fanout=16, size=1024):
    """A binary plist whose levels of arrays each hold fanout references to the one array
    below, the last to one string of size bytes: plistlib writes each object once."""
    node = "x" * size
    for _ in range(levels):
        node = [node] * fanout
    return plistlib.dumps({"MessageType": "Authenticate", "UDID": "BOMB", "Topic": "t",
                           "Padding": node}, fmt=plistlib.FMT_BINARY)


class MigrationInputTest(VouchTestCase):
    vouchd_config = {"migration": "on"}

    def migrate(self, body):
        return self.vouchd.request("PUT", "/migration", body=body,
                                   headers={"Authorization": basic(self.vouchd.admin_token)})

    def rows(self):
        """Every row /migration may write, as text."""
        return self.psql(
            "SELECT (SELECT string_agg(d::text, E'\\n' ORDER BY udid) FROM devices d),"
            " (SELECT string_agg(e::text, E'\\n' ORDER BY udid) FROM enrollments e),"
            " (SELECT count(*) FROM events), (SELECT count(*) FROM identity_certs)")

    def rejections(self, reason):
        for line in self.vouchd.metrics().text().splitlines():
            if line.startswith(f'vouch_rejections_total{{reason="{reason}"}} '):
                return int(float(line.split()[-1]))
        return 0

    def assertRefused(self, body, reason, what):
        rows = self.rows()
        counted = self.rejections(f"migration_{reason}")
        r = self.migrate(body)
        self.assertEqual((r.status, r.text().strip()), (400, reason), f"{what}: {r!r}")
        self.assertEqual(self.rows(), rows, f"{what}: something was written")
        self.assertEqual(self.rejections(f"migration_{reason}"), counted + 1, f"{what}: counted")
        self.assertIn(f"{reason} (400)", self.vouchd_log_since_test(50))
        return r

    def push_credentials(self, udid):
        return self.psql(f"SELECT encode(push_token, 'hex'), push_magic FROM enrollments "
                         f"WHERE udid = '{udid}'").strip()

    def test_binary_plists_refused_unparsed(self):
        dev = self.new_device()
        for what, body in [
            ("a binary Authenticate",
             plistlib.dumps(dev.authenticate_message(), fmt=plistlib.FMT_BINARY)),
            ("a binary TokenUpdate",
             plistlib.dumps(dev.token_update_message(), fmt=plistlib.FMT_BINARY)),
            ("a broken binary plist", b"bplist00" + b"\x00" * 40),
            ("the magic alone", b"bplist"),
        ]:
            self.assertRefused(body, "binary_plist", what)
        self.assertEqual(self.vouchd.device(dev.udid).status, 404)

        bomb = shared_reference_bomb()
        self.assertLess(len(bomb), 2048)
        started = time.monotonic()
        self.assertRefused(bomb, "binary_plist", "shared references")
        self.assertLess(time.monotonic() - started, 5, "the bomb was read")
        self.assertAlive("after the shared-reference plist")

        # The same device as XML, as devices send it and nano2nano passes it on: taken.
        for msg in (dev.authenticate_message(), dev.token_update_message()):
            r = self.migrate(plistlib.dumps(msg))
            self.assertEqual((r.status, r.body), (200, b""), f"{msg['MessageType']}: {r!r}")

    def test_user_channel_checkins_refused(self):
        dev = self.new_device()
        for msg in (dev.authenticate_message(), dev.token_update_message()):
            r = self.migrate(plistlib.dumps(msg))
            self.assertEqual((r.status, r.body), (200, b""), f"{msg['MessageType']}: {r!r}")
        device_channel = self.push_credentials(dev.udid)
        self.assertEqual(device_channel, f"{dev.token.hex()}|{dev.push_magic}")

        # nano2nano's user loop: the user channel's TokenUpdate, its own token and PushMagic.
        user = dict(dev.token_update_message(), UserID=USER_ID, UserShortName="user",
                    UserLongName="A User", Token=os.urandom(32),
                    PushMagic="AAAAAAAA-BBBB-CCCC-DDDD-EEEEEEEEEEEE")
        self.assertRefused(plistlib.dumps(user), "user_channel", "a user channel's TokenUpdate")
        for key, value in (("UserID", USER_ID), ("EnrollmentUserID", "user-1"),
                           ("UserShortName", "user"), ("UserLongName", "A User")):
            body = plistlib.dumps(dict(dev.token_update_message(), Token=os.urandom(32),
                                       **{key: value}))
            self.assertRefused(body, "user_channel", f"a TokenUpdate with {key}")
        # An Authenticate with a user key, for a device not migrated: not created.
        other = self.new_device()
        self.assertRefused(plistlib.dumps(other.authenticate_message(UserID=USER_ID)),
                           "user_channel", "an Authenticate with UserID")
        self.assertEqual(self.vouchd.device(other.udid).status, 404)

        self.assertEqual(self.push_credentials(dev.udid), device_channel,
                         "the device's push credentials were replaced")


class PushLogUdidTest(PushTestCase):
    """The no_certificate log line (a device whose topic is not the push certificate's, as a
    migrated one may be) shows the UDID sanitized: a UDID is the device's word, and XML carries
    a newline."""

    def test_udid_sanitized_in_the_no_certificate_line(self):
        forged = "2026-01-01T00:00:00.000Z error forged line"
        dev = self.new_device(udid="LOGTEST-" + os.urandom(4).hex().upper() + "\n" + forged,
                              topic="com.apple.mgmt.External.elsewhere-" + os.urandom(4).hex())
        dev.enroll()  # the first TokenUpdate asks for an attestation and pushes
        wait_for(lambda: "no push certificate for its topic" in self.vouchd_log_since_test(400),
                 timeout=30, what="the no_certificate log line")
        log = self.vouchd_log_since_test(400)
        self.assertNotIn("\n" + forged, log, "the UDID's newline reached the log")
        self.assertIn(dev.udid.replace("\n", "?"), log)
        self.assertEqual(self.pushes(dev, answered_only=False), [], "sent under our topic")
