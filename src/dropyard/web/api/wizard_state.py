"""The wizard state as it travels to an API client and back.

The state is `WizardState.to_dict()`, readable by the client, except for the one secret
it may hold: the partner's password of a new `remote_password` credential. That travels
sealed under the installation's master key, bound to the account, so no answer before
the creating one shows it and another account's client cannot open it. The rest needs no
seal: every step re-validates the whole state, and creating re-checks it against the
account.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping
from typing import Any

from dropyard.connections.wizard import WizardState
from dropyard.credentials.secrets import SecretBox, SecretError
from dropyard.errors import Invalid

SEALED_PREFIX = "sealed:"


class StateCodec:
    """Turns wizard states into API documents and back, sealing the password."""

    def __init__(self, box: SecretBox) -> None:
        self._box = box

    @staticmethod
    def _context(account_id: int) -> str:
        return f"api-wizard-state:{account_id}"

    def dump(self, state: WizardState, *, account_id: int) -> dict[str, Any]:
        data = state.to_dict()
        credential = data.get("credential")
        if isinstance(credential, dict) and credential.get("password") is not None:
            sealed = self._box.seal(
                str(credential["password"]).encode(), context=self._context(account_id)
            )
            token = base64.urlsafe_b64encode(sealed).decode("ascii")
            data["credential"] = {**credential, "password": SEALED_PREFIX + token}
        return data

    def load(self, raw: Mapping[str, Any], *, account_id: int) -> WizardState:
        data = dict(raw)
        credential = data.get("credential")
        if isinstance(credential, Mapping) and credential.get("password") is not None:
            data["credential"] = {
                **credential,
                "password": self._open(credential["password"], account_id),
            }
        return WizardState.from_dict(data)

    def _open(self, value: object, account_id: int) -> str:
        refused = Invalid(
            "the wizard state's password must be the sealed value an earlier answer gave; "
            "enter the password at the credentials step",
            field="state",
        )
        if not isinstance(value, str) or not value.startswith(SEALED_PREFIX):
            raise refused
        try:
            sealed = base64.urlsafe_b64decode(value.removeprefix(SEALED_PREFIX).encode("ascii"))
            return self._box.open(sealed, context=self._context(account_id)).decode()
        except (binascii.Error, UnicodeError, SecretError):
            raise refused from None
