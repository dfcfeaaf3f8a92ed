"""`vouchctl commands --show`, `commands cancel` and `enqueue --type` / JSON files (issue 20,
point 2), against a real vouchd and PostgreSQL, with devices that answer.

What must hold:
  * `commands UDID --show UUID` prints the status and what it means, each error of the ErrorChain
    on its line, then the answer as a "key: value" tree with the report under it; --json is the
    server's answer; `commands --all --show UUID` is a table of every device's status;
  * `commands cancel UDID UUID` and `commands cancel --all UUID` take the command off the queue
    (the device never gets it); exit 1 for one already answered (409) or unknown (404);
  * `enqueue --type T` builds the command with a fresh upper-case UUID for each template, with
    DeviceInformation's Queries from --queries (or a default list); bad combinations are usage
    errors (exit 2) and send nothing;
  * `enqueue --file` takes JSON as well as plists: numbers, booleans, arrays, {"$data"} and
    {"$date"} reach the device as their plist types.
"""

import base64
import datetime
import json
import os
import re
import secrets

import test_command_answers  # CommandAnswersCase; a module import, so that its tests do not run
from harness import suite, vouchctl

UUID4_UPPER = re.compile(r"^[0-9A-F]{8}-[0-9A-F]{4}-4[0-9A-F]{3}-[89AB][0-9A-F]{3}-[0-9A-F]{12}$")
EXIT_USAGE = 2


