"""A fake OpenAI-compatible chat completions server for the end-to-end and browser tests: streams a scripted reply
slowly (so a page can be seen writing it) and records every request body it gets."""
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class FakeModel:
    def __init__(self, reply="The launch is on Friday at ten.", pieces=6, delay=0.3, model="fake-model"):
        self.reply, self.pieces, self.delay, self.model = reply, pieces, delay, model
        self.requests = []
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                fake.requests.append(json.loads(body))
                self.send_response(200)
                self.send_header("Content-Type", "text/event-stream")
                self.send_header("Transfer-Encoding", "chunked")
                self.end_headers()
                words = fake.reply.split(" ")
                size = max(1, -(-len(words) // fake.pieces))
                for start in range(0, len(words), size):
                    part = " ".join(words[start:start + size]) + (" " if start + size < len(words) else "")
                    self.chunk("data: " + json.dumps({"model": fake.model, "choices": [{"index": 0, "delta": {"content": part}}]}) + "\n\n")
                    time.sleep(fake.delay)
                self.chunk("data: " + json.dumps({"choices": [], "usage": {"prompt_tokens": 50, "completion_tokens": len(words)}}) + "\n\n")
                self.chunk("data: [DONE]\n\n")
                self.wfile.write(b"0\r\n\r\n")

            def chunk(self, text):
                data = text.encode()
                self.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
                self.wfile.flush()

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def base_url(self):
        return f"http://127.0.0.1:{self.server.server_address[1]}/v1"

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.server.shutdown()
        self.server.server_close()
