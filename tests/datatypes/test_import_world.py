"""A small ledger that inbound files refer to, and a way to run a file through the real
pipeline: upload (spool + commit, as every protocol does), process, read the results.

One brand with two campaigns, another brand with one, three partners; connections made
through the wizard. The other test_import_* modules build on it.
"""

from __future__ import annotations

import csv
import gzip
import io
import itertools
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from sqlalchemy import func, select

from dropyard.accounts.actors import operator
from dropyard.app import Dropyard
from dropyard.datatypes.registry import inbound_types
from dropyard.files import names
from dropyard.ledger.models import Action, Click
from tests.support import unique, walk_wizard

OP = operator("tests")
CAMPAIGN, TRACKER = 1001, 5001  # rate 0.08, locks after 30 days
CAMPAIGN_B, TRACKER_B = 1002, 5002  # the same brand; rate 0.05
OTHER_CAMPAIGN, OTHER_TRACKER = 2001, 6001  # another brand's
PARTNER_A = 7001  # in CAMPAIGN at its rate
PARTNER_B = 7002  # in CAMPAIGN at 0.10 (an override)
PARTNER_C = 7003  # in CAMPAIGN_B only
LOCK_DAYS = 30


def _public_key() -> str:
    key = Ed25519PrivateKey.generate().public_key()
    return key.public_bytes(Encoding.OpenSSH, PublicFormat.OpenSSH).decode() + " tests@dropyard"


