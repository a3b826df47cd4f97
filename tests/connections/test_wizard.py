"""The wizard state machine: every path from start to complete, back, defaults, answers
cleared by earlier changes, names, credentials, serialization and review."""

from __future__ import annotations

import json
from dataclasses import replace
from typing import Any

import pytest

from dropyard.connections import wizard
from dropyard.connections.wizard import (
    ExistingCredential,
    NewCredential,
    NoCredential,
    WizardContext,
    WizardState,
)
from dropyard.errors import Invalid

# Every allowed (direction, methodology, method) with the data types of its direction,
# written out from DESIGN.md §1.
INBOUND_TYPES = ("conversions", "action_modifications", "clicks", "product_catalogs")
OUTBOUND_TYPES = ("reports", "performance_bonus_detail", "conversions")
ALLOWED = [
    *[("inbound", mt, m) for mt in ("push", "pull") for m in ("sftp", "ftp", "email")],
    ("outbound", "hosted", "sftp"),
    ("outbound", "hosted", "ftp"),
    *[("outbound", "deliver", m) for m in ("sftp", "ftp", "email")],
]
PATHS = [
    (d, t, mt, m)
    for (d, mt, m) in ALLOWED
    for t in (INBOUND_TYPES if d == "inbound" else OUTBOUND_TYPES)
]
KINDS = {
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
DETAILS = {
    ("push", "sftp"): {},
    ("push", "ftp"): {},
    ("push", "email"): {"file_pattern": "*.csv"},
    ("pull", "sftp"): {"host": "sftp.partner.example", "folder": "/out", "file_pattern": "*"},
    ("pull", "ftp"): {"host": "ftp.partner.example", "folder": "/out", "file_pattern": "*"},
    ("pull", "email"): {"host": "imap.partner.example", "file_pattern": "*.csv"},
    ("hosted", "sftp"): {},
    ("hosted", "ftp"): {},
    ("deliver", "sftp"): {"host": "sftp.partner.example", "folder": "/in"},
    ("deliver", "ftp"): {"host": "ftp.partner.example", "folder": "/in"},
    ("deliver", "email"): {"recipients": "ops@partner.example"},
}
NEW = {
    "hosted_password": {"kind": "hosted_password", "name": "drop login"},
    "hosted_public_key": {
        "kind": "hosted_public_key",
        "name": "laptop",
        "public_key": "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIExample partner",
    },
    "remote_password": {
        "kind": "remote_password",
        "name": "their server",
        "username": "dropyard",
        "password": "s3cret-Pa55",
    },
    "remote_key_pair": {"kind": "remote_key_pair", "name": "our key", "username": "dropyard"},
}
CREDENTIALS = {
    1: "hosted_password",
    2: "hosted_public_key",
    3: "remote_password",
    4: "remote_key_pair",
}


def make_ctx(**changes: Any) -> WizardContext:
    ctx = WizardContext(
        credentials=CREDENTIALS,
        taken_names=frozenset({"Existing Feed"}),
        public_host="drop.example.com",
        sftp_port=2222,
        ftp_port=2121,
        mail_domain="in.dropyard.example",
        logins={1: "acme-pw", 2: "acme-key", 3: "partner-user", 4: "partner-key"},
    )
    return replace(ctx, **changes)


CTX = make_ctx()


def walk(
    direction: str,
    data_type: str,
    methodology: str,
    method: str,
    *,
    credential: dict[str, Any] | None = None,
    name: str = "Daily Orders",
    details: dict[str, Any] | None = None,
) -> WizardState:
    state = wizard.start()
    state = wizard.submit(state, {"name": name, "direction": direction}, CTX)
    state = wizard.submit(state, {"data_type": data_type}, CTX)
    given = DETAILS[(methodology, method)] if details is None else details
    state = wizard.submit(
        state, {"method": method, "methodology": methodology, "details": given}, CTX
    )
    if credential is None:
        kinds = KINDS[(methodology, method)]
        credential = {"new": NEW[kinds[0]]} if kinds else {}
    return wizard.submit(state, credential, CTX)


def errors_of(state: WizardState, data: dict[str, Any], ctx: WizardContext = CTX) -> dict[str, str]:
    with pytest.raises(Invalid) as caught:
        wizard.submit(state, data, ctx)
    return caught.value.errors


# -- every path -------------------------------------------------------------------------


@pytest.mark.parametrize(("direction", "data_type", "methodology", "method"), PATHS)
def test_every_allowed_path_reaches_complete(
    direction: str, data_type: str, methodology: str, method: str
) -> None:
    state = wizard.start()
    assert state.step == "direction"
    state = wizard.submit(state, {"name": " Daily Orders ", "direction": direction}, CTX)
    assert state.step == "type"
    state = wizard.submit(state, {"data_type": data_type}, CTX)
    assert state.step == "method"
    offered = wizard.options(state, CTX)
    combo = (method, methodology)
    assert combo in offered.fields_by_combination
    state = wizard.submit(
        state,
        {"method": method, "methodology": methodology, "details": DETAILS[(methodology, method)]},
        CTX,
    )
    assert state.step == "credentials"
    kinds = KINDS[(methodology, method)]
    offered = wizard.options(state, CTX)
    assert tuple(c.value for c in offered.choices["kind"]) == kinds
    assert offered.credential_required == bool(kinds)
    assert offered.usable_credentials == tuple(i for i, k in CREDENTIALS.items() if k in kinds)
    credential: dict[str, Any] = {"new": NEW[kinds[0]]} if kinds else {}
    state = wizard.submit(state, credential, CTX)
    assert state.step == "review"
    shown = wizard.review(state, CTX)
    assert shown.uri
    assert ("Name", "Daily Orders") in shown.items
    spec = wizard.complete(state)
    assert spec.name == "Daily Orders"
    assert spec.folder == "daily_orders"
    assert (spec.direction, spec.data_type, spec.method, spec.methodology) == (
        direction,
        data_type,
        method,
        methodology,
    )
    assert spec.details == state.details
    if kinds:
        assert isinstance(spec.credential, NewCredential)
        assert spec.credential.kind == kinds[0]
    else:
        assert spec.credential == NoCredential()


@pytest.mark.parametrize(("methodology", "method"), list(KINDS))
def test_every_kind_new_and_existing(methodology: str, method: str) -> None:
    direction = "inbound" if methodology in ("push", "pull") else "outbound"
    data_type = "conversions"
    for kind in KINDS[(methodology, method)]:
        state = walk(direction, data_type, methodology, method, credential={"new": NEW[kind]})
        assert isinstance(state.credential, NewCredential)
        assert state.credential.kind == kind
        ident = next(i for i, k in CREDENTIALS.items() if k == kind)
        state = walk(direction, data_type, methodology, method, credential={"credential_id": ident})
        assert state.credential == ExistingCredential(id=ident)
        assert wizard.complete(state).credential == ExistingCredential(id=ident)


# -- back and forth ---------------------------------------------------------------------


def test_back_at_each_step_keeps_everything() -> None:
    done = walk("inbound", "clicks", "pull", "sftp")
    state = done
    for expected in ("credentials", "method", "type", "direction"):
        state = wizard.back(state)
        assert state.step == expected
        assert replace(state, step="review") == done
    assert wizard.back(state) == state  # nothing before the first step
    # the forms come back filled in
    options = wizard.options(state, CTX)
    assert options.selected == {"name": "Daily Orders", "direction": "inbound"}
    assert not options.can_go_back
    state = wizard.submit(state, {"name": "Daily Orders", "direction": "inbound"}, CTX)
    assert wizard.options(state, CTX).selected == {"data_type": "clicks"}
    state = wizard.submit(state, {"data_type": "clicks"}, CTX)
    options = wizard.options(state, CTX)
    assert options.selected["method"] == "sftp"
    assert options.selected["methodology"] == "pull"
    assert options.selected["details"]["host"] == "sftp.partner.example"
    assert [f.name for f in options.fields][:3] == ["host", "port", "folder"]
    # still everything kept, though the walk is redone step by step
    assert state.credential == done.credential
    assert state.details == done.details


def test_method_defaults_are_preselected() -> None:
    state = wizard.submit(wizard.start(), {"name": "In", "direction": "inbound"}, CTX)
    state = wizard.submit(state, {"data_type": "clicks"}, CTX)
    options = wizard.options(state, CTX)
    assert options.selected["method"] == "sftp"
    assert options.selected["methodology"] == "push"
    assert [c.value for c in options.choices["method"]] == ["sftp", "ftp", "email"]
    assert [c.value for c in options.choices["methodology"]] == ["push", "pull"]
    assert [c.label for c in options.choices["methodology"]] == [
        "Push to Dropyard",
        "Pull from 3rd party",
    ]
    assert [f.name for f in options.fields] == ["file_pattern", "allow_extra_columns"]
    # left out, the preselection applies
    moved = wizard.submit(state, {}, CTX)
    assert (moved.method, moved.methodology) == ("sftp", "push")

    state = wizard.submit(wizard.start(), {"name": "Out", "direction": "outbound"}, CTX)
    state = wizard.submit(state, {"data_type": "reports"}, CTX)
    options = wizard.options(state, CTX)
    assert (options.selected["method"], options.selected["methodology"]) == ("sftp", "hosted")
    assert [c.value for c in options.methodologies_by_method["email"]] == ["deliver"]
    assert ("email", "hosted") not in options.fields_by_combination
    # email for outbound switches the preselected methodology to deliver
    moved = wizard.submit(
        state, {"method": "email", "details": {"recipients": "a@partner.example"}}, CTX
    )
    assert (moved.method, moved.methodology) == ("email", "deliver")


def test_changing_direction_keeps_a_valid_type_and_clears_an_invalid_one() -> None:
    done = walk("inbound", "conversions", "push", "sftp")
    first = wizard.back(wizard.back(wizard.back(wizard.back(done))))
    state = wizard.submit(first, {"name": "Daily Orders", "direction": "outbound"}, CTX)
    assert state.data_type == "conversions"  # offered both ways
    assert (state.method, state.methodology, state.details, state.credential) == (
        None,
        None,
        {},
        None,
    )
    done = walk("inbound", "clicks", "push", "sftp")
    first = wizard.back(wizard.back(wizard.back(wizard.back(done))))
    state = wizard.submit(first, {"name": "Daily Orders", "direction": "outbound"}, CTX)
    assert state.data_type is None
    assert wizard.options(state, CTX).selected == {"data_type": None}
    # the same direction again keeps everything
    state = wizard.submit(first, {"name": "Daily Orders", "direction": "inbound"}, CTX)
    assert (state.data_type, state.method, state.credential) == (
        "clicks",
        "sftp",
        done.credential,
    )


def test_changing_the_type_refits_the_details() -> None:
    details = {"report": "action_listing", "format": "tsv", "retention_days": 7}
    done = walk("outbound", "reports", "hosted", "sftp", details=details)
    assert done.details["report"] == "action_listing"
    at_type = wizard.back(wizard.back(wizard.back(done)))
    state = wizard.submit(at_type, {"data_type": "conversions"}, CTX)
    assert "report" not in state.details
    assert (state.details["format"], state.details["retention_days"]) == ("tsv", 7)
    assert state.credential == done.credential


def test_changing_the_method_drops_a_credential_that_no_longer_fits() -> None:
    done = walk("inbound", "clicks", "push", "sftp", credential={"credential_id": 2})
    at_method = wizard.back(wizard.back(done))
    state = wizard.submit(at_method, {"method": "ftp", "methodology": "push"}, CTX)
    assert state.credential is None  # a public key cannot log in over FTP
    state = wizard.submit(at_method, {"method": "sftp", "methodology": "push"}, CTX)
    assert state.credential == ExistingCredential(id=2)
    state = wizard.submit(at_method, {"method": "email", "details": {"file_pattern": "*"}}, CTX)
    assert state.credential is None


def test_all_errors_of_a_step_at_once() -> None:
    state = wizard.submit(wizard.start(), {"name": "X", "direction": "inbound"}, CTX)
    state = wizard.submit(state, {"data_type": "clicks"}, CTX)
    errors = errors_of(
        state,
        {"method": "sftp", "methodology": "pull", "details": {"folder": "rel", "port": 0}},
    )
    assert errors == {
        "details.host": "host is required",
        "details.port": "port 0 is not between 1 and 65535",
        "details.folder": "folder 'rel' must be an absolute path",
        "details.file_pattern": "file_pattern is required",
    }
    assert set(errors_of(state, {"method": "pigeon"})) == {"method"}
    assert errors_of(state, {"method": "sftp", "methodology": "hosted"}) == {
        "methodology": "'hosted' is not offered for inbound connections; choose push or pull"
    }
    assert set(errors_of(state, {"method": "sftp", "colour": "red"})) == {"colour"}
    assert errors_of(state, {"method": "sftp", "details": "x"}) == {
        "details": "details must be an object, not str"
    }


def test_type_step_refuses_a_type_of_the_other_direction() -> None:
    state = wizard.submit(wizard.start(), {"name": "X", "direction": "outbound"}, CTX)
    assert set(errors_of(state, {"data_type": "clicks"})) == {"data_type"}
    assert errors_of(state, {}) == {"data_type": "data_type is required"}
    options = wizard.options(state, CTX)
    assert [c.value for c in options.choices["data_type"]] == list(OUTBOUND_TYPES)


# -- names ------------------------------------------------------------------------------


def test_duplicate_names_are_refused_case_insensitively() -> None:
    errors = errors_of(wizard.start(), {"name": "existing FEED", "direction": "inbound"})
    assert errors == {"name": "a connection named 'existing FEED' already exists"}
    errors = errors_of(wizard.start(), {"name": "existing_feed", "direction": "inbound"})
    assert "would use the folder 'existing_feed'" in errors["name"]


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("", "name is required"),
        ("   ", "name is required"),
        (None, "name is required"),
        ("a/b", "must not contain '/' or '\\'"),
        ("a\\b", "must not contain '/' or '\\'"),
        ("tab\there", "must not contain control characters"),
        (".hidden", "must not start with '.'"),
        ("x" * 101, "is longer than 100 characters"),
        (42, "name 42 is not text"),
    ],
)
def test_bad_names(name: Any, message: str) -> None:
    errors = errors_of(wizard.start(), {"name": name, "direction": "inbound"})
    assert set(errors) == {"name"}
    assert message in errors["name"]


