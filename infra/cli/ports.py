"""Whether `saga serve` can listen where it was asked to, tried before it opens anything."""

from __future__ import annotations

import errno
import socket


class PortUnavailableError(Exception):
    """The server could not listen on host:port; the message says why and what to do."""


def check_port(host: str, port: int, *, choose_with: str) -> None:
    """Raise PortUnavailableError unless a socket can bind `host:port` now.

    Binds as uvicorn does (SO_REUSEADDR, so a port left in TIME_WAIT by a server just stopped
    is free) and closes at once: what is in use is found before the stores are opened and the
    banner printed. `choose_with` names how to choose another port ("--port (or PORT)").
    """
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as error:
            if error.errno == errno.EADDRINUSE:
                raise PortUnavailableError(f"port {port} on {host} is in use: stop what holds it, "
                                           f"or choose another with {choose_with}") from None
            reason = error.strerror or str(error)
            raise PortUnavailableError(f"cannot listen on {host} port {port}: {reason}") from None
