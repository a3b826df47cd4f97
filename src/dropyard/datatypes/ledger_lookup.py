"""What inbound importers look up in the ledger, loaded once per file or in batches.

`AccountLedger` holds the uploading account's campaigns, their action trackers and the
partners joined to them (with their rate overrides), read once when a file's import
starts. Clicks and existing orders are looked up per chunk of rows, never per row:
`clicks_of`, `orders_of`. `attribute` credits a conversion to a partner; `payout_of` is
the one payout rounding. `insert_new` writes a chunk and says which rows a unique key
already held. `RowBatch` is the chunking every importer shares.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from decimal import ROUND_HALF_EVEN, Decimal
from typing import NamedTuple, TypeVar, cast

from sqlalchemy import Table, func, select
from sqlalchemy.dialects.postgresql import Insert as PgInsert
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import Insert as SqliteInsert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from dropyard.datatypes.base import ImportContext, ImportOutcome
from dropyard.datatypes.schema import ValidRow, shown
from dropyard.datatypes.values import RowCode
from dropyard.db.base import Base
from dropyard.ledger.models import Action, ActionTracker, Campaign, CampaignPartner, Click

_T = TypeVar("_T")

# Rows validated, looked up and written together. Big enough that per-chunk queries cost
# little per row, small enough that a chunk's rows and lookups stay a few megabytes.
CHUNK_ROWS = 5_000
# Values per `IN (...)` list: below SQLite's historical limit of 999 bound parameters.
IN_BATCH = 900
CENT = Decimal("0.01")


def table_of(model: type[Base]) -> Table:
    """A model's Core table. Bulk writes go through Core: the ORM's bulk insert splits a
    chunk into one statement per run of rows whose empty columns match."""
    return cast(Table, model.__table__)


def reserve_ids(session: Session, model: type[Base], count: int) -> list[int]:
    """`count` fresh primary keys for `model`'s table, ascending: from its sequence on
    PostgreSQL; after the largest on SQLite, whose writers hold the database's write
    lock for their whole transaction (`db.engine.transaction`)."""
    table = table_of(model)
    if session.get_bind().dialect.name == "postgresql":
        found = session.scalars(
            select(func.nextval(func.pg_get_serial_sequence(table.name, "id"))).select_from(
                func.generate_series(1, count)
            )
        )
        return sorted(int(i) for i in found)
    largest = session.scalar(select(func.max(table.c.id))) or 0
    return list(range(largest + 1, largest + count + 1))


def insert_new(
    session: Session, model: type[Base], rows: Sequence[dict[str, object]], *, unique: Sequence[str]
) -> list[int]:
    """Insert the rows whose `unique` key is free, skipping the others; give each an `id`
    first. Returns the positions of the rows skipped.

    Keys are checked by inserting rather than by querying first, so the unique index is
    always what decides: a lookup of rows this very transaction wrote may be planned
    without statistics on them (PostgreSQL then scans), and a concurrent file writing
    the same key is waited for instead of raced. No RETURNING: psycopg re-parses each
    page of a many-rows RETURNING insert, which costs more than the whole import."""
    if not rows:
        return []
    table = table_of(model)
    ids = reserve_ids(session, model, len(rows))
    for row, new_id in zip(rows, ids, strict=True):
        row["id"] = new_id
    statement: PgInsert | SqliteInsert
    dialect = session.get_bind().dialect.name
    if dialect == "postgresql":
        statement = pg_insert(table)
    elif dialect == "sqlite":
        statement = sqlite_insert(table)
    else:
        raise NotImplementedError(f"no insert-if-new for the {dialect} database")
    key = [table.c[name] for name in unique]
    done = session.execute(statement.on_conflict_do_nothing(index_elements=key), list(rows))
    if done.rowcount == len(rows):  # type: ignore[attr-defined]
        return []
    # psycopg gives no row count for executemany: look for our ids.
    present = set(session.scalars(select(table.c.id).where(table.c.id.between(ids[0], ids[-1]))))
    return [i for i, new_id in enumerate(ids) if new_id not in present]


def payout_of(amount: Decimal, rate: Decimal) -> Decimal:
    """The partner's payout for an amount: rate × amount, rounded half-even to cents."""
    return (amount * rate).quantize(CENT, rounding=ROUND_HALF_EVEN)