def test_name_is_trimmed_and_folder_derived() -> None:
    state = wizard.submit(
        wizard.start(), {"name": "  " + "x" * 100 + " ", "direction": "inbound"}, CTX
    )
    assert state.name == "x" * 100
    assert wizard.folder_name("Daily Orders EU") == "daily_orders_eu"
    assert wizard.address_slug("daily_orders_ü") == "daily-orders"


def test_direction_step_errors() -> None:
    assert errors_of(wizard.start(), {"name": "ok"}) == {"direction": "direction is required"}
    assert set(errors_of(wizard.start(), {"name": "ok", "direction": "up"})) == {"direction"}
    assert set(errors_of(wizard.start(), {"name": "ok", "direction": "inbound", "x": 1})) == {"x"}


# -- credentials ------------------------------------------------------------------------


def at_credentials(methodology: str = "push", method: str = "sftp") -> WizardState:
    done = walk(
        "inbound" if methodology in ("push", "pull") else "outbound",
        "conversions",
        methodology,
        method,
    )
    return wizard.back(done)


def test_credential_of_a_wrong_kind() -> None:
    state = at_credentials("push", "sftp")
    errors = errors_of(state, {"credential_id": 3})
    assert errors == {
        "credential_id": "credential 3 is a remote_password credential; an sftp push "
        "connection takes hosted_password or hosted_public_key"
    }
    errors = errors_of(state, {"new": NEW["remote_key_pair"]})
    assert "a remote_key_pair credential cannot serve an sftp push" in errors["new.kind"]
    errors = errors_of(at_credentials("push", "ftp"), {"credential_id": 2})
    assert set(errors) == {"credential_id"}


