"""Logging for every Dropyard process: plain text for people, or one JSON object a line.

`log_context(trace_id=...)` binds values (a file's trace id) to everything logged inside
it, in this thread or task only (contextvars). Log records carry what the code passed:
secrets never reach a log call, and nothing here adds any.
"""

from __future__ import annotations

import json
import logging
import sys
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import UTC, datetime
from types import MappingProxyType
from typing import Any, TextIO

from dropyard.settings import Settings

_EMPTY: Mapping[str, str] = MappingProxyType({})
_bound: ContextVar[Mapping[str, str]] = ContextVar("dropyard_log_context", default=_EMPTY)
# The fields every JSON line has; bound values may not replace them.
_RESERVED = frozenset({"time", "level", "logger", "message", "exception"})
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


@contextmanager
def log_context(**values: str) -> Iterator[None]:
    """Everything logged inside carries these values (nested contexts add to them)."""
    token = _bound.set(MappingProxyType({**_bound.get(), **values}))
    try:
        yield
    finally:
        _bound.reset(token)


def bound() -> Mapping[str, str]:
    return _bound.get()


class ContextFilter(logging.Filter):
    """Puts the bound values on each record as it is emitted (in the emitting thread)."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.dropyard_context = dict(bound())
        return True


class QueueOutageFilter(logging.Filter):
    """While the queue (Redis) is down, Huey's consumer threads log a stack trace several
    times a second. An unreachable queue is an expected, temporary state: say it in one
    line, at most once per `every` seconds per consumer thread."""

    def __init__(self, every: float = 30.0) -> None:
        super().__init__()
        self._every = every
        self._last: dict[str, float] = {}

    def filter(self, record: logging.LogRecord) -> bool:
        if not record.name.startswith("huey.consumer") or not record.exc_info:
            return True
        exc = record.exc_info[1]
        if not _is_outage(exc):
            return True
        now = time.monotonic()
        if now - self._last.get(record.name, -self._every) < self._every:
            return False
        self._last[record.name] = now
        record.msg = f"{record.getMessage()}: the job queue is unreachable ({exc}); retrying"
        record.args = None
        record.exc_info = None
        record.exc_text = None
        record.levelno, record.levelname = logging.WARNING, "WARNING"
        return True


def _is_outage(exc: BaseException | None) -> bool:
    if isinstance(exc, ConnectionError | TimeoutError):
        return True
    try:
        from redis.exceptions import ConnectionError as RedisDown
        from redis.exceptions import TimeoutError as RedisSlow
    except ImportError:  # pragma: no cover - redis is a dependency
        return False
    return isinstance(exc, RedisDown | RedisSlow)


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time (UTC, ISO 8601), level, logger, message, bound
    values such as trace_id, and the exception (as text) when there is one."""

    def format(self, record: logging.LogRecord) -> str:
        at = datetime.fromtimestamp(record.created, UTC)
        document: dict[str, Any] = {
            "time": at.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        context = getattr(record, "dropyard_context", None) or bound()
        for key, value in context.items():
            if key not in _RESERVED:
                document[key] = value
        if record.exc_info:
            document["exception"] = self.formatException(record.exc_info)
        elif record.stack_info:
            document["exception"] = self.formatStack(record.stack_info)
        return json.dumps(document, ensure_ascii=False, default=str)


class TextFormatter(logging.Formatter):
    """The classic line, with bound values appended as `key=value`."""

    def __init__(self) -> None:
        super().__init__(TEXT_FORMAT)

    def formatMessage(self, record: logging.LogRecord) -> str:  # noqa: N802
        line = super().formatMessage(record)
        context = getattr(record, "dropyard_context", None) or bound()
        if context:
            line += " " + " ".join(f"{k}={v}" for k, v in context.items())
        return line


def make_handler(settings: Settings, stream: TextIO | None = None) -> logging.Handler:
    """A handler writing to `stream` (default stderr) in the configured format."""
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.addFilter(ContextFilter())
    handler.addFilter(QueueOutageFilter())
    handler.setFormatter(JsonFormatter() if settings.log_format == "json" else TextFormatter())
    return handler


def configure_logging(settings: Settings) -> None:
    """Route every logger of the process to stderr, in the configured format and level."""
    handler = make_handler(settings)
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
        old.close()
    root.addHandler(handler)
    root.setLevel(settings.log_level.upper())
    # Huey logs every task at INFO; its warnings and errors are what an operator needs.
    logging.getLogger("huey").setLevel(max(logging.WARNING, root.level))
