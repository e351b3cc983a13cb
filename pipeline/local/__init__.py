"""The local deploy target: releases on this host behind one stable loopback port."""

import socket


def free_port() -> int:
    """A loopback port nothing listens on now (for a server started next, in a test or bench)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])
