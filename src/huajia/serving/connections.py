"""Guards against slow and greedy clients, below the routes.

- ``GuardedH11Protocol`` (uvicorn's HTTP/1.1 protocol with two more rules): a connection must
  finish its request headers within ``header_timeout_s`` of opening (or of its last response),
  so idle and slow-header (slowloris) connections are closed with a 408; one address may hold at
  most ``max_per_client`` connections, the next gets a 429 it can read: the answer is sent, the
  sending side shut, and what the client sends meanwhile read and dropped until it closes (or
  ``REFUSED_LINGER_S``), so its request does not turn the answer into a reset.
- ``RequestGuard`` (ASGI middleware): a request with both Content-Length and Transfer-Encoding
  is a 400 (request smuggling behind a proxy); a body over ``limit`` bytes is a 413, a body that
  stalls for ``idle_s`` or takes longer than ``timeout_s`` in all is a 408; a JSON body is parsed
  and measured on a small pool of its own (``BodyChecker``), off the event loop, and one with
  more than ``MAX_JSON_KEYS`` fields in an object or ``MAX_JSON_ITEMS`` values in all is a 400,
  before any route runs (pydantic would list 800,000 unknown fields one by one).
All refusals are in OpenAI's error shape.
"""

from __future__ import annotations

import asyncio
import functools
import json
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from fastapi.responses import JSONResponse
from uvicorn.protocols.http.h11_impl import H11Protocol


def error_body(message: str, code: str | None, kind: str = "invalid_request_error",
               param: str | None = None) -> dict:
    """OpenAI's error shape (every refusal of the server uses it)."""
    return {"error": {"message": message, "type": kind, "param": param, "code": code}}


MAX_JSON_KEYS = 64  # the generation body has about 50 fields
MAX_JSON_ITEMS = 2_000  # values in all (a body holds a few dozen)
# past this, a body is first measured by its separators: json.loads holds the GIL (0.9 s for
# 800,000 keys), so a wide body must be refused before it is parsed, not only off the loop; a
# real body this long is one long string (a picture to verify), with almost no separators
WIDE_CHECK_BYTES = 256 * 1024


class BodyChecker:
    """Parses and measures JSON bodies on ``workers`` threads of its own; at most ``waiting``
    bodies queue for them, more are a 503 (the event loop and /health never wait on them)."""

    def __init__(self, workers: int = 2, waiting: int = 16):
        from huajia.serving.encoding import lower_priority

        self._pool = ThreadPoolExecutor(workers, thread_name_prefix="huajia-body",
                                        initializer=lower_priority)
        self.capacity = workers + waiting
        self.busy = 0

    async def problem(self, body: bytes) -> tuple[int, str, str] | None:
        """(status, code, message) of a body to refuse, or None."""
        if self.busy >= self.capacity:
            return 503, "server_busy", "the server is checking many request bodies; retry shortly"
        self.busy += 1
        try:
            return await asyncio.get_running_loop().run_in_executor(self._pool, json_problem, body)
        finally:
            self.busy -= 1

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)


def json_problem(body: bytes) -> tuple[int, str, str] | None:
    """A JSON body too wide to validate (None: fine, or not JSON: the route says so)."""
    if len(body) > WIDE_CHECK_BYTES and body.count(b'":') + body.count(b",") > MAX_JSON_ITEMS:
        return 400, "too_many_values", (f"the body holds more than {MAX_JSON_ITEMS:,} fields or "
                                        "values; send only the fields this API takes")
    try:
        value = json.loads(body)
    except ValueError:
        return None
    items, stack = 0, [value]
    while stack:
        node = stack.pop()
        if isinstance(node, dict):
            if len(node) > MAX_JSON_KEYS:
                return 400, "too_many_fields", (f"the body has an object with {len(node):,} fields; "
                                                f"at most {MAX_JSON_KEYS} (see /docs for the fields)")
            stack.extend(node.values())
        elif isinstance(node, list):
            stack.extend(node)
        items += 1
        if items > MAX_JSON_ITEMS:
            return 400, "too_many_values", (f"the body holds more than {MAX_JSON_ITEMS:,} values; "
                                            "send only the fields this API takes")
    return None


REFUSED_LINGER_S = 5.0


@dataclass(frozen=True)
class ConnectionLimits:
    header_timeout_s: float = 10.0
    max_per_client: int = 64