def in_batches(values: Iterable[_T], size: int = IN_BATCH) -> Iterator[list[_T]]:
    batch: list[_T] = []
    for value in values:
        batch.append(value)
        if len(batch) >= size:
            yield batch
            batch = []
    if batch:
        yield batch


@dataclass(frozen=True, slots=True)
class CampaignTerms:
    """A campaign as importers need it: currency, rate, lock period, trackers, and the
    partners joined to it with their rate override (None: the campaign's rate)."""

    id: int
    currency: str
    payout_rate: Decimal
    lock_days: int
    trackers: frozenset[int]
    partners: dict[int, Decimal | None]

    def rate_for(self, partner_id: int) -> Decimal:
        override = self.partners.get(partner_id)
        return self.payout_rate if override is None else override


class AccountLedger:
    """One account's campaigns, trackers and campaign partners, read once per file."""

    def __init__(self, session: Session, account_id: int) -> None:
        self.account_id = account_id
        campaigns = session.execute(
            select(Campaign.id, Campaign.currency, Campaign.payout_rate, Campaign.lock_days).where(
                Campaign.account_id == account_id
            )
        ).all()
        trackers: dict[int, set[int]] = {c.id: set() for c in campaigns}
        partners: dict[int, dict[int, Decimal | None]] = {c.id: {} for c in campaigns}
        for campaign_id, tracker_id in session.execute(
            select(ActionTracker.campaign_id, ActionTracker.id)
            .join(Campaign, Campaign.id == ActionTracker.campaign_id)
            .where(Campaign.account_id == account_id)
        ):
            trackers[campaign_id].add(tracker_id)
        for campaign_id, partner_id, rate in session.execute(
            select(
                CampaignPartner.campaign_id, CampaignPartner.partner_id, CampaignPartner.payout_rate
            )
            .join(Campaign, Campaign.id == CampaignPartner.campaign_id)
            .where(Campaign.account_id == account_id)
        ):
            partners[campaign_id][partner_id] = None if rate is None else Decimal(rate)
        self._campaigns = {
            c.id: CampaignTerms(
                id=c.id,
                currency=c.currency,
                payout_rate=Decimal(c.payout_rate),
                lock_days=c.lock_days,
                trackers=frozenset(trackers[c.id]),
                partners=partners[c.id],
            )
            for c in campaigns
        }
        self._tracker_campaign = {t: c for c, ts in trackers.items() for t in ts}

    def campaign(self, campaign_id: int) -> CampaignTerms | None:
        return self._campaigns.get(campaign_id)

    def campaign_of_tracker(self, tracker_id: int) -> CampaignTerms | None:
        campaign_id = self._tracker_campaign.get(tracker_id)
        return None if campaign_id is None else self._campaigns[campaign_id]


@dataclass(frozen=True, slots=True)
class ClickRef:
    campaign_id: int
    partner_id: int
    file_id: int | None


def clicks_of(session: Session, account_id: int, click_ids: Iterable[str]) -> dict[str, ClickRef]:
    """The account's clicks among `click_ids`, by click id."""
    found: dict[str, ClickRef] = {}
    for batch in in_batches(set(click_ids)):
        for click_id, campaign_id, partner_id, file_id in session.execute(
            select(Click.click_id, Click.campaign_id, Click.partner_id, Click.file_id).where(
                Click.account_id == account_id, Click.click_id.in_(batch)
            )
        ):
            found[click_id] = ClickRef(campaign_id, partner_id, file_id)
    return found


class Refusal(NamedTuple):
    """Why a row cannot be taken: a row-level code, the column to blame, a message."""

    code: RowCode
    column: str | None
    message: str