def test_credential_of_another_account_is_not_found() -> None:
    state = at_credentials("push", "sftp")
    assert errors_of(state, {"credential_id": 99}) == {
        "credential_id": "credential 99 was not found"
    }
    assert set(errors_of(state, {"credential_id": "abc"})) == {"credential_id"}
    assert wizard.submit(state, {"credential_id": "1"}, CTX).credential == ExistingCredential(1)


def test_credential_choice_rules() -> None:
    state = at_credentials("push", "sftp")
    assert errors_of(state, {}) == {
        "credential": "choose an existing credential or create a new one"
    }
    both = {"credential_id": 1, "new": NEW["hosted_password"]}
    assert set(errors_of(state, both)) == {"credential"}
    none_taken = at_credentials("push", "email")
    assert errors_of(none_taken, {"credential_id": 1}) == {
        "credential": "an email push connection takes no credential"
    }
    assert wizard.submit(none_taken, {}, CTX).credential == NoCredential()
    options = wizard.options(none_taken, CTX)
    assert not options.credential_required
    assert options.usable_credentials == ()


def _new(kind: str | None, **more: Any) -> dict[str, Any]:
    return {"name": "x", **({} if kind is None else {"kind": kind}), **more}


@pytest.mark.parametrize(
    ("methodology", "method", "new", "fields"),
    [
        ("push", "sftp", _new("hosted_password", password="p"), {"new.password"}),
        ("push", "sftp", _new("hosted_password", username="u"), {"new.username"}),
        ("push", "sftp", _new("hosted_public_key"), {"new.public_key"}),
        ("push", "sftp", _new("hosted_public_key", public_key="  "), {"new.public_key"}),
        ("pull", "sftp", _new("remote_password", username="u"), {"new.password"}),
        ("pull", "sftp", _new("remote_password", password="p"), {"new.username"}),
        ("pull", "sftp", _new("remote_key_pair"), {"new.username"}),
        ("pull", "sftp", _new("remote_key_pair", username="u", public_key="k"), {"new.public_key"}),
        ("pull", "sftp", _new("remote_key_pair", username="u", password="p"), {"new.password"}),
        ("pull", "sftp", _new("remote_key_pair", username="u", name=""), {"new.name"}),
        ("pull", "sftp", _new("remote_key_pair", username="u", name="n" * 101), {"new.name"}),
        ("pull", "sftp", _new("warp"), {"new.kind"}),
        ("pull", "sftp", _new(None), {"new.kind"}),
        ("pull", "sftp", _new("remote_key_pair", username="u", colour=1), {"new.colour"}),
        ("pull", "sftp", _new("remote_key_pair", username=5), {"new.username"}),
    ],
)
def test_bad_new_credentials(
    methodology: str, method: str, new: dict[str, Any], fields: set[str]
) -> None:
    assert set(errors_of(at_credentials(methodology, method), {"new": new})) == fields


