#!/usr/bin/env python3
"""A Bazel HTTP cache that is full and broken, for tools/cache_check.sh: every
GET answers 500 and every PUT 507 (Insufficient Storage). Prints its port."""
import http.server


class Broken(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def answer(self, code):
        self.send_response(code)
        self.send_header("Content-Length", "0")
        self.send_header("Connection", "close")
        self.end_headers()
        self.close_connection = True

    def do_GET(self):  # pylint: disable=invalid-name
        self.answer(500)

    def do_HEAD(self):  # pylint: disable=invalid-name
        self.answer(500)

    def do_PUT(self):  # pylint: disable=invalid-name
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        self.answer(507)

    def log_message(self, *args):
        pass


server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Broken)
print(server.server_address[1], flush=True)
server.serve_forever()