def iso(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def days_ago(days: float) -> datetime:
    return datetime.now(UTC).replace(microsecond=0) - timedelta(days=days)


def csv_bytes(
    header: Sequence[str], rows: Sequence[Sequence[object]], *, delimiter: str = ","
) -> bytes:
    out = io.StringIO()
    writer = csv.writer(out, delimiter=delimiter, lineterminator="\n")
    writer.writerow(header)
    writer.writerows([[("" if c is None else str(c)) for c in r] for r in rows])
    return out.getvalue().encode()


@dataclass(frozen=True)
class Outcome:
    """What a partner sees after processing: the state, the summary, the error file."""

    file_id: int
    state: str | None
    summary: dict[str, Any]
    errors: list[dict[str, str]]

    def codes(self) -> list[tuple[int, str]]:
        return sorted((int(e["LineNumber"]), e["ErrorType"]) for e in self.errors)

    def message(self, line: int) -> str:
        return next(e["ErrorMessage"] for e in self.errors if int(e["LineNumber"]) == line)


@dataclass
class World:
    app: Dropyard
    brand_id: int
    other_brand_id: int
    _connections: dict[str, int] = field(default_factory=dict)
    _credential: int | None = None
    _names: itertools.count[int] = field(default_factory=lambda: itertools.count(1))

    def connection(self, data_type: str, *, account: int | None = None) -> int:
        key = f"{data_type}:{account or self.brand_id}"
        if key not in self._connections:
            # A public key, not a password: hashing one costs a second of a test's time.
            credential: dict[str, Any] = (
                {"credential_id": self._credential}
                if self._credential is not None
                else {
                    "new": {
                        "kind": "hosted_public_key",
                        "name": unique("key"),
                        "public_key": _public_key(),
                    }
                }
            )
            created = walk_wizard(
                self.app,
                OP,
                account=account or self.brand_id,
                name=unique(data_type),
                direction="inbound",
                data_type=data_type,
                method="sftp",
                methodology="push",
                details={},
                credential=credential,
            )
            self._connections[key] = created.connection.id
            self._credential = created.connection.credential_id
        return self._connections[key]

    def upload(self, data_type: str, data: bytes, *, name: str | None = None) -> tuple[int, str]:
        name = name or f"upload-{next(self._names)}.csv"
        spool = self.app.files.open_spool()
        spool.write(data)
        view = self.app.files.commit(
            spool, connection_id=self.connection(data_type), name=name, source="sftp", actor=OP
        )
        return view.id, name

    def outcome(self, data_type: str, file_id: int, name: str, state: str | None) -> Outcome:
        view, _ = self.app.files.get(OP, file_id)
        errors: list[dict[str, str]] = []
        connection_id = self.connection(data_type)
        stored = {o.key.rsplit("/", 1)[-1] for o in self.app.files.list_folder(connection_id)}
        if names.errors_name(name) in stored:
            with self.app.files.open_folder_file(connection_id, names.errors_name(name)) as raw:
                text = gzip.decompress(raw.read()).decode()
            errors = list(csv.DictReader(io.StringIO(text)))
        return Outcome(file_id, state, view.summary or {}, errors)

    def run(self, data_type: str, data: bytes, *, name: str | None = None) -> Outcome:
        file_id, name = self.upload(data_type, data, name=name)
        state = self.app.processor.process(file_id)
        return self.outcome(data_type, file_id, name, state)

    def click(
        self,
        click_id: str,
        *,
        campaign: int = CAMPAIGN,
        partner: int = PARTNER_A,
        account: int | None = None,
    ) -> None:
        with self.app.sessions() as session, session.begin():
            session.add(
                Click(
                    account_id=account or self.brand_id,
                    click_id=click_id,
                    campaign_id=campaign,
                    partner_id=partner,
                    event_date=days_ago(3),
                )
            )

    def actions(self) -> list[Action]:
        with self.app.sessions() as session:
            return list(session.scalars(select(Action).order_by(Action.id)))

    def count(self, model: type[Any]) -> int:
        with self.app.sessions() as session:
            return int(session.scalar(select(func.count()).select_from(model)) or 0)

    def change(self, update: Callable[[Any], Any]) -> None:
        """Change the ledger by hand (what no file can do: age an action, say)."""
        with self.app.sessions() as session, session.begin():
            session.execute(update(session))


def make_world(app: Dropyard) -> World:
    brand = app.accounts.create_account(OP, name=unique("Brand"), kind="brand").id
    other = app.accounts.create_account(OP, name=unique("Other brand"), kind="brand").id
    ledger = app.ledger
    for campaign_id, tracker, rate, account in (
        (CAMPAIGN, TRACKER, "0.08", brand),
        (CAMPAIGN_B, TRACKER_B, "0.05", brand),
        (OTHER_CAMPAIGN, OTHER_TRACKER, "0.08", other),
    ):
        ledger.create_campaign(
            OP,
            account=account,
            campaign_id=campaign_id,
            name=unique("Campaign"),
            currency="USD",
            payout_rate=rate,
            trackers=[tracker],
            lock_days=LOCK_DAYS,
        )
    for partner in (PARTNER_A, PARTNER_B, PARTNER_C):
        ledger.create_partner(OP, partner_id=partner, name=unique("Partner"))
    ledger.join(OP, partner_id=PARTNER_A, campaign_id=CAMPAIGN)
    ledger.join(OP, partner_id=PARTNER_B, campaign_id=CAMPAIGN, payout_rate=Decimal("0.10"))
    ledger.join(OP, partner_id=PARTNER_C, campaign_id=CAMPAIGN_B)
    return World(app, brand, other)


# -- conversions files --------------------------------------------------------------------

CONVERSION_HEADER = (
    "CampaignId",
    "ActionTrackerId",
    "EventDate",
    "OrderId",
    "ClickId",
    "MediaPartnerId",
    "CurrencyCode",
    "Amount",
    "ItemPrice",
    "ItemSubtotal",
    "Sku",
    "Quantity",
)


def conversion(order: str, **given: object) -> dict[str, object]:
    """One conversions row: an order of PARTNER_A in CAMPAIGN, yesterday, 100.00 USD."""
    row: dict[str, object] = {
        "CampaignId": CAMPAIGN,
        "ActionTrackerId": TRACKER,
        "EventDate": iso(days_ago(1)),
        "OrderId": order,
        "MediaPartnerId": PARTNER_A,
        "CurrencyCode": "USD",
        "Amount": "100.00",
    }
    row.update(given)
    return row


def conversions_file(rows: Sequence[Mapping[str, object]]) -> bytes:
    return csv_bytes(CONVERSION_HEADER, [[r.get(c) for c in CONVERSION_HEADER] for r in rows])


def test_every_inbound_data_type_is_registered() -> None:
    types = inbound_types()
    assert sorted(types) == ["action_modifications", "clicks", "conversions", "product_catalogs"]
    assert all(name == t.name for name, t in types.items())
    assert [n for n, t in types.items() if t.allow_xlsx] == ["product_catalogs"]
