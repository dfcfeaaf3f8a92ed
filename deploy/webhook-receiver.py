#!/usr/bin/python3
"""A small web-hook receiver for trying Vouch out: checks each event's X-Hmac-Signature and
prints one line per event (topic, device, what it says). Not for production: a real receiver
stores events and drops duplicates by event_id.

Usage: webhook-receiver.py --secret SECRET [--port 0] [--log FILE]
Prints "listening on http://127.0.0.1:PORT/" first, then one line per event.
"""
import argparse
import base64
import hashlib
import hmac
import http.server
import json
import sys


def describe(event):
    device = event.get("device") or {}
    att = device.get("attestation") or {}
    mdm = event.get("checkin_event") or event.get("acknowledge_event") or {}
    udid = device.get("udid") or mdm.get("udid") or "-"
    if event["topic"].startswith("attestation."):
        detail = att.get("reason") or att.get("freshness") or ""
    elif event["topic"] == "device.os_changed":
        prev = event.get("previous") or {}
        detail = f"{prev.get('os_version')} -> {device.get('os_version')}"
    else:
        detail = mdm.get("status") or ""
    return f"{event['created_at']} {event['topic']:<22} {udid} {detail}".rstrip()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--secret", required=True)
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--log")
    args = ap.parse_args()
    out = open(args.log, "a", buffering=1) if args.log else sys.stdout
    key = args.secret.encode()

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_POST(self):
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            want = base64.b64encode(hmac.new(key, body, hashlib.sha256).digest()).decode()
            good = hmac.compare_digest(want, self.headers.get("X-Hmac-Signature", ""))
            try:
                line = describe(json.loads(body)) if good else "BAD SIGNATURE: event refused"
            except (ValueError, KeyError):
                line, good = "not an event: refused", False
            print(line, file=out)
            self.send_response(200 if good else 403)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *a):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", args.port), Handler)
    print(f"listening on http://127.0.0.1:{server.server_address[1]}/", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
