"""The connection wizard over HTTP, statelessly: each request carries the state of the
previous answer, and the one state machine (`connections/wizard.py`) decides.

Only admins may walk it: it leads nowhere but to creating a connection, which needs the
admin role, and a member should learn that at the first step rather than the last.
"""

from __future__ import annotations

from fastapi import APIRouter

from dropyard.connections import trust, wizard
from dropyard.connections.wizard import WizardContext, WizardState
from dropyard.probing import probe_state, review_pin
from dropyard.web.api.deps import AdminDep, Caller, StatesDep
from dropyard.web.api.schemas import ProbeOut
from dropyard.web.api.wizard_schemas import OptionsOut, ReviewOut, StateIn, SubmitIn, WizardOut
from dropyard.web.api.wizard_state import StateCodec

router = APIRouter(prefix="/wizard", tags=["wizard"])


def _context(who: Caller) -> WizardContext:
    return who.app.connections.wizard_context(who.actor, account=who.account_id)


def _answer(state: WizardState, ctx: WizardContext, who: Caller, states: StateCodec) -> WizardOut:
    return WizardOut(
        state=states.dump(state, account_id=who.account_id),
        options=OptionsOut.of(wizard.options(state, ctx)),
    )


@router.post("/start")
def start(who: AdminDep, states: StatesDep) -> WizardOut:
    """A fresh wizard at its first step (direction and name)."""
    return _answer(wizard.start(), _context(who), who, states)


@router.post("/submit")
def submit(body: SubmitIn, who: AdminDep, states: StatesDep) -> WizardOut:
    """Validate the current step's `data` and move on; 422 names every field at fault
    (keys are relative to `data`, e.g. `details.host`, `new.kind`)."""
    ctx = _context(who)
    state = states.load(body.state, account_id=who.account_id)
    return _answer(wizard.submit(state, body.data, ctx), ctx, who, states)


@router.post("/back")
def back(body: StateIn, who: AdminDep, states: StatesDep) -> WizardOut:
    """One step back, every answer kept."""
    state = wizard.back(states.load(body.state, account_id=who.account_id))
    return _answer(state, _context(who), who, states)


@router.post("/review")
def review(body: StateIn, who: AdminDep, states: StatesDep) -> ReviewOut:
    """Everything chosen and the connection's URI; then POST /connections with the state
    (and `pin`). A pull or deliver connection's partner server is tested live: `probe`
    has each check, the item "Host key" (or "Certificate") what the server presented."""
    state = states.load(body.state, account_id=who.account_id)
    checked = wizard.review(state, _context(who))
    report = probe_state(who.app, who.actor, account=who.account_id, state=state)
    if report is None or state.method is None or state.methodology is None:
        return ReviewOut.of(checked)
    line = trust.fingerprint_line(
        state.method, state.methodology, state.details, report.fingerprint
    )
    return ReviewOut.of(
        checked,
        extra=(line,) if line else (),
        probe=ProbeOut.of(report),
        pin=review_pin(state, report),
    )