class GuardedH11Protocol(H11Protocol):
    def __init__(self, *args, limits: ConnectionLimits, **kwargs):
        super().__init__(*args, **kwargs)
        self.limits = limits
        self._header_timer: asyncio.TimerHandle | None = None
        self._refused = False

    def connection_made(self, transport) -> None:
        super().connection_made(transport)
        host = self.client[0] if self.client else None
        mine = sum(1 for c in self.connections if getattr(c, "client", None) and c.client[0] == host)
        if host is not None and mine > self.limits.max_per_client:
            self._refuse(429, f"too many connections from your address (at most "
                         f"{self.limits.max_per_client} at once); close some and retry",
                         "too_many_connections")
            return
        self._arm_header_timer()

    def data_received(self, data: bytes) -> None:
        if self._refused:
            return  # the answer is sent; read the request so that closing sends no reset
        super().data_received(data)
        if self._in_request():
            self._cancel_header_timer()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if not self.transport.is_closing() and not self._in_request():
            self._arm_header_timer()  # the next request's headers are timed too

    def connection_lost(self, exc) -> None:
        self._cancel_header_timer()
        self._refused = False
        super().connection_lost(exc)

    def _in_request(self) -> bool:
        return self.cycle is not None and not self.cycle.response_complete

    def _arm_header_timer(self) -> None:
        self._cancel_header_timer()
        self._header_timer = self.loop.call_later(self.limits.header_timeout_s, self._headers_late)

    def _cancel_header_timer(self) -> None:
        if self._header_timer is not None:
            self._header_timer.cancel()
            self._header_timer = None

    def _headers_late(self) -> None:
        self._header_timer = None
        if not self._in_request() and not self.transport.is_closing():
            self._refuse(408, f"the request headers did not arrive within "
                         f"{self.limits.header_timeout_s:g} s; send the whole request at once",
                         "request_timeout")

    def _refuse(self, status: int, message: str, code: str) -> None:
        """Answer without a request cycle (h11 has none yet) and close the connection."""
        body = json.dumps(error_body(message, code)).encode()
        reason = {408: b"Request Timeout", 429: b"Too Many Requests"}[status]
        head = (b"HTTP/1.1 %d %s\r\ncontent-type: application/json\r\ncontent-length: %d\r\n"
                b"connection: close\r\n\r\n" % (status, reason, len(body)))
        self.transport.write(head + body)
        if not self.transport.can_write_eof():
            self.transport.close()
            return
        self.transport.write_eof()  # the client reads the answer, then end of stream
        self._refused = True
        self.loop.call_later(REFUSED_LINGER_S, self.transport.close)


def guarded_protocol(limits: ConnectionLimits):
    """What uvicorn's ``http=`` takes: the protocol class with these limits."""
    return functools.partial(GuardedH11Protocol, limits=limits)


def server_config(app, config, host: str, port: int, **extra):
    """A uvicorn config for ``app`` with the guards of ``config`` (a ServeConfig)."""
    import uvicorn

    limits = ConnectionLimits(header_timeout_s=config.header_timeout_s,
                              max_per_client=config.max_connections_per_client)
    # a stop waits this long for open requests; their jobs are in the durable queue either way
    extra.setdefault("timeout_graceful_shutdown", config.shutdown_timeout_s)
    return uvicorn.Config(app, host=host, port=port, http=guarded_protocol(limits), **extra)


class RequestGuard:
    """ASGI middleware: reads each request body up front, bounded in size and time, then hands
    it on (bodies are at most ``limit`` bytes, so holding one is cheap)."""

    def __init__(self, app, limit: int, idle_s: float = 10.0, timeout_s: float = 120.0,
                 checker: BodyChecker | None = None):
        self.app, self.limit, self.idle_s, self.timeout_s = app, limit, idle_s, timeout_s
        self.checker = checker or BodyChecker()

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        headers = dict(scope.get("headers") or [])
        if b"transfer-encoding" in headers and b"content-length" in headers:
            return await self._refuse(scope, send, 400, "ambiguous_length",
                                      "the request has both Content-Length and Transfer-Encoding; "
                                      "send one of them")
        declared = headers.get(b"content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > self.limit):
            return await self._too_large(scope, send)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.timeout_s
        chunks, seen, more = [], 0, True
        while more:
            wait = min(self.idle_s, deadline - loop.time())
            try:
                message = await asyncio.wait_for(receive(), timeout=max(wait, 0.001))
            except TimeoutError:
                return await self._refuse(scope, send, 408, "request_timeout",
                                          f"the request body stalled (nothing for {self.idle_s:g} s, "
                                          f"or over {self.timeout_s:g} s in all); send it at once")
            if message["type"] != "http.request":
                return await self.app(scope, _replay([message]), send)
            chunks.append(message)
            seen += len(message.get("body", b""))
            more = message.get("more_body", False)
            if seen > self.limit:
                return await self._too_large(scope, send)
        kind = headers.get(b"content-type", b"")
        if seen and (not kind or b"json" in kind):  # FastAPI reads a body without a type as JSON
            problem = await self.checker.problem(b"".join(c.get("body", b"") for c in chunks))
            if problem is not None:
                return await self._refuse(scope, send, problem[0], problem[1], problem[2])
        await self.app(scope, _replay(chunks, receive), send)

    async def _too_large(self, scope, send):
        return await self._refuse(scope, send, 413, "request_too_large",
                                  f"the request body is over {self.limit // 1024**2} MiB; send "
                                  "less (a prompt is at most 4,000 characters)")

    @staticmethod
    async def _refuse(scope, send, status: int, code: str, message: str):
        response = JSONResponse(error_body(message, code), status_code=status,
                                headers={"connection": "close"})
        await response(scope, _replay([]), send)


def _replay(messages: list, then=None):
    """A ``receive`` that gives ``messages`` again, then defers to ``then``."""
    pending = list(messages)

    async def receive():
        if pending:
            return pending.pop(0)
        return await then() if then else {"type": "http.disconnect"}

    return receive