class VouchctlCommandsTest(test_command_answers.CommandAnswersCase):

    def ctl(self, *args, rc=0):
        p = vouchctl(self.vouchd, *args)
        self.assertEqual(p.returncode, rc, f"vouchctl {' '.join(args)}: exit {p.returncode}\n"
                         f"stdout: {p.stdout}\nstderr: {p.stderr}")
        return p

    def enqueue_type(self, dev, *args):
        """vouchctl enqueue with a template; returns the CommandUUID it printed."""
        p = self.ctl("enqueue", dev.udid, *args)
        m = re.search(r"^command_uuid: (\S+)$", p.stdout, re.M)
        self.assertIsNotNone(m, p.stdout)
        return m.group(1)

    def write_file(self, text, suffix):
        path = os.path.join(suite().run_dir, f"cmd-{secrets.token_hex(6)}{suffix}")
        with open(path, "w") as f:
            f.write(text)
        return path

    # -- --show ----------------------------------------------------------------------------
    def test_show_an_answer(self):
        dev = self.settled_device()
        cu = self.enqueue_type(dev, "--type", "DeviceInformation",
                               "--queries", "OSVersion, SerialNumber")
        cmd = self.assertCommand(dev.idle(), cu)
        self.assertEqual(cmd["Command"], {"RequestType": "DeviceInformation",
                                          "Queries": ["OSVersion", "SerialNumber"]})
        self.assertRegex(cu, UUID4_UPPER)
        token = secrets.token_bytes(8)
        self.assertStatus(dev.report("Acknowledged", cu, QueryResponses={
            "OSVersion": "14.4.1", "SerialNumber": dev.serial, "Token": token,
            "Seen": datetime.datetime(2024, 5, 1, 12, 0, 0)}), 200, "answer")
        out = self.ctl("commands", dev.udid, "--show", cu).stdout
        lines = out.splitlines()
        self.assertEqual(lines[0], "Acknowledged (carried out)", out)
        self.assertRegex(out, rf"(?m)^request_type: +DeviceInformation$")
        self.assertRegex(out, rf"(?m)^command_uuid: +{cu}$")
        self.assertRegex(out, r"(?m)^report:$")
        self.assertRegex(out, r"(?m)^  QueryResponses:$")
        self.assertRegex(out, r"(?m)^    OSVersion: +14\.4\.1$")
        self.assertRegex(out, rf"(?m)^    SerialNumber: +{dev.serial}$")
        self.assertRegex(out, rf"(?m)^    Token: +{re.escape(base64.b64encode(token).decode())}$")
        self.assertRegex(out, r"(?m)^    Seen: +2024-05-01T12:00:00Z$")
        shown = json.loads(self.ctl("--json", "commands", dev.udid, "--show", cu).stdout)
        self.assertEqual(shown, self.get_answer(dev, cu))

    def test_show_an_error_and_a_queued_command(self):
        dev = self.settled_device()
        cu = self.enqueue_type(dev, "--type", "ProfileList")
        self.assertCommand(dev.idle(), cu)
        chain = [{"ErrorCode": 12021, "ErrorDomain": "MCMDMErrorDomain",
                  "LocalizedDescription": "Nicht.", "USEnglishDescription": "Not allowed."}]
        self.assertStatus(dev.report("Error", cu, ErrorChain=chain), 200, "Error")
        out = self.ctl("commands", dev.udid, "--show", cu).stdout
        self.assertEqual(out.splitlines()[:2],
                         ["Error (the device could not carry it out)",
                          "  error: MCMDMErrorDomain 12021: Not allowed."], out)
        queued = self.enqueue_type(dev, "--type", "SecurityInfo")
        out = self.ctl("commands", dev.udid, "--show", queued).stdout
        self.assertEqual(out.splitlines()[0], "queued (waiting for the device to ask for it)")
        self.assertRegex(out, r"(?m)^report: +-$")
        p = self.ctl("commands", dev.udid, "--show", "NO-SUCH-COMMAND", rc=1)
        self.assertIn("no such command", p.stderr)

    def test_show_every_device(self):
        devs = sorted((self.settled_device() for _ in range(2)), key=lambda d: d.udid)
        p = self.ctl("enqueue", devs[0].udid, devs[1].udid, "--type", "ProfileList")
        cu = re.search(r"^command_uuid: (\S+)$", p.stdout, re.M).group(1)
        self.assertCommand(devs[1].idle(), cu)
        self.assertStatus(devs[1].report("Acknowledged", cu, ProfileList=[]), 200, "answer")
        out = self.ctl("commands", "--all", "--show", cu).stdout
        self.assertRegex(out, r"(?m)^request_type: ProfileList$")
        rows = [line.split() for line in out.splitlines() if line.startswith(
            tuple(d.udid for d in devs))]
        self.assertEqual([(r[0], r[1]) for r in rows],
                         [(devs[0].udid, "queued"), (devs[1].udid, "Acknowledged")], out)
        self.ctl("commands", "--all", rc=EXIT_USAGE)
        self.ctl("commands", devs[0].udid, "--all", "--show", cu, rc=EXIT_USAGE)

    # -- cancel ----------------------------------------------------------------------------
    def test_cancel(self):
        dev = self.settled_device()
        cu = self.enqueue_type(dev, "--type", "RestartDevice")
        p = self.ctl("commands", "cancel", dev.udid, cu)
        self.assertEqual(p.stdout, f"canceled: {cu} on {dev.udid}\n")
        self.assertEmpty200(dev.idle(), "the canceled command is not handed out")
        p = self.ctl("commands", "cancel", dev.udid, cu, rc=1)
        self.assertIn("no such command", p.stderr)
        answered = self.enqueue_type(dev, "--type", "ProfileList")
        self.assertCommand(dev.idle(), answered)
        self.assertStatus(dev.report("Acknowledged", answered, ProfileList=[]), 200, "answer")
        p = self.ctl("commands", "cancel", dev.udid, answered, rc=1)
        self.assertIn("already answered", p.stderr)
        self.ctl("commands", "cancel", dev.udid, rc=EXIT_USAGE)

    def test_cancel_everywhere(self):
        devs = [self.settled_device() for _ in range(2)]
        p = self.ctl("enqueue", *[d.udid for d in devs], "--type", "ShutDownDevice")
        cu = re.search(r"^command_uuid: (\S+)$", p.stdout, re.M).group(1)
        p = self.ctl("commands", "cancel", "--all", cu)
        self.assertEqual(p.stdout, f"canceled on 2 devices: {cu}\n")
        for d in devs:
            self.assertEmpty200(d.idle(), "canceled everywhere")
        self.assertEqual(json.loads(self.ctl("--json", "commands", "cancel", "--all",
                                             cu).stdout), {"command_uuid": cu, "canceled": 0})
        self.ctl("commands", "cancel", "--all", "NO-SUCH-COMMAND", rc=1)

    # -- templates and JSON ------------------------------------------------------------------
    def test_templates(self):
        dev = self.settled_device()
        seen = set()
        for request_type in ("SecurityInfo", "ProfileList", "InstalledApplicationList",
                             "RestartDevice", "DeviceLock", "CertificateList"):
            cu = self.enqueue_type(dev, "--type", request_type)
            self.assertRegex(cu, UUID4_UPPER)
            self.assertNotIn(cu, seen)
            seen.add(cu)
            cmd = self.assertCommand(dev.idle(), cu, request_type)
            self.assertEqual(cmd["Command"], {"RequestType": request_type})
            self.assertStatus(dev.report("Acknowledged", cu), 200, request_type)
        cu = self.enqueue_type(dev, "--type", "DeviceInformation")
        cmd = self.assertCommand(dev.idle(), cu)
        self.assertEqual(cmd["Command"]["Queries"],
                         ["DeviceName", "OSVersion", "BuildVersion", "ProductName", "Model",
                          "ModelName", "SerialNumber", "UDID"])
        self.assertStatus(dev.report("Acknowledged", cu), 200, "answer")
        for args in (["--type", "Bogus"], ["--type", "ProfileList", "--queries", "OSVersion"],
                     ["--type", "DeviceInformation", "--queries", "OSVersion,,UDID"],
                     ["--queries", "OSVersion", "--file", "/dev/null"],
                     ["--type", "ProfileList", "--file", "/dev/null"], []):
            self.ctl("enqueue", dev.udid, *args, rc=EXIT_USAGE)
        self.assertEmpty200(dev.idle(), "no usage error queued anything")

    def test_json_file(self):
        dev = self.settled_device()
        command = {"Command": {"RequestType": "Settings", "Flag": True, "Count": 3, "Ratio": 0.5,
                               "Settings": [{"Item": "DeviceName", "DeviceName": "Büro"}],
                               "Blob": {"$data": base64.b64encode(b"\x00\xffab").decode()},
                               "When": {"$date": "2024-05-01T12:00:00Z"}}}
        path = self.write_file(json.dumps(command), ".json")
        p = self.ctl("enqueue", dev.udid, "--file", path)
        cu = re.search(r"^command_uuid: (\S+)$", p.stdout, re.M).group(1)
        cmd = self.assertCommand(dev.idle(), cu)
        self.assertEqual(cmd["Command"], {
            "RequestType": "Settings", "Flag": True, "Count": 3, "Ratio": 0.5,
            "Settings": [{"Item": "DeviceName", "DeviceName": "Büro"}],
            "Blob": b"\x00\xffab", "When": datetime.datetime(2024, 5, 1, 12, 0, 0)})
        self.assertStatus(dev.report("Acknowledged", cu), 200, "answer")
        # With its own CommandUUID, kept.
        own = "JSON-" + secrets.token_hex(8).upper()
        path = self.write_file(json.dumps({"CommandUUID": own,
                                           "Command": {"RequestType": "ProfileList"}}), ".json")
        self.ctl("enqueue", dev.udid, "--file", path)
        self.assertCommand(dev.idle(), own)
        self.assertStatus(dev.report("Acknowledged", own), 200, "answer")
        # Refusals name the place.
        for text, why in [('{"Command": {"RequestType": null}}', "$.Command.RequestType: null"),
                          ('{"Command": {"RequestType": "X", "D": {"$data": "!"}}}',
                           "$.Command.D: $data is not base64"),
                          ('{"Command": 5', "not JSON"),
                          ('{"Nothing": {}}', "no Command dictionary")]:
            p = self.ctl("enqueue", dev.udid, "--file", self.write_file(text, ".json"), rc=1)
            self.assertIn(why, p.stderr)
        self.assertEmpty200(dev.idle(), "no refused file queued anything")
