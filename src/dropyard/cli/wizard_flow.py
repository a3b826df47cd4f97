"""Driving the one connection wizard from the command line: flags become step inputs,
refusals name the flags to fix, and on a terminal the steps the flags leave open are asked
as prompts offering only what `wizard.options` offers.

The rules stay in `connections/wizard.py` and `connections/rules.py`; what is here knows
how to ask and how to name a flag, never what is allowed.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import typer
from rich.console import Console

from dropyard.app import Dropyard
from dropyard.cli.credentials import credential_kind
from dropyard.cli.output import (
    cli_actor,
    naming_flags,
    pairs,
    prompt_choice,
    prompt_text,
    prompt_yes,
    read_password,
    read_text_file,
    shown,
    with_flags,
)
from dropyard.connections import rules, trust, wizard
from dropyard.connections.details import FieldSpec
from dropyard.connections.service import Created
from dropyard.errors import Conflict, DropyardError, Invalid
from dropyard.probing import create_pinned, review_pin
from dropyard.remote.base import ProbeReport

FLAGS = {
    "name": "--name",
    "direction": "--direction",
    "data_type": "--data-type",
    "method": "--method",
    "methodology": "--methodology",
    "credential": "--credential or --new-credential-kind",
    "credential_id": "--credential",
    "new": "--new-credential-kind",
    "new.kind": "--new-credential-kind",
    "new.name": "--new-credential-name",
    "new.public_key": "--public-key-file",
    "new.username": "--username",
    "new.password": "--password-stdin",
    "status": "--status",
    "account": "--account",
    "pin": "--accept-host-key",
    "accept_host_key": "--accept-host-key",
}
# Fields of the credential the service creates with the connection. (An Invalid "name"
# from the service is the connection's: the wizard re-checks it there.)
_NEW_FIELDS = {"kind", "public_key", "username", "password"}


@dataclass
class Answers:
    """What the flags answered; None: not given."""

    name: str | None = None
    direction: str | None = None
    data_type: str | None = None
    method: str | None = None
    methodology: str | None = None
    details: dict[str, Any] = field(default_factory=dict)
    credential_id: int | None = None
    new_kind: str | None = None
    new_name: str | None = None
    public_key: str | None = None
    username: str | None = None
    password: str | None = None

    @property
    def credential_given(self) -> bool:
        return self.credential_id is not None or self.new_kind is not None


def step_input(step: wizard.Step, answers: Answers, st: wizard.WizardState) -> dict[str, Any]:
    """The input of one wizard step, made of the flags given."""
    if step == "direction":
        return {"name": answers.name, "direction": answers.direction}
    if step == "type":
        return {"data_type": answers.data_type}
    if step == "method":
        data: dict[str, Any] = {"details": dict(answers.details)}
        if answers.method is not None:
            data["method"] = answers.method
        if answers.methodology is not None:
            data["methodology"] = answers.methodology
        return data
    if answers.credential_id is not None and answers.new_kind is not None:
        raise Invalid("give --credential or --new-credential-kind, not both", field="credential")
    if answers.credential_id is not None:
        return {"credential_id": answers.credential_id}
    if answers.new_kind is None:
        return {}
    methodology = rules.as_methodology(st.methodology)
    target = "hosted" if rules.is_hosted(methodology) else "remote"
    new = {
        "kind": credential_kind(answers.new_kind, target, field="new.kind"),
        "name": answers.new_name or st.name,
        "public_key": answers.public_key,
        "username": answers.username,
        "password": answers.password,
    }
    return {"new": {k: v for k, v in new.items() if v is not None}}


def step_given(step: wizard.Step, answers: Answers) -> bool:
    """Whether the flags answer a step on a terminal. A step left to its preselected
    values (method) is asked there, so the user sees and confirms them."""
    if step == "direction":
        return answers.name is not None and answers.direction is not None
    if step == "type":
        return answers.data_type is not None
    if step == "method":
        return answers.method is not None and answers.methodology is not None
    return answers.credential_given


def all_given(answers: Answers) -> bool:
    """Whether the flags make every choice of the wizard (then nothing is asked)."""
    steps: tuple[wizard.Step, ...] = ("direction", "type", "method")
    return all(step_given(step, answers) for step in steps) and (
        answers.credential_given or _takes_credential(answers) is False
    )


def _takes_credential(answers: Answers) -> bool | None:
    """Whether the chosen combination takes a credential: None while the direction is
    unknown; False for a combination the wizard will refuse anyway (it says why)."""
    try:
        direction = rules.as_direction(answers.direction)
    except Invalid:
        return None
    try:
        method = rules.as_method(answers.method or rules.default_method(direction))
        methodology = rules.as_methodology(
            answers.methodology or rules.default_methodology(direction, method)
        )
        return rules.takes_credential(methodology, method)
    except Invalid:
        return False


def missing_flags(answers: Answers) -> Invalid | None:
    """Without a terminal nothing can be asked: the choices that have no flag."""
    errors: dict[str, str] = {}
    for name, value in (
        ("name", answers.name),
        ("direction", answers.direction),
        ("data_type", answers.data_type),
    ):
        if value is None or not value.strip():
            errors[name] = f"{FLAGS[name]} is required"
    if not answers.credential_given and _takes_credential(answers) is not False:
        errors["credential"] = f"{FLAGS['credential']} is required"
    if not errors:
        return None
    named = "; ".join(FLAGS[name] for name in errors)
    return Invalid(
        f"missing: {named} (stdin is not a terminal, so nothing can be asked)", errors=errors
    )


def run_wizard(
    st: wizard.WizardState,
    ctx: wizard.WizardContext,
    answers: Answers,
    prompter: Prompter | None,
    asked: set[wizard.Step],
) -> wizard.WizardState:
    """Walk the wizard to a confirmed review: steps the flags answer are submitted as
    they are; on a terminal the others (and any the wizard refused) are asked until the
    wizard takes them. Without a terminal the first refusal is the answer."""
    last: dict[wizard.Step, dict[str, Any]] = {}
    while True:
        step = st.step
        if step == "review":
            if prompter is None or prompter.confirm(st, ctx):
                return st
            st = wizard.back(st)
            asked.add(st.step)
            continue
        if step not in asked and (prompter is None or step_given(step, answers)):
            try:
                with naming_flags(FLAGS):
                    st = wizard.submit(st, step_input(step, answers, st), ctx)
                continue
            except Invalid as exc:
                if prompter is None:
                    raise
                prompter.errors(exc)
        assert prompter is not None
        asked.add(step)
        data = prompter.ask(st, ctx, last.get(step, {}))
        try:
            st = wizard.submit(st, data, ctx)
        except Invalid as exc:
            last[step] = data
            prompter.errors(exc)


def accepted_pin(
    st: wizard.WizardState, report: ProbeReport | None, accept: str | None
) -> str | None:
    """Without a terminal, a host key the review saw is trusted only when
    --accept-host-key names it (or a fingerprint detail pins one): the pin to create with."""
    shown = review_pin(st, report)
    if shown is not None and not trust.same(accept, shown):
        what = "host key" if st.method == "sftp" else "certificate"
        given = f"--accept-host-key {accept} is not it. " if accept else ""
        raise Invalid(
            f"the server presents the {what} {shown}. {given}To trust it, add "
            f"--accept-host-key {shown}",
            field="accept_host_key",
        )
    return accept


def create_connection(
    app: Dropyard,
    account: str,
    ctx: wizard.WizardContext,
    st: wizard.WizardState,
    answers: Answers,
    prompter: Prompter | None,
    pin: str | None = None,
) -> Created:
    """Create what a reviewed wizard describes, pinning `pin` (or what the terminal
    user trusted). On a terminal a refusal of the service (a malformed public key, a
    credential name taken) asks the credential step again."""
    while True:
        if prompter is not None:
            pin = prompter.pin
        try:
            return create_pinned(app, cli_actor(), account=account, state=st, pin=pin)
        except (Invalid, Conflict) as exc:
            if exc.field == "pin":  # the key changed since the review, or a bad pin
                raise (exc if isinstance(exc, Conflict) else with_flags(exc, FLAGS)) from None
            problem = _as_wizard_error(exc, st)
            if prompter is None:
                raise problem from None
            prompter.errors(problem)
            st = run_wizard(wizard.back(st), ctx, answers, prompter, {"credentials"})


def _as_wizard_error(exc: Invalid | Conflict, st: wizard.WizardState) -> Invalid | Conflict:
    """Name the flag of a field the service refused; its fields are the new credential's."""
    new = isinstance(st.credential, wizard.NewCredential)
    if isinstance(exc, Conflict):
        if new and exc.field == "name":
            return Conflict(f"{exc.message} ({FLAGS['new.name']})", field="new.name")
        return exc
    errors = {
        (f"new.{key}" if new and key in _NEW_FIELDS else key): text
        for key, text in exc.errors.items()
    }
    return with_flags(Invalid(exc.message, errors=errors), FLAGS)