def test_new_credential_public_key_is_not_parsed_here() -> None:
    new = {"kind": "hosted_public_key", "name": "k", "public_key": "not really a key"}
    state = wizard.submit(at_credentials("push", "sftp"), {"new": new}, CTX)
    assert isinstance(state.credential, NewCredential)
    assert state.credential.public_key == "not really a key"


def test_credential_options_list_only_fitting_credentials() -> None:
    state = at_credentials("pull", "ftp")
    options = wizard.options(replace(state, credential=None), CTX)
    assert options.usable_credentials == (3,)
    assert [c.value for c in options.choices["credential_id"]] == ["3"]
    assert [c.value for c in options.choices["kind"]] == ["remote_password"]
    assert options.selected == {"new": {"kind": "remote_password"}}
    # what was entered comes back, but never the password
    assert wizard.options(state, CTX).selected == {
        "new": {
            "kind": "remote_password",
            "name": "their server",
            "public_key": None,
            "username": "dropyard",
        }
    }
    back_from_existing = wizard.back(
        walk("inbound", "clicks", "pull", "ftp", credential={"credential_id": 3})
    )
    assert wizard.options(back_from_existing, CTX).selected == {"credential_id": 3}


# -- serialization ----------------------------------------------------------------------


def test_to_dict_from_dict_round_trip_at_every_step() -> None:
    done = walk("inbound", "clicks", "pull", "sftp", credential={"new": NEW["remote_password"]})
    state = done
    for _ in range(5):
        text = json.dumps(state.to_dict())
        assert WizardState.from_dict(json.loads(text)) == state
        state = wizard.back(state)
    assert WizardState.from_dict(wizard.start().to_dict()) == wizard.start()
    # the remote password survives the trip: the service needs it to store it
    again = WizardState.from_dict(json.loads(json.dumps(done.to_dict())))
    assert isinstance(again.credential, NewCredential)
    assert again.credential.password == "s3cret-Pa55"
    for choice in ({"credential_id": 1}, {"new": NEW["hosted_public_key"]}):
        state = walk("outbound", "reports", "hosted", "sftp", credential=choice)
        assert WizardState.from_dict(json.loads(json.dumps(state.to_dict()))) == state
    state = walk("outbound", "reports", "deliver", "email")
    assert WizardState.from_dict(state.to_dict()) == state


