"""Connection limits: a slow client (slowloris) cannot hold vouchd, and at max_connections
vouchd stops accepting until a connection closes, serving the ones it has meanwhile.

  * request_timeout: a request must arrive in full within it once its first byte came, head or
    body dribbled one byte at a time alike; the connection is then closed, counted
    (vouch_rejections_total{reason="request_timeout"}) and logged, while other clients are
    served at once. An idle kept-alive connection between requests is not a slow request
    (http_timeout bounds silence);
  * max_connections: the extra connection waits in the kernel's backlog, unanswered, until one
    of the others closes; then it is served.
"""

import socket
import struct
import time

from harness import VouchTestCase, wait_for

REQUEST_TIMEOUT_S = 2
MAX_CONNECTIONS = 6


def metric(vouchd, name):
    """An unlabelled metric's value from /metrics (the asking connection is counted too)."""
    for line in vouchd.metrics().text().splitlines():
        parts = line.split()
        if len(parts) == 2 and parts[0] == name:
            return float(parts[1])
    return 0.0


def rejections(vouchd, reason):
    for line in vouchd.metrics().text().splitlines():
        if line.startswith(f'vouch_rejections_total{{reason="{reason}"}}'):
            return float(line.split()[-1])
    return 0.0


def closed_by_peer(sock, within):
    """True when the server closes sock within `within` seconds (EOF or reset)."""
    sock.settimeout(within)
    try:
        return sock.recv(4096) == b""
    except ConnectionResetError:
        return True
    except socket.timeout:
        return False


class SlowClientTest(VouchTestCase):
    vouchd_config = {"request_timeout": str(REQUEST_TIMEOUT_S), "http_timeout": "30"}

    def connect(self):
        s = socket.create_connection((self.vouchd.host, self.vouchd.port), timeout=10)
        self.addCleanup(s.close)
        return s

    def dribble(self, sock, data, seconds):
        """Sends data one byte at a time, spread over seconds; False once the server closed."""
        pause = seconds / max(len(data), 1)
        for i in range(len(data)):
            try:
                sock.send(data[i:i + 1])
            except (BrokenPipeError, ConnectionResetError):
                return False
            time.sleep(pause)
        return True

    def test_slow_head_is_cut_off_and_others_are_served(self):
        before = rejections(self.vouchd, "request_timeout")
        slow = self.connect()
        slow.send(b"PUT /mdm/connect HTTP/1.1\r\nHost: x\r\n")
        started = time.monotonic()
        # One header byte every 0.2 s: never silent for long, so only the deadline ends it.
        header = b"X-Slow: " + b"a" * 200
        for i in range(len(header)):
            try:
                slow.send(header[i:i + 1])
            except (BrokenPipeError, ConnectionResetError):
                break
            if i == 3:
                h = self.vouchd.healthz()  # another client, served at once meanwhile
                self.assertEqual(h.status, 200, h)
            time.sleep(0.2)
            if time.monotonic() - started > REQUEST_TIMEOUT_S + 5:
                break
        self.assertTrue(closed_by_peer(slow, 5), "the slow request's connection stays open")
        elapsed = time.monotonic() - started
        self.assertLess(elapsed, REQUEST_TIMEOUT_S + 5, "closed much later than request_timeout")
        self.assertGreaterEqual(elapsed, REQUEST_TIMEOUT_S - 0.5, "closed before its deadline")
        self.assertEqual(rejections(self.vouchd, "request_timeout"), before + 1)
        self.assertAlive("after a slow head")

    def test_slow_body_is_cut_off(self):
        before = rejections(self.vouchd, "request_timeout")
        slow = self.connect()
        slow.send(b"PUT /mdm/connect HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-apple-"
                  b"aspen-mdm\r\nContent-Length: 1000\r\n\r\n")
        self.dribble(slow, b"<" * 40, REQUEST_TIMEOUT_S + 2)
        self.assertTrue(closed_by_peer(slow, 5), "the slow body's connection stays open")
        self.assertEqual(rejections(self.vouchd, "request_timeout"), before + 1)
        self.assertAlive("after a slow body")

    def test_idle_keep_alive_between_requests_is_not_slow(self):
        before = rejections(self.vouchd, "request_timeout")
        s = self.connect()
        for i in range(2):
            s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
            reply = b""
            while b"\r\n\r\n" not in reply:
                chunk = s.recv(4096)
                self.assertNotEqual(chunk, b"", f"request {i}: connection closed")
                reply += chunk
            self.assertTrue(reply.startswith(b"HTTP/1.1 200"), reply[:80])
            time.sleep(REQUEST_TIMEOUT_S + 1)  # idle longer than request_timeout
        self.assertEqual(rejections(self.vouchd, "request_timeout"), before)


class ConnectionChurnTest(VouchTestCase):
    vouchd_config = {"max_connections": "50"}

    def test_connections_closed_at_once_are_counted_out(self):
        # Port scanners and TCP health checks connect and leave at once (some with a reset):
        # each is counted out again, so they never use up max_connections.
        for i in range(300):
            s = socket.create_connection((self.vouchd.host, self.vouchd.port), timeout=10)
            if i % 2:
                s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            s.close()
        wait_for(lambda: metric(self.vouchd, "vouch_http_connections") == 1, 10,
                 what="only the asking connection counted")
        self.assertAlive("after 300 connections that closed at once")


class MaxConnectionsTest(VouchTestCase):
    vouchd_config = {"max_connections": str(MAX_CONNECTIONS)}

    def test_accepting_pauses_at_the_limit_and_resumes(self):
        wait_for(lambda: metric(self.vouchd, "vouch_http_connections") == 1, 10,
                 what="no connection left from the start but the one asking")
        time.sleep(0.3)  # that one closes too
        held = []
        for _ in range(MAX_CONNECTIONS - 1):
            s = socket.create_connection((self.vouchd.host, self.vouchd.port), timeout=10)
            self.addCleanup(s.close)
            held.append(s)
        # The last one the limit allows: it asks for the metrics, on a kept-alive connection.
        probe = socket.create_connection((self.vouchd.host, self.vouchd.port), timeout=10)
        self.addCleanup(probe.close)
        probe.sendall(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
        text = b""
        while b"vouch_http_connections" not in text:
            chunk = probe.recv(65536)
            self.assertNotEqual(chunk, b"", "the probe's connection closed")
            text += chunk
        line = [x for x in text.decode().splitlines() if x.startswith("vouch_http_connections")]
        self.assertEqual(line, [f"vouch_http_connections {MAX_CONNECTIONS}"], text[-300:])

        # One more: the kernel completes the handshake, vouchd does not take it yet.
        extra = socket.create_connection((self.vouchd.host, self.vouchd.port), timeout=10)
        self.addCleanup(extra.close)
        extra.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        extra.settimeout(1.5)
        with self.assertRaises(socket.timeout, msg="served beyond max_connections"):
            extra.recv(4096)
        # One closes: the waiting connection is taken and served.
        held.pop().close()
        extra.settimeout(10)
        reply = extra.recv(4096)
        self.assertTrue(reply.startswith(b"HTTP/1.1 200"), reply[:80])
        for s in held:
            s.close()
        probe.close()
        extra.close()
        wait_for(lambda: metric(self.vouchd, "vouch_http_connections") <= 1, 10,
                 what="the connections counted down as they closed")
        self.assertAlive("after max_connections")