# -- the wizard on a terminal -----------------------------------------------------------


def show_review(
    console: Console,
    review: wizard.Review,
    st: wizard.WizardState | None = None,
    report: ProbeReport | None = None,
) -> None:
    console.print("[bold]Review[/bold]")
    pairs(console, review.items)
    uri = review.uri + (f"  ({review.uri_note})" if review.uri_note else "")
    pairs(console, [("URI", uri)])
    if st is None or report is None or st.method is None or st.methodology is None:
        return
    line = trust.fingerprint_line(st.method, st.methodology, st.details, report.fingerprint)
    if line is not None:
        pairs(console, [line])
    console.print("Connection test" + ("" if report.ok else " (creating is still possible)"))
    show_verdicts(console, report)


def verdict_line(check: str, ok: bool, detail: str) -> str:
    return f"  {'ok  ' if ok else 'FAIL'}  {check}: {detail}"


def show_verdicts(console: Console, report: ProbeReport) -> None:
    """Each check on its own line, then the names the folder holds."""
    for verdict in report.verdicts:
        console.print(
            verdict_line(verdict.check, verdict.ok, verdict.detail), markup=False, highlight=False
        )
    if report.sample:
        pairs(console, [("sample", ", ".join(report.sample))])


class Prompter:
    """Asks one wizard step on a terminal, offering only what `wizard.options` offers,
    with the preselected (or earlier typed, or flag-given) values as defaults. It knows
    how to ask; what is allowed is the wizard's to say when the answer is submitted."""

    def __init__(
        self,
        console: Console,
        *,
        hints: Mapping[str, Any],
        probe: Callable[[wizard.WizardState], ProbeReport | None] | None = None,
        accept: str | None = None,
    ) -> None:
        self.console = console
        self.hints = hints
        self.probe = probe
        self.accept = accept
        self.pin: str | None = None  # the key the user trusted at the last review

    def errors(self, exc: DropyardError) -> None:
        problems = exc.errors if isinstance(exc, Invalid) and exc.errors else {}
        self.console.print("[bold red]Please fix:[/bold red]")
        pairs(self.console, (problems or {exc.field or "error": exc.message}).items())

    def _choice(self, title: str, choices: Iterable[wizard.Choice], default: Any) -> str:
        offered = [(c.value, c.label + (f" ({c.help})" if c.help else "")) for c in choices]
        values = [value for value, _ in offered]
        return prompt_choice(
            self.console, title, offered, default=default if default in values else None
        )

    def ask(
        self, st: wizard.WizardState, ctx: wizard.WizardContext, previous: Mapping[str, Any]
    ) -> dict[str, Any]:
        opts = wizard.options(st, ctx)
        number = wizard.STEPS.index(st.step) + 1
        self.console.print(f"\n[bold]Step {number} of 5: {wizard.STEP_LABELS[st.step]}[/bold]")

        def default(key: str) -> Any:
            for source in (previous, self.hints, opts.selected):
                if source.get(key) is not None:
                    return source[key]
            return None

        if st.step == "direction":
            name = prompt_text(self.console, "Connection name", default=default("name"))
            direction = self._choice("Direction", opts.choices["direction"], default("direction"))
            return {"name": name, "direction": direction}
        if st.step == "type":
            return {
                "data_type": self._choice(
                    "Data type", opts.choices["data_type"], default("data_type")
                )
            }
        if st.step == "method":
            return self._method(opts, default)
        return self._credentials(st, opts, previous)

    def _method(self, opts: wizard.StepOptions, default: Callable[[str], Any]) -> dict[str, Any]:
        method = self._choice("Method", opts.choices["method"], default("method"))
        offered = opts.methodologies_by_method[method]  # type: ignore[index]
        methodology = self._choice("Methodology", offered, default("methodology"))
        specs = opts.fields_by_combination[(method, methodology)]  # type: ignore[index]
        known = {spec.name for spec in specs}
        values: dict[str, Any] = {}
        for source in (opts.selected.get("details"), self.hints.get("details")):
            values.update({k: v for k, v in (source or {}).items() if k in known})
        values.update(default("details") or {})
        for spec in specs:
            if spec.required:
                values[spec.name] = self._field(spec, values.get(spec.name))
        optional = [spec for spec in specs if not spec.required]
        if optional:
            pairs(
                self.console, ((s.label, _or_none(values.get(s.name, s.default))) for s in optional)
            )
            if prompt_yes(self.console, "Change these settings?", default=False):
                for spec in optional:
                    values[spec.name] = self._field(spec, values.get(spec.name, spec.default))
        return {
            "method": method,
            "methodology": methodology,
            "details": {k: v for k, v in values.items() if k in known},
        }

    def _field(self, spec: FieldSpec, value: Any) -> Any:
        self.console.print(f"  [dim]{spec.help}[/dim]")
        if spec.kind == "bool":
            return prompt_yes(self.console, spec.label, default=bool(value))
        if spec.kind == "choice":
            choices = [(c, c) for c in spec.choices]
            return prompt_choice(self.console, spec.label, choices, default=value)
        text = shown(value) if value not in (None, []) else ("" if not spec.required else None)
        return prompt_text(self.console, spec.label, default=text)

    def _credentials(
        self, st: wizard.WizardState, opts: wizard.StepOptions, previous: Mapping[str, Any]
    ) -> dict[str, Any]:
        if not opts.credential_required:
            self.console.print("This connection takes no credential.")
            return {}
        chosen = previous.get("credential_id") or opts.selected.get("credential_id")
        pick = self._choice(
            "Credential",
            (*opts.choices["credential_id"], wizard.Choice("new", "a new credential")),
            str(chosen) if chosen else "new",
        )
        if pick != "new":
            return {"credential_id": int(pick)}
        before: Mapping[str, Any] = previous.get("new") or opts.selected.get("new") or {}
        kind = self._choice("Kind", opts.choices["kind"], before.get("kind"))
        name_default = before.get("name") or self.hints.get("new_name") or st.name
        new: dict[str, Any] = {
            "kind": kind,
            "name": prompt_text(self.console, "Credential name", default=name_default),
        }
        if kind == "hosted_public_key":
            text = prompt_text(
                self.console, "Public key (paste the line, or the path of the .pub file)"
            )
            path = Path(text).expanduser()
            new["public_key"] = read_text_file(path, field="public_key") if path.is_file() else text
        if kind in ("remote_password", "remote_key_pair"):
            username = before.get("username") or self.hints.get("username")
            new["username"] = prompt_text(
                self.console, "Login on the partner's server", default=username
            )
        if kind == "remote_password":
            new["password"] = read_password(field="new.password", confirm=True)
        return {"new": new}

    def confirm(self, st: wizard.WizardState, ctx: wizard.WizardContext) -> bool:
        """Show the review (with a live test of a partner's server); True to create,
        False to go back a step. Cancel, or a host key not trusted, exits."""
        self.console.print()
        review = wizard.review(st, ctx)
        if self.probe is not None and trust.probed(st.method, st.methodology):
            self.console.print("Testing the partner's server...")
        report = self.probe(st) if self.probe is not None else None
        show_review(self.console, review, st, report)
        answer = prompt_choice(
            self.console,
            "Create this connection?",
            [("yes", "create it"), ("back", "change the credential"), ("no", "cancel")],
            default="yes",
        )
        if answer == "no":
            self.console.print("Cancelled; nothing was created.")
            raise typer.Exit(1)
        if answer == "yes":
            self.pin = self._trusted(st, report)
        return answer == "yes"

    def _trusted(self, st: wizard.WizardState, report: ProbeReport | None) -> str | None:
        """The key shown at review, once the user says to trust it."""
        shown = review_pin(st, report)
        if shown is None:
            return self.accept
        if trust.same(self.accept, shown):
            return shown
        what = "host key" if st.method == "sftp" else "certificate"
        if not prompt_yes(self.console, f"Trust this {what}? {shown}", default=False):
            self.console.print(f"The {what} is not trusted; nothing was created.")
            raise typer.Exit(1)
        return shown


def _or_none(value: Any) -> str:
    return "(none)" if value in (None, []) else shown(value)
