#!/usr/bin/env python3
"""A webhook receiver for the tests: verifies every request with the `standardwebhooks`
package (an implementation independent of scepd's) and logs what it received.

  webhook_receiver.py --port-file F --secrets F --log F [--status-file F]
                      [--tls-cert PEM --tls-key PEM]

--secrets: the whsec_ secrets to try, one a line, read again for each request (the test
rotates them). --status-file: the HTTP status to answer, read again for each request
(default 200). Each request appends one JSON line to --log: the webhook-id, the parsed body,
the number of signatures in the header and the indexes of the secrets that verified it.
"""
import argparse
import json
import os
import ssl
import sys
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from standardwebhooks.webhooks import Webhook, WebhookVerificationError

args = None


def read_lines(path):
    try:
        with open(path) as f:
            return [line.strip() for line in f if line.strip()]
    except FileNotFoundError:
        return []


class Handler(BaseHTTPRequestHandler):
    def do_POST(self):
        length = int(self.headers.get("content-length", "0"))
        body = self.rfile.read(length)
        delay = read_lines(args.delay_file) if args.delay_file else []
        if delay:
            time.sleep(float(delay[0]))
        headers = {k.lower(): v for k, v in self.headers.items()}
        verified = []
        for i, secret in enumerate(read_lines(args.secrets)):
            try:
                Webhook(secret).verify(body, headers)
                verified.append(i)
            except WebhookVerificationError:
                pass
        status = 200
        lines = read_lines(args.status_file) if args.status_file else []
        if lines:
            status = int(lines[0])
        if not verified:
            status = 401
        # A redirect points at a path that would accept anything: scepd must not follow it.
        location = [("location", "/elsewhere")] if 300 <= status < 400 else []
        entry = {
            "id": headers.get("webhook-id"),
            "timestamp": headers.get("webhook-timestamp"),
            "signatures": len(headers.get("webhook-signature", "").split()),
            "verified_with": verified,
            "status": status,
            "body": json.loads(body) if body else None,
        }
        with open(args.log, "a") as f:
            f.write(json.dumps(entry) + "\n")
            f.flush()
        self.send_response(status)
        for name, value in location:
            self.send_header(name, value)
        self.send_header("content-length", "2")
        self.end_headers()
        self.wfile.write(b"ok")

    def log_message(self, *a):
        pass


def main():
    global args
    p = argparse.ArgumentParser()
    p.add_argument("--port-file", required=True)
    p.add_argument("--secrets", required=True)
    p.add_argument("--log", required=True)
    p.add_argument("--status-file")
    p.add_argument("--port", type=int, default=0)
    p.add_argument("--delay-file", help="seconds to wait before answering, read per request")
    p.add_argument("--tls-cert")
    p.add_argument("--tls-key")
    args = p.parse_args()
    # scepd sends up to 32 requests at once: the default listen backlog (5) would drop some.
    ThreadingHTTPServer.request_queue_size = 128
    server = ThreadingHTTPServer(("127.0.0.1", args.port), Handler)
    if args.tls_cert:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(args.tls_cert, args.tls_key)
        server.socket = context.wrap_socket(server.socket, server_side=True)
    tmp = args.port_file + ".tmp"
    with open(tmp, "w") as f:
        f.write(str(server.server_address[1]))
    os.rename(tmp, args.port_file)
    sys.stdout.flush()
    server.serve_forever()


if __name__ == "__main__":
    main()
