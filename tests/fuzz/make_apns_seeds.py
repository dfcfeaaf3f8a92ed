#!/usr/bin/python3
"""Writes the seeds of fuzz_apns (tests/fuzz/corpus/apns/): what an HTTP/2 server (the h2
package, python3-h2) sends to a client that pushed three times, in the conversations APNs has:
answers 200, 410 with its JSON body, 400, 429 and 500, a GOAWAY refusing some streams, PING,
RST_STREAM, a small SETTINGS_MAX_CONCURRENT_STREAMS, and a body over the client's bound.
The first byte of each seed is fuzz_apns's chunk size selector (0xff: all at once).

Usage: tests/fuzz/make_apns_seeds.py [OUT_DIR]
"""
import json
import os
import sys

import h2.config
import h2.connection
import h2.errors
import h2.settings


def conversation(answers, max_streams=1000, goaway_after=None, ping=False):
    """Server bytes for three requests on streams 1, 3, 5; answers[i] is (status, body) or
    "reset" for stream 2i+1."""
    client = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True))
    server = h2.connection.H2Connection(h2.config.H2Configuration(client_side=False))
    client.initiate_connection()
    server.initiate_connection()
    server.update_settings({h2.settings.SettingCodes.MAX_CONCURRENT_STREAMS: max_streams})
    out = bytearray(server.data_to_send())
    server.receive_data(client.data_to_send())
    for sid in (1, 3, 5):
        client.send_headers(sid, [(":method", "POST"), (":scheme", "https"),
                                  (":authority", "apns.test:443"),
                                  (":path", "/3/device/" + "01020304" + "00" * 28),
                                  ("apns-topic", "com.apple.mgmt.External.fuzz"),
                                  ("apns-push-type", "mdm")])
        client.send_data(sid, b'{"mdm":"push-magic"}', end_stream=True)
    server.receive_data(client.data_to_send())
    out += server.data_to_send()
    if ping:
        server.ping(b"12345678")
    for i, answer in enumerate(answers):
        sid = 2 * i + 1
        if goaway_after is not None and sid > goaway_after:
            continue
        if answer == "reset":
            server.reset_stream(sid, h2.errors.ErrorCodes.INTERNAL_ERROR)
            continue
        status, body = answer
        headers = [(":status", str(status)), ("apns-id", "77C8F7D2-6C8D-4E8B-9D0F-1B2A3C4D5E6F")]
        if body is None:
            server.send_headers(sid, headers, end_stream=True)
        else:
            data = body if isinstance(body, bytes) else json.dumps(body).encode()
            server.send_headers(sid, headers + [("content-type", "application/json")])
            server.send_data(sid, data, end_stream=True)
    if goaway_after is not None:
        server.close_connection(error_code=h2.errors.ErrorCodes.NO_ERROR,
                                last_stream_id=goaway_after,
                                additional_data=b'{"reason":"Shutdown"}')
    out += server.data_to_send()
    return bytes(out)


SEEDS = {
    "all-200": ([(200, None)] * 3, {}),
    "mixed": ([(410, {"reason": "Unregistered", "timestamp": 1700000000123}),
               (400, {"reason": "BadDeviceToken"}), (429, {"reason": "TooManyRequests"})], {}),
    "server-errors": ([(500, {"reason": "InternalServerError"}),
                       (503, {"reason": "ServiceUnavailable"}), (403, {"reason": "BadCertificate"})],
                      {}),
    "goaway": ([(200, None)] * 3, {"goaway_after": 1}),
    "ping-reset": ([(200, None), "reset", (200, None)], {"ping": True}),
    "two-streams": ([(200, None)] * 3, {"max_streams": 2}),
    "big-body": ([(400, b'{"reason":"' + b"x" * 5000 + b'"}'), (200, None), (200, None)], {}),
}


def main():
    out_dir = sys.argv[1] if len(sys.argv) > 1 else os.path.join(
        os.path.dirname(os.path.abspath(__file__)), "corpus", "apns")
    os.makedirs(out_dir, exist_ok=True)
    for name, (answers, kw) in SEEDS.items():
        data = conversation(answers, **kw)
        for selector in (0xFF, 0x07):
            with open(os.path.join(out_dir, f"{name}-{selector:02x}"), "wb") as f:
                f.write(bytes([selector]) + data)


if __name__ == "__main__":
    main()