def _good() -> dict[str, Any]:
    return walk("inbound", "clicks", "pull", "sftp").to_dict()


@pytest.mark.parametrize(
    "garbage",
    [
        None,
        "state",
        [],
        {},
        {**_good(), "version": 2},
        {**_good(), "step": "finish"},
        {**_good(), "extra": 1},
        {**_good(), "name": 5},
        {**_good(), "name": " padded "},
        {**_good(), "name": "a/b"},
        {**_good(), "direction": "sideways"},
        {**_good(), "direction": "outbound"},
        {**_good(), "data_type": "reports"},
        {**_good(), "method": "email"},
        {**_good(), "methodology": "hosted"},
        {**_good(), "method": None},
        {**_good(), "details": "host=x"},
        {**_good(), "details": {"host": "x.example"}},
        {**_good(), "details": {**_good()["details"], "folder": "relative"}},
        {**_good(), "credential": None},
        {**_good(), "credential": {"type": "magic"}},
        {**_good(), "credential": {"type": "existing", "id": "1"}},
        {**_good(), "credential": {"type": "existing", "id": True}},
        {**_good(), "credential": {"type": "none"}},
        {**_good(), "credential": {"type": "new", "kind": "hosted_password", "name": "x"}},
        {**_good(), "credential": {"type": "new", "kind": "remote_password", "name": "x"}},
        {**_good(), "credential": {"type": "new", "kind": 3, "name": "x"}},
        {"version": 1, "step": "review"},
        {"version": 1, "step": "type", "name": "ok"},
        {"version": 1, "step": "direction", "data_type": "clicks"},
    ],
)
def test_from_dict_refuses_garbage(garbage: Any) -> None:
    with pytest.raises(Invalid) as caught:
        WizardState.from_dict(garbage)
    assert set(caught.value.errors) == {"state"}


