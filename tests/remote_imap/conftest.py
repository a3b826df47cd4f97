"""The Dovecot test server for the IMAP client tests."""

from __future__ import annotations

from tests.imapserver import imap_server  # noqa: F401
