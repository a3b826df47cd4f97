"""Brute-force defence shared by every front-end (SFTP, FTP, web sign-in).

Each failed login scores against the client's address; enough failures within the window
ban the address for a while, longer on every repeat. Addresses on the allow-list are never
banned. Thread-safe: the FTP server runs a thread per client.
"""

from __future__ import annotations

import threading
import time
from collections import defaultdict, deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from ipaddress import IPv4Network, IPv6Network, ip_address, ip_network


@dataclass(frozen=True)
class DefenderPolicy:
    max_failures: int = 5
    window_seconds: float = 600.0
    ban_seconds: float = 1800.0
    max_ban_seconds: float = 86400.0
    allow: tuple[str, ...] = ()


class Defender:
    def __init__(
        self, policy: DefenderPolicy | None = None, *, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.policy = policy or DefenderPolicy()
        self._clock = clock
        self._lock = threading.Lock()
        self._failures: dict[str, deque[float]] = defaultdict(deque)
        self._bans: dict[str, float] = {}
        self._ban_count: dict[str, int] = defaultdict(int)
        self._allow: list[IPv4Network | IPv6Network] = [
            ip_network(net, strict=False) for net in self.policy.allow
        ]

    def _allowed(self, address: str) -> bool:
        try:
            ip = ip_address(address)
        except ValueError:
            return False
        return any(ip in net for net in self._allow)

    def is_banned(self, address: str) -> bool:
        with self._lock:
            until = self._bans.get(address)
            if until is None:
                return False
            if until <= self._clock():
                del self._bans[address]
                return False
            return True

    def failure(self, address: str) -> bool:
        """Score one failed login. True when the address is now banned."""
        if self._allowed(address):
            return False
        with self._lock:
            now = self._clock()
            window = self._failures[address]
            window.append(now)
            while window and window[0] <= now - self.policy.window_seconds:
                window.popleft()
            if len(window) < self.policy.max_failures:
                return False
            window.clear()
            self._ban_count[address] += 1
            repeat = self._ban_count[address] - 1
            length = min(self.policy.ban_seconds * (2**repeat), self.policy.max_ban_seconds)
            self._bans[address] = now + length
            return True

    def success(self, address: str) -> None:
        with self._lock:
            self._failures.pop(address, None)

    def banned(self) -> Iterable[str]:
        with self._lock:
            now = self._clock()
            return [a for a, until in self._bans.items() if until > now]
