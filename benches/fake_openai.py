#!/usr/bin/env python3
"""A minimal OpenAI-compatible chat-completions server for benchmarks.

Streams a fixed reply (SSE, one token per chunk, optional pause between
chunks) or answers with one JSON body when the request has "stream": false.
Standard library only. Usage: fake_openai.py PORT [DELAY_MS] [TOKENS]
"""
import json
import sys
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

PORT = int(sys.argv[1])
DELAY = float(sys.argv[2]) / 1000 if len(sys.argv) > 2 else 0.0
TOKENS = int(sys.argv[3]) if len(sys.argv) > 3 else 12
SENT_LOG = sys.argv[4] if len(sys.argv) > 4 else None


def chunk(delta, finish=None):
    return {"id": "b", "object": "chat.completion.chunk", "created": 1, "model": "bench",
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_POST(self):
        body = json.loads(self.rfile.read(int(self.headers.get("content-length", 0))) or b"{}")
        words = [f"t{i} " for i in range(TOKENS)]
        if not body.get("stream"):
            payload = json.dumps({"id": "b", "object": "chat.completion", "created": 1, "model": "bench",
                                  "choices": [{"index": 0, "message": {"role": "assistant", "content": "".join(words)},
                                               "finish_reason": "stop"}]}).encode()
            self.send_response(200)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)
            return
        self.send_response(200)
        self.send_header("content-type", "text/event-stream")
        self.send_header("connection", "close")
        self.end_headers()
        log = open(SENT_LOG, "a") if SENT_LOG else None
        for word in words:
            if DELAY:
                time.sleep(DELAY)
            self.wfile.write(f"data: {json.dumps(chunk({'content': word}))}\n\n".encode())
            self.wfile.flush()
            if log:
                log.write(f"{word.strip()} {time.monotonic()}\n")
                log.flush()
        self.wfile.write(f"data: {json.dumps(chunk({}, 'stop'))}\n\ndata: [DONE]\n\n".encode())
        self.wfile.flush()
        self.close_connection = True

    def log_message(self, *args):
        pass


ThreadingHTTPServer(("127.0.0.1", PORT), Handler).serve_forever()
