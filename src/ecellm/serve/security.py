"""Who may talk to ``ecellm serve``: loopback only, unless a bearer token protects the server.

A model server executes arbitrary prompts on the host's CPU/GPU, so exposing it on a network
without authentication would hand that compute to anyone who can reach the port. The rule is
therefore: bind to a loopback address, or set a token (``--token`` / ``ECELLM_SERVER_TOKEN``)
and every ``/v1`` request must carry ``Authorization: Bearer <token>``.
"""

from __future__ import annotations

import hmac
import ipaddress
import os

from ecellm.errors import InputError

TOKEN_ENV = "ECELLM_SERVER_TOKEN"


def resolve_token(token: str | None) -> str | None:
    """The explicit token, else ``$ECELLM_SERVER_TOKEN``; an empty string means no token."""
    value = token if token is not None else os.environ.get(TOKEN_ENV)
    return value or None


def is_loopback(host: str) -> bool:
    """True for ``localhost`` and loopback IPs; hostnames other than localhost count as public."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def check_bind(host: str, token: str | None) -> None:
    """Refuse to listen on a non-loopback address when no token is set."""
    if not is_loopback(host) and not token:
        raise InputError(
            f"refusing to bind to {host} without a token: set --token or ${TOKEN_ENV}, or bind to 127.0.0.1",
            field="host",
        )


def token_matches(header: str | None, token: str) -> bool:
    """Constant-time check of an ``Authorization: Bearer ...`` header against the token."""
    if not header:
        return False
    scheme, _, value = header.partition(" ")
    if scheme.lower() != "bearer":
        return False
    return hmac.compare_digest(value.strip().encode(), token.encode())
