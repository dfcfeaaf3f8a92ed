#!/usr/bin/env python3
"""vouch-sim's own HTTP/1.1 client (sim_h1.c, the devices' PUTs to http:// URLs) against a stub
MDM server that speaks HTTP/1.1 in every way the client must follow: chunked answers with
extensions and trailers, Connection: close, a kept-alive connection the server drops without a
word (the request goes again on a new one), a body that ends with the connection, 1xx answers
before the real one; and answers it must refuse (not HTTP, a body over 1 MiB, a connection that
ends mid-answer).

usage: test_h1.py VOUCH_SIM   (meson passes it)
Standard library only, so it runs wherever the build does.
"""

import json
import os
import plistlib
import shutil
import socket
import socketserver
import subprocess
import sys
import tempfile
import threading
import unittest

SIM = os.path.abspath(sys.argv[1]) if len(sys.argv) > 1 else "build/tests/sim/vouch-sim"
FLEET = 4


def run(args, expect=0):
    p = subprocess.run(args, capture_output=True, timeout=120, text=True)
    if expect is not None and p.returncode != expect:
        raise AssertionError(f"{' '.join(args)}: exit {p.returncode} (expected {expect})\n"
                             f"stdout: {p.stdout[-2000:]}\nstderr: {p.stderr[-2000:]}")
    return p


class Stub(socketserver.ThreadingTCPServer):
    """Answers check-ins with an empty 200 and hands each device one DeviceInformation at its
    Idle, in the way self.mode says."""

    daemon_threads = True
    allow_reuse_address = True

    def __init__(self):
        super().__init__(("127.0.0.1", 0), Handler)
        self.lock = threading.Lock()
        self.mode = "plain"
        self.pending = set()  # UDIDs that still get a command
        self.requests = 0
        self.signed = 0  # requests that carried an Mdm-Signature
        self.connections = 0


class Handler(socketserver.StreamRequestHandler):

    def read_request(self):
        head = b""
        while not head.endswith(b"\r\n\r\n"):
            line = self.rfile.readline()
            if not line:
                return None
            head += line
        lines = head.decode().split("\r\n")
        headers = {k.strip().lower(): v.strip() for k, _, v in
                   (line.partition(":") for line in lines[1:] if line)}
        body = self.rfile.read(int(headers.get("content-length", "0")))
        return lines[0], headers, body

    def answer(self, body):
        mode = self.server.mode
        ct = b"Content-Type: application/xml\r\n"
        if mode == "chunked" and body:
            parts = [body[:7], body[7:50], body[50:]]
            out = b"HTTP/1.1 200 OK\r\n" + ct + b"Transfer-Encoding: chunked\r\n\r\n"
            for i, part in enumerate(parts):
                out += b"%x%s\r\n%s\r\n" % (len(part), b";ext=1" if i == 1 else b"", part)
            return out + b"0\r\nX-Trailer: yes\r\n\r\n", False
        if mode == "eof":
            return b"HTTP/1.1 200 OK\r\n" + ct + b"Connection: close\r\n\r\n" + body, True
        if mode == "garbage":
            return b"hello there\r\n\r\n", True
        if mode == "huge":
            return b"HTTP/1.1 200 OK\r\nContent-Length: 2000000\r\n\r\n", True
        if mode == "short":
            return b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nonly this", True
        out = b"HTTP/1.1 100 Continue\r\n\r\n" if mode == "continue" else b""
        close = mode == "close"
        out += (b"HTTP/1.1 200 OK\r\n" + ct + b"Content-Length: %d\r\n" % len(body)
                + (b"Connection: close\r\n" if close else b"") + b"\r\n" + body)
        return out, close or mode == "drop"

    def handle(self):
        with self.server.lock:
            self.server.connections += 1
        while True:
            req = self.read_request()
            if req is None:
                return
            line, headers, body = req
            msg = plistlib.loads(body)
            reply = b""
            with self.server.lock:
                self.server.requests += 1
                self.server.signed += "mdm-signature" in headers
                if line.startswith("PUT /mdm/connect ") and msg.get("Status") == "Idle" and \
                        msg["UDID"] in self.server.pending:
                    self.server.pending.discard(msg["UDID"])
                    reply = plistlib.dumps({"CommandUUID": "C-" + msg["UDID"], "Command": {
                        "RequestType": "DeviceInformation", "Queries": ["UDID", "OSVersion"]}})
            out, close = self.answer(reply)
            self.wfile.write(out)
            self.wfile.flush()
            if close:
                # "drop" says nothing: the client learns it at its next request.
                self.connection.shutdown(socket.SHUT_RDWR)
                return


