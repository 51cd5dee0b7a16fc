"""The cheap early answer to a flood of password checks from one address.

The hashing queue's own admission (services.passwords) is the rule; it runs in the service,
after Connexion has routed, validated and opened a transaction for the request. Under a
flood from one address nearly every request is refused there, and that full path per refusal
is what the server then spends its time on, delaying everyone else's requests. This
middleware refuses the same requests before any of it: an address that already has its
cap of password checks in flight gets the same 429 at once. A request that passes is still
admitted, or not, by the service.
"""

from __future__ import annotations

import json

from starlette.types import ASGIApp, Receive, Scope, Send

from nestauth.context import Runtime, client_ip
from nestauth.errors import RateLimited, envelope
from nestauth.services.passwords import CLIENT_BUSY_MESSAGE, GATE

# The operations that check or hash a password for anyone on the network.
PASSWORD_PATHS = frozenset({"/auth/login", "/auth/signup", "/auth/admin/login"})
_RETRY_AFTER = 1
_BODY = json.dumps(
    envelope(429, RateLimited.code, CLIENT_BUSY_MESSAGE, {"retryAfter": _RETRY_AFTER})
).encode()
_HEADERS = [
    (b"content-type", b"application/json"),
    (b"content-length", str(len(_BODY)).encode()),
    (b"retry-after", str(_RETRY_AFTER).encode()),
]


class FloodGuardMiddleware:
    def __init__(self, app: ASGIApp, *, runtime: Runtime) -> None:
        self.app, self.runtime = app, runtime

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (
            scope["type"] == "http"
            and scope["method"] == "POST"
            and scope["path"] in PASSWORD_PATHS
            and GATE.in_flight(client_ip(scope) or "unknown")
            >= self.runtime.settings.hash_max_in_flight_per_client
        ):
            await send({"type": "http.response.start", "status": 429, "headers": _HEADERS})
            await send({"type": "http.response.body", "body": _BODY})
            return
        await self.app(scope, receive, send)