def test_repr_masks_the_password() -> None:
    state = walk("inbound", "clicks", "pull", "sftp", credential={"new": NEW["remote_password"]})
    assert "s3cret-Pa55" not in repr(state)
    assert "s3cret-Pa55" not in str(state)
    assert "s3cret-Pa55" not in repr(state.credential)
    assert "password='***'" in repr(state.credential)
    spec = wizard.complete(state)
    assert "s3cret-Pa55" not in repr(spec)
    assert "s3cret-Pa55" not in repr(wizard.review(state, CTX))
    assert "password=None" in repr(NewCredential(kind="hosted_password", name="x"))


# -- review and completion --------------------------------------------------------------


def test_review_and_complete_only_at_review() -> None:
    done = walk("inbound", "clicks", "push", "sftp")
    for state in (wizard.start(), wizard.back(done)):
        with pytest.raises(Invalid) as caught:
            wizard.review(state, CTX)
        assert set(caught.value.errors) == {"step"}
        with pytest.raises(Invalid):
            wizard.complete(state)
    with pytest.raises(Invalid) as caught:
        wizard.submit(done, {}, CTX)
    assert set(caught.value.errors) == {"step"}


def test_review_lists_every_choice() -> None:
    state = walk(
        "outbound",
        "reports",
        "hosted",
        "sftp",
        credential={"credential_id": 1},
        details={"schedule": "weekly", "send_empty": False},
    )
    shown = dict(wizard.review(state, CTX).items)
    assert shown["Name"] == "Daily Orders"
    assert shown["Folder"] == "daily_orders"
    assert shown["Direction"] == "Receive data from us"
    assert shown["Data type"] == "Reports"
    assert shown["Method"] == "SFTP"
    assert shown["Methodology"] == "Pull from Dropyard"
    assert shown["Schedule"] == "weekly (0 2 * * 1)"
    assert shown["Send empty files"] == "no"
    assert shown["Report"] == "performance_by_day"
    assert shown["Credential"] == "#1 (hosted_password), login acme-pw"
    labels = [label for label, _ in wizard.review(state, CTX).items]
    assert labels.index("Name") < labels.index("Schedule") < labels.index("Credential")