class H1Test(unittest.TestCase):

    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix="vouch-sim-h1-")
        cls.dir = os.path.join(cls.tmp, "state")
        cls.stub = Stub()
        cls.url = f"http://127.0.0.1:{cls.stub.server_address[1]}"
        threading.Thread(target=cls.stub.serve_forever, daemon=True).start()
        run([SIM, "enroll", "--url", cls.url, "--dir", cls.dir, "--devices", str(FLEET),
             "--key-type", "ec", "--quiet"])
        cls.udids = [line.split("\t")[1] for line in
                     run([SIM, "list", "--dir", cls.dir]).stdout.splitlines()]

    @classmethod
    def tearDownClass(cls):
        cls.stub.shutdown()
        cls.stub.server_close()
        shutil.rmtree(cls.tmp, ignore_errors=True)

    def connect(self, mode, expect=0):
        with self.stub.lock:
            self.stub.mode = mode
            self.stub.pending = set(self.udids)
            self.stub.requests = self.stub.signed = self.stub.connections = 0
        p = run([SIM, "connect", "--url", self.url, "--dir", self.dir, "--concurrency", "2",
                 "--quiet"], expect=expect)
        return json.loads(p.stdout), p.stderr

    def check_sessions(self, s):
        self.assertEqual(s["commands"], {"DeviceInformation": FLEET}, s)
        self.assertEqual(s["answers"]["Acknowledged"], FLEET, s)
        self.assertEqual(s["requests"], 2 * FLEET, s)
        self.assertEqual(s["statuses"], {"200": 2 * FLEET}, s)
        self.assertEqual(s["transport_errors"] + s["http_errors"] + s["protocol_errors"], 0, s)
        self.assertEqual(self.stub.requests, 2 * FLEET)
        self.assertEqual(self.stub.signed, 2 * FLEET)

    def test_kept_alive(self):
        for mode in ("plain", "chunked", "continue"):
            s, _ = self.connect(mode)
            self.check_sessions(s)
            # One per worker that got a device (a fast worker may take them all).
            self.assertIn(s["connections"], (1, 2), (mode, s))
            self.assertEqual(self.stub.connections, s["connections"], mode)

    def test_connection_per_request(self):
        # Told (close, or a body that ends with the connection), or not told (drop): a new
        # connection for each request, and no request lost.
        for mode in ("close", "eof", "drop"):
            s, _ = self.connect(mode)
            self.check_sessions(s)
            self.assertEqual(s["connections"], 2 * FLEET, (mode, s))
            self.assertEqual(self.stub.connections, 2 * FLEET, mode)

    def test_bad_answers_are_transport_errors(self):
        for mode, why in (("garbage", "malformed HTTP answer"),
                          ("huge", "response body too large"),
                          ("short", "Connection reset")):
            s, err = self.connect(mode, expect=1)
            self.assertEqual(s["transport_errors"], FLEET, (mode, s))
            self.assertEqual(s["failed_devices"], FLEET, (mode, s))
            self.assertIn(why, err, mode)

    def test_no_server(self):
        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
        sock.close()
        p = run([SIM, "connect", "--url", f"http://127.0.0.1:{port}", "--dir", self.dir,
                 "--devices", "1", "--quiet"], expect=1)
        self.assertIn("Connection refused", p.stderr)


if __name__ == "__main__":
    unittest.main(argv=[sys.argv[0], "-v"])
