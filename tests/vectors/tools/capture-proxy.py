#!/usr/bin/env python3
"""A loopback HTTP proxy in front of scepd that saves every PKIOperation request message.

    capture-proxy.py UPSTREAM_PORT OUT_DIR

It listens on an ephemeral loopback port, written to OUT_DIR/proxy.port. Each request is
forwarded unchanged to 127.0.0.1:UPSTREAM_PORT. For operation=PKIOperation the message is
saved as OUT_DIR/NNN-METHOD.der (a POST body as sent; for a GET, the `message` parameter
percent-decoded and base64-decoded, which is what the server decodes too) and the server's
reply body beside it as OUT_DIR/NNN-METHOD.reply.der. Used by ../capture.sh.
"""

import base64
import http.client
import http.server
import itertools
import os
import sys
import urllib.parse

UPSTREAM, OUT = int(sys.argv[1]), sys.argv[2]
COUNTER = itertools.count(1)


def query_message(query):
    # Percent-decode only: '+' in certmonger's and Apple's base64 is a '+', not a space.
    for part in query.split("&"):
        name, _, value = part.partition("=")
        if name == "message":
            text = urllib.parse.unquote(value)
            return base64.b64decode(text + "=" * (-len(text) % 4))
    return None


class Proxy(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def forward(self):
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        upstream = http.client.HTTPConnection("127.0.0.1", UPSTREAM, timeout=30)
        headers = {k: v for k, v in self.headers.items() if k.lower() not in ("host", "connection")}
        upstream.request(self.command, self.path, body=body or None, headers=headers)
        reply = upstream.getresponse()
        reply_body = reply.read()
        query = urllib.parse.urlsplit(self.path).query
        if "operation=PKIOperation" in query:
            message = body if self.command == "POST" else query_message(query)
            stem = os.path.join(OUT, "%03d-%s" % (next(COUNTER), self.command))
            with open(stem + ".der", "wb") as f:
                f.write(message)
            with open(stem + ".reply.der", "wb") as f:
                f.write(reply_body)
        self.send_response(reply.status)
        for k, v in reply.getheaders():
            if k.lower() not in ("connection", "transfer-encoding", "content-length"):
                self.send_header(k, v)
        self.send_header("Content-Length", str(len(reply_body)))
        self.end_headers()
        self.wfile.write(reply_body)
        upstream.close()

    do_GET = forward
    do_POST = forward

    def log_message(self, fmt, *args):
        sys.stderr.write("capture-proxy: " + fmt % args + "\n")


server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Proxy)
with open(os.path.join(OUT, "proxy.port.tmp"), "w") as f:
    f.write(str(server.server_address[1]))
os.rename(os.path.join(OUT, "proxy.port.tmp"), os.path.join(OUT, "proxy.port"))
server.serve_forever()
