"""The live part of the wizard's review, shared by the CLI, the API and the console.

A remote connection's review connects to the partner's server with the wizard's details
and login (`RemoteService.probe`) and shows what it found; creating pins only what the
review showed, after checking that the server still presents it. The wizard stays pure:
these calls happen around it, at the edges, through the services of the `Dropyard`.
"""

from __future__ import annotations

from dropyard.accounts.actors import Actor
from dropyard.app import Dropyard
from dropyard.connections import trust, wizard
from dropyard.connections.service import Created
from dropyard.remote.base import ProbeReport, RemoteError, RemoteRefused, Stage, Verdict
from dropyard.remote.service import RemoteLogin

_CHECK_OF: dict[Stage, str] = {
    "reach": "reachable",
    "trust": "trusted",
    "login": "login",
    "folder": "folder readable",
    "transfer": "folder readable",
}


def login_of(choice: wizard.CredentialChoice | None) -> RemoteLogin | None:
    """The login a review tests: an existing credential, or the one about to be made
    (a key pair made on create cannot log in yet; the test says so)."""
    if isinstance(choice, wizard.ExistingCredential):
        return RemoteLogin(credential_id=choice.id)
    if isinstance(choice, wizard.NewCredential):
        return RemoteLogin(username=choice.username, password=choice.password)
    return None


def failed(exc: RemoteError | RemoteRefused) -> ProbeReport:
    """A probe that ended in an error, as a report with the one check that failed."""
    return ProbeReport(
        verdicts=(Verdict(check=_CHECK_OF[exc.stage], ok=False, detail=exc.message),),
        fingerprint=getattr(exc, "presented", None) or None,
    )


def probe_state(
    app: Dropyard, actor: Actor, *, account: str | int, state: wizard.WizardState
) -> ProbeReport | None:
    """Test the partner's server a reviewed wizard describes; None when it has none."""
    method, methodology = state.method, state.methodology
    if method is None or methodology is None or not trust.probed(method, methodology):
        return None
    try:
        return app.remote.probe(
            actor,
            account=account,
            method=method,
            methodology=methodology,
            details=state.details,
            credential=login_of(state.credential),
        )
    except (RemoteError, RemoteRefused) as exc:
        return failed(exc)


def review_pin(state: wizard.WizardState, report: ProbeReport | None) -> str | None:
    """The fingerprint a review hands back to create (see `trust.pin_to_send`)."""
    if report is None or state.method is None or state.methodology is None:
        return None
    return trust.pin_to_send(state.method, state.methodology, state.details, report.fingerprint)


def create_pinned(
    app: Dropyard,
    actor: Actor,
    *,
    account: str | int,
    state: wizard.WizardState,
    pin: str | None,
) -> Created:
    """Create a reviewed wizard's connection, pinning `pin` (what the review showed);
    Conflict, and nothing written, when the server now presents another key."""
    pin = pin.strip() if pin and pin.strip() else None
    if pin is not None and state.method is not None:
        report = probe_state(app, actor, account=account, state=state)
        trust.check_unchanged(state.method, pin, report.fingerprint if report else None)
    return app.connections.create(actor, account=account, state=state, pin=pin)
