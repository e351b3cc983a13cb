"""A bounded loopback load: N clients request a URL until told to stop, counting failures.

Each request opens its own connection, so every request goes through the listening socket's
accept queue, which is what a release switch must not disturb. Only 127.0.0.1 is allowed.
"""

from __future__ import annotations

import http.client
import threading
import time
from dataclasses import dataclass, field
from urllib.parse import urlsplit

MAX_SECONDS = 300


@dataclass
class Tally:
    ok: int = 0
    failed: int = 0
    errors: list[str] = field(default_factory=list)
    latencies: list[float] = field(default_factory=list)


class Load:
    def __init__(self, url: str, clients: int = 20, timeout: float = 10.0) -> None:
        parts = urlsplit(url)
        if parts.hostname != "127.0.0.1":
            raise ValueError("the load generator only targets 127.0.0.1")
        self.host, self.port, self.path = parts.hostname, parts.port or 80, parts.path or "/"
        self.clients, self.timeout = clients, timeout
        self.tally = Tally()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []

    def _client(self) -> None:
        deadline = time.monotonic() + MAX_SECONDS
        while not self._stop.is_set() and time.monotonic() < deadline:
            started = time.perf_counter()
            try:
                connection = http.client.HTTPConnection(self.host, self.port, timeout=self.timeout)
                connection.request("GET", self.path, headers={"Connection": "close"})
                response = connection.getresponse()
                response.read()
                connection.close()
                error = None if response.status == 200 else f"HTTP {response.status}"
            except OSError as failure:
                error = f"{type(failure).__name__}: {failure}"
            with self._lock:
                if error is None:
                    self.tally.ok += 1
                    self.tally.latencies.append(time.perf_counter() - started)
                else:
                    self.tally.failed += 1
                    self.tally.errors.append(error)

    def __enter__(self) -> Load:
        self._threads = [threading.Thread(target=self._client, daemon=True)
                         for _ in range(self.clients)]
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join()
