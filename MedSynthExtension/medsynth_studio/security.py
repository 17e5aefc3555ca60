"""Who may talk to MedSynth Studio: a per-launch token, the Origin and Host checks, message size caps.

The studio's websocket (trame / wslink) drives the scene: it can load files on the server and
send their bytes back.  So a connection is accepted only when

* its ``Origin`` header names the very address the page was served from (the same scheme-less
  ``host:port`` as the request's ``Host``): a page of another site open in the user's browser is
  refused before the websocket opens;
* when the server listens on a loopback address, the ``Host`` is a loopback name too
  (``127.0.0.1``, ``localhost``, ``[::1]``): a DNS-rebinding page cannot pose as the studio;
* its first message carries the random token of this launch (wslink's ``secret``; the token is in
  the address the studio prints, ``?secret=...``, and trame's page sends it and removes it from
  the address bar).  wslink refuses every message of a connection that has not given it.

:func:`guard_middleware` is an aiohttp middleware installed through trame's ``on_server_bind``;
:func:`cap_message_size` limits what one websocket message may allocate on the server.
"""

from __future__ import annotations

import ipaddress
import logging
import secrets
from typing import Callable, Iterable, Optional
from urllib.parse import urlsplit

log = logging.getLogger("medsynth.studio")

#: Names a browser uses for this machine's loopback interface.
LOOPBACK_NAMES = ("localhost", "127.0.0.1", "::1")


def new_token() -> str:
    """A random token for one launch (32 bytes, URL-safe)."""
    return secrets.token_urlsafe(32)


def is_loopback(host: str) -> bool:
    """True for ``localhost``, ``127.x.y.z`` and ``::1`` (with or without brackets)."""
    h = (host or "").strip().strip("[]").lower()
    if h == "localhost" or h.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(h).is_loopback
    except ValueError:
        return False


def host_warning(host: str) -> Optional[str]:
    """The warning printed when the studio listens on an address other machines can reach (else None)."""
    if is_loopback(host):
        return None
    shown = host or "all addresses"
    return (
        f"warning: MedSynth Studio listens on {shown}, not on a loopback address: anyone who can reach this "
        "machine and learns the address with its token can load files into the studio and download them, "
        "and the connection is not encrypted. Use --host 127.0.0.1 (the default) unless you need this."
    )


def split_host(value: str):
    """``host[:port]`` of a Host header -> (host lower-cased without brackets, port or None)."""
    value = (value or "").strip().lower()
    if value.startswith("["):  # [::1]:8080
        host, _, rest = value[1:].partition("]")
        port = rest[1:] if rest.startswith(":") else None
    elif value.count(":") == 1:
        host, _, port = value.partition(":")
    else:
        host, port = value, None
    return host, (port or None)


def origin_allowed(origin: Optional[str], host_header: Optional[str], default_port: int) -> bool:
    """The Origin names the same host and port as the Host header (scheme http or https)."""
    if not origin or not host_header:
        return False
    parts = urlsplit(origin.strip())
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return False
    o_port = parts.port or (443 if parts.scheme == "https" else 80)
    h_host, h_port = split_host(host_header)
    h_port_n = int(h_port) if h_port and h_port.isdigit() else default_port
    return parts.hostname.lower() == h_host and o_port == h_port_n


def host_allowed(host_header: Optional[str], listen_host: str) -> bool:
    """When listening on loopback only, the Host header must be a loopback name (DNS-rebinding guard)."""
    if not is_loopback(listen_host):
        return True  # the token and the Origin check guard a server open to the network
    host, _port = split_host(host_header or "")
    return is_loopback(host)


def guard_middleware(listen_host: str, ws_paths: Iterable[str], refused: Optional[Callable[[str], None]] = None):
    """An aiohttp middleware: Host check for every request, Origin check for the websocket routes."""
    from aiohttp import web

    ws = {"/" + p.strip("/") for p in ws_paths}

    @web.middleware
    async def guard(request, handler):
        host = request.headers.get("Host", "")
        if not host_allowed(host, listen_host):
            why = f"refused a request for host '{host[:60]}' (not this machine's loopback address)"
            log.warning("MedSynth Studio %s", why)
            if refused:
                refused(why)
            return web.Response(status=403, text="MedSynth Studio: unknown host\n")
        if request.path in ws:
            origin = request.headers.get("Origin")
            default_port = 443 if request.secure else 80
            if not origin_allowed(origin, host, default_port):
                why = f"refused a websocket from origin '{(origin or 'none')[:80]}'"
                log.warning("MedSynth Studio %s", why)
                if refused:
                    refused(why)
                return web.Response(status=403, text="MedSynth Studio: connections from other sites are refused\n")
        return await handler(request)

    return guard


def cap_message_size(wslink_server, max_bytes: int) -> int:
    """Limit the size one websocket message may allocate, for every connection of ``wslink_server``.

    wslink lets an authenticated client announce messages of up to 4 GB and allocates them at
    once; the studio sends files in small pieces, so nothing it does needs more than ``max_bytes``.
    Returns how many websocket handlers were capped.
    """
    count = 0
    for handler in getattr(wslink_server, "_ws_handlers", []):
        handler.unchunkers = _CappedUnchunkers(handler.unchunkers, max_bytes)
        count += 1
    return count


class _CappedUnchunkers(dict):
    """wslink's per-client un-chunkers, each one's allocation limit capped."""

    def __init__(self, initial, cap: int) -> None:
        super().__init__()
        self.cap = int(cap)
        for key, value in dict(initial).items():
            self[key] = value

    def __setitem__(self, key, unchunker) -> None:
        cap = self.cap
        setter = unchunker.set_max_message_size

        def capped(size, _setter=setter):
            _setter(min(int(size), cap))

        unchunker.set_max_message_size = capped
        super().__setitem__(key, unchunker)