def test_review_rechecks_the_account() -> None:
    state = walk("inbound", "clicks", "push", "sftp", credential={"credential_id": 1})
    with pytest.raises(Invalid) as caught:
        wizard.review(state, make_ctx(taken_names=frozenset({"daily orders"})))
    assert set(caught.value.errors) == {"name"}
    with pytest.raises(Invalid) as caught:
        wizard.review(state, make_ctx(credentials={2: "hosted_public_key"}))
    assert caught.value.errors == {"credential_id": "credential 1 was not found"}


@pytest.mark.parametrize(
    ("path", "details", "credential", "uri", "note"),
    [
        (("inbound", "push", "sftp"), {}, {"credential_id": 1},
         "sftp://acme-pw@drop.example.com:2222/daily_orders", None),
        (("inbound", "push", "sftp"), {}, {"new": NEW["hosted_public_key"]},
         "sftp://<generated>@drop.example.com:2222/daily_orders",
         "the login is generated on create"),
        (("inbound", "push", "ftp"), {}, {"credential_id": 1},
         "ftps://acme-pw@drop.example.com:2121/daily_orders", None),
        (("inbound", "push", "ftp"), {"plain_ftp": True}, {"credential_id": 1},
         "ftp://acme-pw@drop.example.com:2121/daily_orders", None),
        (("outbound", "hosted", "sftp"), {}, {"credential_id": 2},
         "sftp://acme-key@drop.example.com:2222/daily_orders", None),
        (("inbound", "push", "email"), {"file_pattern": "*"}, {},
         "mailto:daily-orders-<generated>@in.dropyard.example",
         "the address is generated on create"),
        (("inbound", "pull", "sftp"),
         {"host": "sftp.partner.example", "folder": "/out box", "file_pattern": "*"},
         {"new": NEW["remote_password"]},
         "sftp://dropyard@sftp.partner.example:22/out%20box", None),
        (("outbound", "deliver", "sftp"),
         {"host": "2001:db8::7", "folder": "/in", "port": 2200},
         {"credential_id": 4}, "sftp://partner-key@[2001:db8::7]:2200/in", None),
        (("inbound", "pull", "ftp"),
         {"host": "ftp.partner.example", "folder": "/out", "file_pattern": "*"},
         {"credential_id": 3}, "ftps://partner-user@ftp.partner.example:21/out", None),
        (("outbound", "deliver", "ftp"),
         {"host": "ftp.partner.example", "folder": "/in", "plain_ftp": True},
         {"credential_id": 3}, "ftp://partner-user@ftp.partner.example:21/in", None),
        (("inbound", "pull", "email"), {"host": "imap.partner.example", "file_pattern": "*"},
         {"credential_id": 3}, "imaps://imap.partner.example:993/INBOX", None),
        (("inbound", "pull", "email"),
         {"host": "imap.partner.example", "file_pattern": "*", "plain_imap": True,
          "folder": "Reports"},
         {"credential_id": 3}, "imap://imap.partner.example:143/Reports", None),
        (("outbound", "deliver", "email"),
         {"recipients": "a@partner.example, b@partner.example"}, {},
         "mailto:a@partner.example,b@partner.example", None),
    ],
)  # fmt: skip
def test_review_uri(
    path: tuple[str, str, str],
    details: dict[str, Any],
    credential: dict[str, Any],
    uri: str,
    note: str | None,
) -> None:
    direction, methodology, method = path
    state = walk(
        direction, "conversions", methodology, method, credential=credential, details=details
    )
    shown = wizard.review(state, CTX)
    assert (shown.uri, shown.uri_note) == (uri, note)


def test_connection_uri_of_a_created_connection() -> None:
    common: dict[str, Any] = {
        "public_host": "drop.example.com",
        "sftp_port": 22,
        "ftp_port": 21,
    }
    assert (
        wizard.connection_uri(
            method="email",
            methodology="push",
            folder="orders",
            details={},
            login=None,
            email_address="orders-1a2b3c4d@in.example",
            **common,
        )
        == "mailto:orders-1a2b3c4d@in.example"
    )
    assert (
        wizard.connection_uri(
            method="sftp", methodology="hosted", folder="orders", details={}, login=None, **common
        )
        == "sftp://<login>@drop.example.com:22/orders"
    )
