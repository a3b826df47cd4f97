"""The `clicks` data type (formats/clicks.md): clicks partners sent to the brand's site,
kept to attribute later conversions. Each row is one click; rows are checked and written
a chunk at a time: one bulk insert that skips click ids the account already has (see
`ledger_lookup.insert_new`), which are then rejected as DUPLICATE_CLICK."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from datetime import datetime, timedelta
from typing import cast

from sqlalchemy.orm import Session

from dropyard.datatypes import values as v
from dropyard.datatypes.base import ImportContext
from dropyard.datatypes.ledger_lookup import (
    ChunkedImporter,
    clicks_of,
    insert_new,
)
from dropyard.datatypes.schema import Column, ParseContext, RowError, Schema, ValidRow, shown
from dropyard.ledger.models import Click

# Clocks differ: a click stamped a little ahead of ours is not "in the future" (the same
# allowance as conversions' EventDate).
CLOCK_SKEW = timedelta(minutes=5)


def _not_in_future(value: object, ctx: ParseContext) -> None:
    # Not `values.date_window`: the pipeline's context carries the account's conversion
    # window, which does not apply to clicks.
    if isinstance(value, datetime) and value > ctx.now + CLOCK_SKEW:
        minutes = int(CLOCK_SKEW.total_seconds() // 60)
        raise v.BadValue("FUTURE_DATE", f"is more than {minutes} minutes in the future")


COLUMNS = (
    Column("ClickId", True, v.text(), max_length=128),
    Column("CampaignId", True, v.integer(min_value=1)),
    Column("MediaPartnerId", True, v.integer(min_value=1)),
    Column("EventDate", True, v.date_time(), rules=(_not_in_future,)),
    Column("LandingPageUrl", False, v.url(2048)),
    Column("ReferringUrl", False, v.url(2048)),
    Column("SubId1", False, v.text(), max_length=255),
    Column("SubId2", False, v.text(), max_length=255),
    Column("SubId3", False, v.text(), max_length=255),
    Column("DeviceType", False, v.enum(["DESKTOP", "MOBILE", "TABLET", "OTHER"])),
    Column("CountryCode", False, v.country()),
)
SCHEMA = Schema(columns=COLUMNS)
SCHEMA_WITH_EXTRA = replace(SCHEMA, allow_extra=True)


class Clicks:
    """The data type the pipeline looks up for `clicks` connections."""

    name = "clicks"
    allow_xlsx = False

    def schema(self, *, allow_extra: bool) -> Schema:
        return SCHEMA_WITH_EXTRA if allow_extra else SCHEMA

    def importer(self, session: Session, ctx: ImportContext) -> ClicksImporter:
        return ClicksImporter(session, ctx)


class ClicksImporter(ChunkedImporter):
    """One file's clicks, checked and inserted a chunk at a time."""

    note = "clicks"

    def _import_chunk(self, rows: Sequence[ValidRow]) -> None:
        seen: dict[str, int] = {}
        accepted: list[ValidRow] = []
        for row in rows:
            error = self._check(row, seen)
            if error is not None:
                self._ctx.reject(row, error)
                continue
            seen[cast(str, row.values["ClickId"])] = row.line
            accepted.append(row)
        values = [self._values(row) for row in accepted]
        skipped = insert_new(self._session, Click, values, unique=("account_id", "click_id"))
        self.count += len(values) - len(skipped)
        if skipped:
            self._duplicates([accepted[i] for i in skipped])

    def _check(self, row: ValidRow, seen: dict[str, int]) -> RowError | None:
        values = row.values
        click_id = cast(str, values["ClickId"])
        campaign_id = cast(int, values["CampaignId"])
        partner_id = cast(int, values["MediaPartnerId"])
        campaign = self._ledger.campaign(campaign_id)
        if campaign is None:
            message = f"CampaignId '{campaign_id}' is not a campaign of this account"
            return RowError(row.line, "UNKNOWN_CAMPAIGN", "CampaignId", message)
        if partner_id not in campaign.partners:
            message = f"MediaPartnerId '{partner_id}' is not a partner in campaign {campaign_id}"
            return RowError(row.line, "UNKNOWN_PARTNER", "MediaPartnerId", message)
        if click_id in seen:
            line = seen[click_id]
            message = f"ClickId '{shown(click_id)}' is already on line {line} of this file"
            return RowError(row.line, "DUPLICATE_CLICK", "ClickId", message)
        return None

    def _duplicates(self, rows: Sequence[ValidRow]) -> None:
        """Rows whose click id the account had when they were written."""
        ids = [cast(str, r.values["ClickId"]) for r in rows]
        known = clicks_of(self._session, self._ctx.account_id, ids)
        for row, click_id in zip(rows, ids, strict=True):
            found = known.get(click_id)
            mine = found is not None and found.file_id == self._ctx.file_id
            where = "earlier in this file" if mine else "before"
            message = f"ClickId '{shown(click_id)}' was already received {where}"
            self._ctx.reject(row, RowError(row.line, "DUPLICATE_CLICK", "ClickId", message))

    def _values(self, row: ValidRow) -> dict[str, object]:
        values = row.values
        return {
            "account_id": self._ctx.account_id,
            "click_id": values["ClickId"],
            "campaign_id": values["CampaignId"],
            "partner_id": values["MediaPartnerId"],
            "event_date": values["EventDate"],
            "landing_page_url": values["LandingPageUrl"],
            "referring_url": values["ReferringUrl"],
            "sub_id1": values["SubId1"],
            "sub_id2": values["SubId2"],
            "sub_id3": values["SubId3"],
            "device_type": values["DeviceType"],
            "country_code": values["CountryCode"],
            "file_id": self._ctx.file_id,
        }
