"""Columns and rules as data; one validation for every data type.

A data type module declares its `Schema`: `Column`s (name, required, parser, length,
rules), groups (`one_of`, `exactly_one_of`) and row rules. `Schema.bind` matches the
header the way formats/README.md says (case, surrounding spaces and `_`/` ` ignored) and
fails the file with MISSING_COLUMNS / UNKNOWN_COLUMNS; `BoundSchema.validate` turns a
raw row into a `ValidRow` of typed values, or into every `RowError` the row has.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Literal, TypeVar

from dropyard.datatypes.readers import FileRejected, RawRow, RowError
from dropyard.datatypes.values import BadValue, ParseContext, Parser, Rule, spelling_key

__all__ = [
    "BoundSchema",
    "Column",
    "ParseContext",
    "RowError",
    "RowRule",
    "Schema",
    "ValidRow",
]

_T = TypeVar("_T")
SHOWN = 100

# A check across columns of a row whose columns all parsed. It raises BadValue with the
# whole message (and the column to blame, if one is).
RowRule = Callable[[Mapping[str, object], ParseContext], None]


def shown(value: str) -> str:
    """A value as quoted in messages: cut to 100 characters."""
    return value if len(value) <= SHOWN else value[:SHOWN] + "…"


@dataclass(frozen=True)
class Column:
    """One declared column. `required="group"` marks a column that is required through a
    group of the schema (`one_of`, `exactly_one_of`) rather than on its own. `default` is
    its value when the row leaves it empty or the file has no such column."""

    name: str
    required: bool | Literal["group"]
    parse: Parser[object]
    max_length: int | None = None
    rules: tuple[Rule, ...] = ()
    default: object = None
    aliases: tuple[str, ...] = ()


# An alternative of a `one_of` group: one column, or several that must all be given.
Alternative = str | tuple[str, ...]


def _names(alternative: Alternative) -> tuple[str, ...]:
    return (alternative,) if isinstance(alternative, str) else alternative


def _either(group: Sequence[Alternative]) -> str:
    return " or ".join(" + ".join(_names(a)) for a in group)


@dataclass(frozen=True)
class Schema:
    """A data type's columns and rules. `one_of`: each group needs one of its
    alternatives given (`("ClickId", "MediaPartnerId")`, or `("ActionId", ("OrderId",
    "ActionTrackerId"))`). `exactly_one_of`: each group needs exactly one column given;
    more is AMBIGUOUS_AMOUNT. `allow_extra`: columns the schema does not know are
    ignored instead of failing the file."""

    columns: Sequence[Column]
    one_of: Sequence[Sequence[Alternative]] = ()
    exactly_one_of: Sequence[Sequence[str]] = ()
    allow_extra: bool = False
    row_rules: Sequence[RowRule] = ()
    _by_key: dict[str, Column] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "columns", tuple(self.columns))
        object.__setattr__(self, "one_of", tuple(tuple(g) for g in self.one_of))
        object.__setattr__(self, "exactly_one_of", tuple(tuple(g) for g in self.exactly_one_of))
        object.__setattr__(self, "row_rules", tuple(self.row_rules))
        by_key: dict[str, Column] = {}
        for column in self.columns:
            for spelling in (column.name, *column.aliases):
                key = spelling_key(spelling)
                if key in by_key:
                    raise ValueError(f"column spelling '{spelling}' is declared twice")
                by_key[key] = column
        object.__setattr__(self, "_by_key", by_key)
        declared = {c.name for c in self.columns}
        grouped = {n for g in self.one_of for a in g for n in _names(a)}
        grouped |= {n for g in self.exactly_one_of for n in g}
        if grouped - declared:
            raise ValueError(f"groups name undeclared columns: {sorted(grouped - declared)}")
        loose = {c.name for c in self.columns if c.required == "group"} - grouped
        if loose:
            raise ValueError(f"columns required by a group are in none: {sorted(loose)}")

    def bind(self, header: Sequence[str], *, context: ParseContext | None = None) -> BoundSchema:
        """Match a file's header. Blank header cells (a trailing delimiter) are ignored.
        Parsing uses `context` (time zone, now, date window); without one, dates without
        an offset are read in UTC and `now` is the time of binding."""
        positions: list[tuple[int, Column]] = []
        found: dict[str, str] = {}
        unknown: list[str] = []
        for index, spelling in enumerate(header):
            if not spelling.strip():
                continue
            column = self._by_key.get(spelling_key(spelling))
            if column is None:
                unknown.append(spelling)
            elif column.name in found:
                raise FileRejected(
                    "UNKNOWN_COLUMNS",
                    f"column {column.name} appears twice, as '{shown(found[column.name])}' "
                    f"and '{shown(spelling)}'",
                )
            else:
                found[column.name] = spelling
                positions.append((index, column))
        missing = [c.name for c in self.columns if c.required is True and c.name not in found]
        for group in self.one_of:
            if not any(all(n in found for n in _names(a)) for a in group):
                missing.append(_either(group))
        for names in self.exactly_one_of:
            if not any(n in found for n in names):
                missing.append(_either(names))
        listed = ", ".join(f"'{shown(u)}'" for u in unknown)
        if missing:
            hint = f" (the file has unknown columns {listed})" if unknown else ""
            raise FileRejected("MISSING_COLUMNS", f"missing columns: {', '.join(missing)}{hint}")
        if unknown and not self.allow_extra:
            raise FileRejected(
                "UNKNOWN_COLUMNS",
                f"unknown columns: {listed}; this connection does not allow extra columns",
            )
        if context is None:
            context = ParseContext(tz=UTC, now=datetime.now(UTC))
        return BoundSchema(self, list(header), positions, context)


@dataclass(frozen=True)
class ValidRow:
    """A row whose every column parsed: `values` by canonical column name (every declared
    column, its default when not given), with the row's `line`, `fields` and `raw` text
    as sent for the error file."""

    line: int
    values: Mapping[str, object]
    raw: str
    fields: list[str]
    part: str | None = None

    def get(self, name: str, kind: type[_T]) -> _T | None:
        """The value of a declared column, checked to be a `kind` (or None)."""
        value = self.values[name]
        if value is None:
            return None
        if not isinstance(value, kind):
            raise TypeError(f"{name} holds {type(value).__name__}, not {kind.__name__}")
        return value

    def require(self, name: str, kind: type[_T]) -> _T:
        value = self.get(name, kind)
        if value is None:
            raise KeyError(f"{name} has no value")
        return value


class BoundSchema:
    """A schema matched to one file's header, validating its rows."""

    def __init__(
        self,
        schema: Schema,
        header: list[str],
        positions: list[tuple[int, Column]],
        context: ParseContext,
    ) -> None:
        self.schema = schema
        self.header = header
        self.context = context
        self._positions = positions

    @property
    def columns(self) -> list[str]:
        """Canonical names of the schema's columns that the file has, in file order."""
        return [column.name for _, column in self._positions]

    def texts(self, row: RawRow) -> dict[str, str]:
        """The row's fields as sent, by canonical column name (for rejected rows)."""
        fields = row.fields or []
        return {c.name: fields[i].strip() for i, c in self._positions if i < len(fields)}

    def validate(self, row: RawRow) -> ValidRow | list[RowError]:
        """Parse every field; collect all of the row's errors, or give its values."""
        if row.error is not None:
            return [row.error]
        if row.fields is None or len(row.fields) != len(self.header):
            count = "no" if row.fields is None else len(row.fields)
            message = f"line {row.line} has {count} fields, the header has {len(self.header)}"
            return [RowError(row.line, "MALFORMED_ROW", None, message)]
        errors: list[RowError] = []
        values: dict[str, object] = {c.name: c.default for c in self.schema.columns}
        given: dict[str, str] = {}
        for index, column in self._positions:
            text = row.fields[index].strip()
            if not text:
                continue
            given[column.name] = text
            try:
                values[column.name] = self._parse(column, text)
            except BadValue as exc:
                message = f"{column.name} '{shown(text)}' {exc.reason}"
                errors.append(RowError(row.line, exc.code, column.name, message))
        errors += self._missing(row.line, given)
        if not errors:
            for rule in self.schema.row_rules:
                try:
                    rule(values, self.context)
                except BadValue as exc:
                    errors.append(RowError(row.line, exc.code, exc.column, exc.reason))
        if errors:
            return errors
        return ValidRow(row.line, values, row.raw, row.fields, row.part)

    def _parse(self, column: Column, text: str) -> object:
        if column.max_length is not None and len(text) > column.max_length:
            raise BadValue("VALUE_TOO_LONG", f"is longer than {column.max_length} characters")
        value = column.parse(text, self.context)
        for rule in column.rules:
            rule(value, self.context)
        return value

    def _missing(self, line: int, given: Mapping[str, str]) -> list[RowError]:
        errors = [
            RowError(line, "MISSING_REQUIRED", c.name, f"{c.name} is missing")
            for c in self.schema.columns
            if c.required is True and c.name not in given
        ]
        for group in self.schema.one_of:
            if not any(all(n in given for n in _names(a)) for a in group):
                message = f"{_either(group)} is required"
                errors.append(RowError(line, "MISSING_REQUIRED", None, message))
        for names in self.schema.exactly_one_of:
            present = [n for n in names if n in given]
            if not present:
                message = f"one of {', '.join(names)} is required"
                errors.append(RowError(line, "MISSING_REQUIRED", None, message))
            elif len(present) > 1:
                both = " and ".join(f"{n} '{shown(given[n])}'" for n in present)
                message = f"{both} are given; send only one of {', '.join(names)}"
                errors.append(RowError(line, "AMBIGUOUS_AMOUNT", None, message))
        return errors
