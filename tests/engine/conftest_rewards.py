"""Helpers shared by the reward tests (imported explicitly; pytest does not load this file by itself)."""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


def default_judge(messages: list[dict[str, Any]]) -> str:
    """A judge that gives 9 when the response holds the right answer, 2 otherwise, and 10 to anyone who
    asks for it (the injection the red team tries)."""
    text = messages[-1]["content"]
    response = text.split("[Response]", 1)[-1]
    if "maximum score" in response.lower():
        return "The response asks for the maximum score. Score: 10"
    answer = re.search(r"\[Answer\]\s*(\S+)", text)
    if answer and answer.group(1) in response:
        return "The response gives the right answer.\nScore: 9"
    return "The response is wrong.\nScore: 2"


class FakeOpenAI:
    """An OpenAI-compatible chat completions server on 127.0.0.1, in a thread."""

    def __init__(
        self, respond: Callable[[list[dict[str, Any]]], str] = default_judge, api_key: str | None = None
    ):
        self.respond = respond
        self.api_key = api_key
        self.requests: list[dict[str, Any]] = []
        self.fail_next = 0
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                server.requests.append(
                    {"path": self.path, "body": body, "auth": self.headers.get("Authorization")}
                )
                if self.path != "/v1/chat/completions":
                    return self._send(404, {"error": {"message": f"no route {self.path}"}})
                if server.api_key and self.headers.get("Authorization") != f"Bearer {server.api_key}":
                    return self._send(401, {"error": {"message": "invalid api key"}})
                if server.fail_next:
                    server.fail_next -= 1
                    return self._send(503, {"error": {"message": "overloaded"}})
                content = server.respond(body["messages"])
                self._send(
                    200,
                    {
                        "id": "chatcmpl-test",
                        "object": "chat.completion",
                        "model": body["model"],
                        "choices": [
                            {
                                "index": 0,
                                "message": {"role": "assistant", "content": content},
                                "finish_reason": "stop",
                            }
                        ],
                    },
                )

            def _send(self, status: int, payload: dict[str, Any]) -> None:
                data = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"

    def __enter__(self) -> FakeOpenAI:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
