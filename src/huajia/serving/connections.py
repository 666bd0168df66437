"""Guards against slow and greedy clients, below the routes.

- ``GuardedH11Protocol`` (uvicorn's HTTP/1.1 protocol with two more rules): a connection must
  finish its request headers within ``header_timeout_s`` of opening (or of its last response),
  so idle and slow-header (slowloris) connections are closed with a 408; one address may hold at
  most ``max_per_client`` connections, the next gets a 429.
- ``RequestGuard`` (ASGI middleware): a body over ``limit`` bytes is a 413, a body that stalls
  for ``idle_s`` or takes longer than ``timeout_s`` in all is a 408, before any route runs.
All refusals are in OpenAI's error shape.
"""

from __future__ import annotations

import asyncio
import functools
import json
from dataclasses import dataclass

from fastapi.responses import JSONResponse
from uvicorn.protocols.http.h11_impl import H11Protocol


def error_body(message: str, code: str | None, kind: str = "invalid_request_error",
               param: str | None = None) -> dict:
    """OpenAI's error shape (every refusal of the server uses it)."""
    return {"error": {"message": message, "type": kind, "param": param, "code": code}}


@dataclass(frozen=True)
class ConnectionLimits:
    header_timeout_s: float = 10.0
    max_per_client: int = 64


class GuardedH11Protocol(H11Protocol):
    def __init__(self, *args, limits: ConnectionLimits, **kwargs):
        super().__init__(*args, **kwargs)
        self.limits = limits
        self._header_timer: asyncio.TimerHandle | None = None

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
        super().data_received(data)
        if self._in_request():
            self._cancel_header_timer()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if not self.transport.is_closing() and not self._in_request():
            self._arm_header_timer()  # the next request's headers are timed too

    def connection_lost(self, exc) -> None:
        self._cancel_header_timer()
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
        self.transport.close()


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

    def __init__(self, app, limit: int, idle_s: float = 10.0, timeout_s: float = 120.0):
        self.app, self.limit, self.idle_s, self.timeout_s = app, limit, idle_s, timeout_s

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        declared = dict(scope.get("headers") or []).get(b"content-length")
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
