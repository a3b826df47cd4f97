"""The rules table: every direction × methodology × method × data type, accepted or
refused as DESIGN.md §1 says, checked against an expectation written out here."""

from __future__ import annotations

import itertools

import pytest

from dropyard.connections import rules
from dropyard.errors import Invalid

# DESIGN.md §1, written independently of rules.py.
INBOUND_TYPES = {"conversions", "action_modifications", "clicks", "product_catalogs"}
OUTBOUND_TYPES = {"reports", "performance_bonus_detail", "conversions"}
TYPES = {"inbound": INBOUND_TYPES, "outbound": OUTBOUND_TYPES}
OFFERED = {
    ("inbound", "push"): {"sftp", "ftp", "email"},
    ("inbound", "pull"): {"sftp", "ftp", "email"},
    ("outbound", "hosted"): {"sftp", "ftp"},
    ("outbound", "deliver"): {"sftp", "ftp", "email"},
}
CREDENTIALS = {
    ("push", "sftp"): ("hosted_password", "hosted_public_key"),
    ("push", "ftp"): ("hosted_password",),
    ("push", "email"): (),
    ("hosted", "sftp"): ("hosted_password", "hosted_public_key"),
    ("hosted", "ftp"): ("hosted_password",),
    ("pull", "sftp"): ("remote_password", "remote_key_pair"),
    ("pull", "ftp"): ("remote_password",),
    ("pull", "email"): ("remote_password",),
    ("deliver", "sftp"): ("remote_password", "remote_key_pair"),
    ("deliver", "ftp"): ("remote_password",),
    ("deliver", "email"): (),
}
ALL_TYPES = sorted(INBOUND_TYPES | OUTBOUND_TYPES)
CROSS = list(
    itertools.product(
        ("inbound", "outbound"),
        ("push", "pull", "hosted", "deliver"),
        ("sftp", "ftp", "email"),
        ALL_TYPES,
    )
)


def _faults(direction: str, methodology: str, method: str, data_type: str) -> set[str]:
    faults = set()
    if data_type not in TYPES[direction]:
        faults.add("data_type")
    if method not in OFFERED.get((direction, methodology), set()):
        faults.add("methodology")
    return faults


def test_the_cross_product_is_complete() -> None:
    assert len(CROSS) == 2 * 4 * 3 * 6
    accepted = [c for c in CROSS if not _faults(*c)]
    # inbound: 2 methodologies x 3 methods x 4 types; outbound: (2 + 3) methods x 3 types
    assert len(accepted) == 24 + 15


@pytest.mark.parametrize(("direction", "methodology", "method", "data_type"), CROSS)
def test_every_combination_is_accepted_or_refused_as_the_table_says(
    direction: str, methodology: str, method: str, data_type: str
) -> None:
    faults = _faults(direction, methodology, method, data_type)
    if not faults:
        rules.check_combination(direction, data_type, method, methodology)
        known = rules.as_direction(direction)
        assert methodology in rules.methodologies_for(known, rules.as_method(method))
        assert data_type in rules.data_types_for(known)
        return
    with pytest.raises(Invalid) as caught:
        rules.check_combination(direction, data_type, method, methodology)
    assert set(caught.value.errors) == faults
    for message in caught.value.errors.values():
        assert "choose" in message


def test_refusals_name_the_value_and_the_way_out() -> None:
    with pytest.raises(Invalid) as caught:
        rules.check_combination("outbound", "reports", "sftp", "pull")
    assert caught.value.errors == {
        "methodology": "'pull' is not offered for outbound connections; choose hosted or deliver"
    }
    with pytest.raises(Invalid) as caught:
        rules.check_combination("outbound", "reports", "email", "hosted")
    assert caught.value.errors == {
        "methodology": "email cannot be hosted (nobody pulls an email); choose deliver"
    }
    with pytest.raises(Invalid) as caught:
        rules.check_combination("inbound", "reports", "sftp", "push")
    assert caught.value.errors["data_type"].startswith(
        "data type 'reports' is not offered for inbound connections"
    )