def attribute(
    click_id: str | None,
    partner_id: int | None,
    campaign: CampaignTerms,
    clicks: dict[str, ClickRef],
) -> int | Refusal:
    """The partner a conversion is credited to: its click's (`clicks`: the account's
    clicks by id), or the partner it names — who must be in the campaign."""
    if click_id is not None:
        click = clicks.get(click_id)
        if click is None:
            message = f"ClickId '{shown(click_id)}' is not a click of this account"
            return Refusal("UNKNOWN_CLICK", "ClickId", message)
        if click.campaign_id != campaign.id:
            message = (
                f"ClickId '{shown(click_id)}' is a click of campaign {click.campaign_id}, "
                f"not of campaign {campaign.id}"
            )
            return Refusal("UNKNOWN_CLICK", "ClickId", message)
        if partner_id is not None and partner_id != click.partner_id:
            message = (
                f"MediaPartnerId '{partner_id}' is not the partner of ClickId "
                f"'{shown(click_id)}' ({click.partner_id})"
            )
            return Refusal("UNKNOWN_PARTNER", "MediaPartnerId", message)
        partner_id = click.partner_id
        if partner_id not in campaign.partners:
            message = (
                f"ClickId '{shown(click_id)}' is from partner {partner_id}, who is not in "
                f"campaign {campaign.id}"
            )
            return Refusal("UNKNOWN_PARTNER", "ClickId", message)
        return partner_id
    if partner_id is None or partner_id not in campaign.partners:
        message = f"MediaPartnerId '{partner_id}' is not a partner in campaign {campaign.id}"
        return Refusal("UNKNOWN_PARTNER", "MediaPartnerId", message)
    return partner_id


OrderKey = tuple[int, int, str]  # campaign id, action tracker id, order id


@dataclass(frozen=True, slots=True)
class OrderRef:
    action_id: int
    file_id: int | None


def orders_of(session: Session, keys: Iterable[OrderKey]) -> dict[OrderKey, OrderRef]:
    """The actions that exist for these (campaign, tracker, order id) keys. One query per
    tracker and batch of order ids, on the unique index of actions."""
    by_tracker: dict[tuple[int, int], set[str]] = {}
    for campaign_id, tracker_id, order_id in keys:
        by_tracker.setdefault((campaign_id, tracker_id), set()).add(order_id)
    found: dict[OrderKey, OrderRef] = {}
    for (campaign_id, tracker_id), order_ids in by_tracker.items():
        for batch in in_batches(order_ids):
            for action_id, order_id, file_id in session.execute(
                select(Action.id, Action.order_id, Action.file_id).where(
                    Action.campaign_id == campaign_id,
                    Action.tracker_id == tracker_id,
                    Action.order_id.in_(batch),
                )
            ):
                found[(campaign_id, tracker_id, order_id)] = OrderRef(action_id, file_id)
    return found


class RowBatch:
    """Valid rows gathered until a chunk is full. `take` hands the chunk over."""

    def __init__(self, size: int = CHUNK_ROWS) -> None:
        self.size = size
        self.rows: list[ValidRow] = []

    def add(self, row: ValidRow) -> bool:
        """Add a row; True when the chunk is full."""
        self.rows.append(row)
        return len(self.rows) >= self.size

    def take(self) -> Sequence[ValidRow]:
        rows, self.rows = self.rows, []
        return rows


class ChunkedImporter:
    """An importer that checks and writes its rows a chunk at a time, rows standing alone.
    Subclasses name their count in `note` and implement `_import_chunk`."""

    note = "rows"

    def __init__(
        self, session: Session, ctx: ImportContext, *, chunk_rows: int | None = None
    ) -> None:
        self._session = session
        self._ctx = ctx
        self._ledger = AccountLedger(session, ctx.account_id)
        self._batch = RowBatch() if chunk_rows is None else RowBatch(chunk_rows)
        self.count = 0

    def add(self, row: ValidRow) -> None:
        if self._batch.add(row):
            self._flush()

    def rejected(self, line: int, texts: Mapping[str, str], code: RowCode) -> None:
        return None  # rows stand alone: a refused row changes nothing else

    def finish(self, *, total_rows: int, rejected_rows: int) -> ImportOutcome:
        self._flush()
        return ImportOutcome(notes={self.note: self.count})

    def _flush(self) -> None:
        rows = self._batch.take()
        if rows:
            self._import_chunk(rows)

    def _import_chunk(self, rows: Sequence[ValidRow]) -> None:
        raise NotImplementedError
