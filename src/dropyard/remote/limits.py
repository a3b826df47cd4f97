"""The bounds of one remote session, from the operator's settings."""

from __future__ import annotations

import time

from dropyard.remote.base import Limits
from dropyard.settings import Settings


def remote_limits(settings: Settings) -> Limits:
    """Limits for a session starting now: its deadline is `remote_max_run_seconds` away."""
    return Limits(
        connect_timeout=settings.remote_connect_timeout,
        idle_timeout=settings.remote_idle_timeout,
        max_file_bytes=settings.remote_max_file_bytes,
        max_listing=settings.remote_max_listing,
        deadline=time.monotonic() + settings.remote_max_run_seconds,
    )