def test_unknown_values_are_refused_by_field() -> None:
    with pytest.raises(Invalid) as caught:
        rules.check_combination("sideways", "clicks", "sftp", "push")
    assert caught.value.errors == {
        "direction": "direction 'sideways' is not one of inbound, outbound"
    }
    with pytest.raises(Invalid) as caught:
        rules.check_combination("inbound", "clicks", "pigeon", "push")
    assert set(caught.value.errors) == {"method"}
    with pytest.raises(Invalid) as caught:
        rules.check_combination("inbound", "clicks", "sftp", "teleport")
    assert set(caught.value.errors) == {"methodology"}


def test_directions_types_and_methods() -> None:
    assert rules.directions() == ("inbound", "outbound")
    assert set(rules.data_types_for("inbound")) == INBOUND_TYPES
    assert set(rules.data_types_for("outbound")) == OUTBOUND_TYPES
    assert rules.methods_for("inbound") == ("sftp", "ftp", "email")
    assert rules.methods_for("outbound") == ("sftp", "ftp", "email")
    for (direction, methodology), methods in OFFERED.items():
        for method in ("sftp", "ftp", "email"):
            offered = rules.methodologies_for(
                rules.as_direction(direction), rules.as_method(method)
            )
            assert (methodology in offered) == (method in methods)
    assert rules.methodologies_for("outbound", "email") == ("deliver",)


def test_rows_carry_labels_and_servers() -> None:
    expected = {
        ("inbound", "push"): ("Push to Dropyard", "Give data to us", "dropyard"),
        ("inbound", "pull"): ("Pull from 3rd party", "Give data to us", "partner"),
        ("outbound", "hosted"): ("Pull from Dropyard", "Receive data from us", "dropyard"),
        ("outbound", "deliver"): ("Dropyard pushes to you", "Receive data from us", "partner"),
    }
    assert len(rules.ROWS) == len(expected)
    for row in rules.ROWS:
        assert (row.label, row.direction_label, row.server) == expected[
            (row.direction, row.methodology)
        ]
        assert set(row.methods) == OFFERED[(row.direction, row.methodology)]
        assert set(row.data_types) == TYPES[row.direction]
    assert rules.is_hosted("push")
    assert rules.is_hosted("hosted")
    assert not rules.is_hosted("pull")
    assert not rules.is_hosted("deliver")
    with pytest.raises(Invalid):
        rules.row("outbound", "push")


def test_defaults() -> None:
    assert rules.default_method("inbound") == "sftp"
    assert rules.default_method("outbound") == "sftp"
    assert rules.default_methodology("inbound", "sftp") == "push"
    assert rules.default_methodology("inbound", "email") == "push"
    assert rules.default_methodology("outbound", "sftp") == "hosted"
    assert rules.default_methodology("outbound", "ftp") == "hosted"
    # email cannot be hosted: choosing it switches the preselection to deliver
    assert rules.default_methodology("outbound", "email") == "deliver"


@pytest.mark.parametrize(
    ("methodology", "method"),
    list(itertools.product(("push", "pull", "hosted", "deliver"), ("sftp", "ftp", "email"))),
)
def test_credential_kinds(methodology: str, method: str) -> None:
    known = (rules.as_methodology(methodology), rules.as_method(method))
    if (methodology, method) not in CREDENTIALS:
        with pytest.raises(Invalid):
            rules.credential_kinds_for(*known)
        return
    kinds = rules.credential_kinds_for(*known)
    assert kinds == CREDENTIALS[(methodology, method)]
    assert rules.takes_credential(*known) == bool(kinds)


def test_as_helpers_narrow_or_refuse() -> None:
    assert rules.as_direction("inbound") == "inbound"
    assert rules.as_method("ftp") == "ftp"
    assert rules.as_methodology("deliver") == "deliver"
    assert rules.as_data_type("clicks") == "clicks"
    for parse, field in (
        (rules.as_direction, "direction"),
        (rules.as_method, "method"),
        (rules.as_methodology, "methodology"),
        (rules.as_data_type, "data_type"),
    ):
        with pytest.raises(Invalid) as caught:
            parse(3)
        assert set(caught.value.errors) == {field}
