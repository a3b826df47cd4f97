"""The console on PostgreSQL: a smaller set than on SQLite (which runs every UI test),
covering what touches the database differently — sessions and users, the wizard's
transaction, the files history and its figures, and tenant scoping."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.ui.conftest import NewPage, SignedIn
from tests.ui.server import Console
from tests.ui.test_connections import (
    check_history_and_downloads,
    check_other_accounts_are_not_found,
)
from tests.ui.test_sessions import sign_in_and_out
from tests.ui.test_wizard import walk

pytestmark = [pytest.mark.xdist_group("ui"), pytest.mark.postgres]


def test_sign_in_and_out(postgres_console: Console, new_page: NewPage) -> None:
    sign_in_and_out(postgres_console, new_page())


@pytest.mark.parametrize(
    ("direction", "methodology", "method", "data_type"),
    [("inbound", "push", "ftp", "conversions"), ("outbound", "deliver", "sftp", "reports")],
)
def test_walk_the_wizard(
    postgres_console: Console,
    signed_in: SignedIn,
    direction: str,
    methodology: str,
    method: str,
    data_type: str,
) -> None:
    page = signed_in(postgres_console, postgres_console.admin, javascript=False)
    walk(postgres_console, page, direction, methodology, method, data_type)


def test_history_and_downloads(
    postgres_console: Console, signed_in: SignedIn, tmp_path: Path
) -> None:
    page = signed_in(postgres_console, postgres_console.admin)
    check_history_and_downloads(postgres_console, page, tmp_path)


def test_another_accounts_connection_is_not_found(
    postgres_console: Console, signed_in: SignedIn
) -> None:
    page = signed_in(postgres_console, postgres_console.admin)
    check_other_accounts_are_not_found(postgres_console, page)
