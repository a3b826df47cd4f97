"""Request and response documents of the REST API.

Responses are built from the services' views and never carry a secret, except the
`*Created`/`Provisioned*` documents of the one call that makes one. Requests forbid
unknown fields, so an `account` (or any typo) in a body is refused rather than ignored.
Wizard documents live in `wizard_schemas.py`.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, PlainSerializer, SecretStr, computed_field

from dropyard.accounts.models import Role
from dropyard.connections import trust
from dropyard.connections.rules import DataType, Direction, Method, Methodology
from dropyard.credentials.models import CredentialKind
from dropyard.credentials.service import Provisioned
from dropyard.remote.base import ProbeReport

# A rate as plain digits, the same whichever database stored it ("0.05", not "0.050000").
Rate = Annotated[
    Decimal, PlainSerializer(lambda value: format(value.normalize(), "f"), return_type=str)
]


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid")


class _Out(BaseModel):
    model_config = ConfigDict(from_attributes=True)


class ErrorOut(BaseModel):
    """Every error answer. `errors` maps the fields at fault to what is wrong with them."""

    error: str = Field(description="invalid, not_found, forbidden, unauthenticated, ...")
    message: str
    errors: dict[str, str] = Field(default_factory=dict)


# -- accounts, users, tokens ------------------------------------------------------------


class AccountOut(_Out):
    id: int
    name: str
    kind: str
    timezone: str
    conversion_window_days: int
    created_at: datetime


class UserOut(_Out):
    id: int
    email: str
    role: str
    created_at: datetime
    disabled_at: datetime | None


class UserCreate(_In):
    email: str
    role: Role = "member"


class UserCreated(BaseModel):
    user: UserOut
    password: str = Field(description="The generated password: shown this once")


class TokenCreate(_In):
    name: str
    role: Role = Field(description="What the token may do; reads need viewer, changes admin")


class TokenCreated(_Out):
    id: int
    name: str
    role: str
    prefix: str
    created_at: datetime
    token: str = Field(description="The bearer value: shown this once")


# -- credentials ------------------------------------------------------------------------


class CredentialOut(_Out):
    """A credential as it may be shown at any time: never a secret."""

    id: int
    name: str
    kind: str
    login: str | None = Field(description="Hosted kinds: the generated login on Dropyard")
    username: str | None = Field(description="Remote kinds: the login on the partner's server")
    fingerprints: list[str]
    public_key: str | None = Field(description="remote_key_pair: the public half to install")
    created_at: datetime
    last_used_at: datetime | None
    revoked_at: datetime | None
    active: bool


class CredentialCreate(_In):
    kind: CredentialKind
    name: str
    public_key: str | None = Field(None, description="hosted_public_key: the partner's key")
    username: str | None = Field(None, description="Remote kinds: the login on their server")
    password: SecretStr | None = Field(None, description="remote_password: their password")


class CredentialRename(_In):
    name: str


class CredentialRotate(_In):
    public_key: str | None = Field(None, description="hosted_public_key: the new key")
    password: SecretStr | None = Field(None, description="remote_password: the new password")
    overlap_hours: int | None = Field(
        None, ge=0, le=24 * 30, description="How long the old secret keeps working"
    )


class ProvisionedOut(BaseModel):
    """The answer of the call that made a secret: the one time it is shown."""

    credential: CredentialOut
    username: str | None = Field(description="The login to use (generated for hosted kinds)")
    password: str | None = Field(description="A generated password: shown this once")
    public_key: str | None = Field(description="remote_key_pair: install this public key")

    @classmethod
    def of(cls, provisioned: Provisioned) -> ProvisionedOut:
        view = provisioned.credential
        return cls(
            credential=CredentialOut.model_validate(view),
            username=view.login or view.username,
            password=provisioned.password,
            public_key=view.public_key,
        )


# -- connections ------------------------------------------------------------------------


class ConnectionOut(_Out):
    id: int
    name: str
    folder: str
    direction: str
    data_type: str
    method: str
    methodology: str
    credential_id: int | None
    details: dict[str, Any]
    email_address: str | None
    status: str
    status_reason: str | None
    created_at: datetime
    last_active_at: datetime | None
    uri: str
    remote_error: str | None = Field(
        None, description="Pull/deliver: the last transfer's error, until it is cleared"
    )
    remote_error_at: datetime | None = None
    presented_fingerprint: str | None = Field(
        None,
        description="A host key or certificate the server presented instead of the pinned "
        "one: POST .../approve with it once the partner confirms the change",
    )

    @computed_field(  # type: ignore[prop-decorator]
        description="Why the partner's server is not trusted (not pinned yet, or a changed "
        "key), and the command that fixes it; null when it is"
    )
    @property
    def trust(self) -> str | None:
        return trust.notice(self)


class VerdictOut(_Out):
    check: str = Field(
        description="reachable, trusted, login, folder readable, folder writable, pattern matches"
    )
    ok: bool
    detail: str


class ProbeOut(BaseModel):
    """A live test of the partner's server: one verdict per check, the fingerprint of
    the host key or certificate it presented, and a few names its folder holds."""

    ok: bool = Field(description="Every check passed")
    verdicts: list[VerdictOut]
    fingerprint: str | None = Field(description="What the server presented, to pin or approve")
    sample: list[str]

    @classmethod
    def of(cls, report: ProbeReport) -> ProbeOut:
        return cls(
            ok=report.ok,
            verdicts=[VerdictOut.model_validate(v) for v in report.verdicts],
            fingerprint=report.fingerprint,
            sample=list(report.sample),
        )


class ApproveIn(_In):
    fingerprint: str = Field(
        description="The fingerprint the server presents now (SHA256:... for a host key, "
        "64 hex digits for a certificate), as a test or `presented_fingerprint` shows it"
    )


class NewCredentialIn(_In):
    """A credential to create with the connection (the wizard's credentials step)."""

    kind: CredentialKind
    name: str | None = None
    public_key: str | None = None
    username: str | None = None
    password: SecretStr | None = None


class ConnectionCreate(_In):
    """Either `state` (a wizard at its review step) or the connection's fields, which go
    through the same wizard steps."""

    state: dict[str, Any] | None = Field(None, description="A wizard state at review")
    name: str | None = None
    direction: Direction | None = None
    data_type: DataType | None = None
    method: Method | None = Field(None, description="Left out: the preselected method")
    methodology: Methodology | None = Field(None, description="Left out: the preselected one")
    details: dict[str, Any] | None = None
    credential_id: int | None = Field(None, description="Reuse one of the account's")
    new_credential: NewCredentialIn | None = None
    pin: str | None = Field(
        None,
        description="Pull/deliver over SFTP or FTPS: the fingerprint the review showed "
        "(`pin` of POST /wizard/review), pinned when the details name none; 409 when the "
        "server now presents another",
    )

    def flat_fields(self) -> set[str]:
        return {name for name in self.model_fields_set if name not in ("state", "pin")}


class ConnectionCreated(BaseModel):
    connection: ConnectionOut
    credential: ProvisionedOut | None = Field(
        description="The credential made with the connection, with its one-time secret"
    )


class ConnectionPatch(_In):
    details: dict[str, Any] = Field(description="Details to change; host, port, folder stay")


# -- files ------------------------------------------------------------------------------


class FileOut(_Out):
    id: int
    trace_id: str
    connection_id: int
    direction: str
    name: str
    size: int
    sha256: str
    source: str
    state: str
    attempts: int
    total_rows: int | None
    ok_rows: int | None
    error_rows: int | None
    summary: dict[str, Any] | None
    last_error: str | None
    created_at: datetime
    finished_at: datetime | None


class FileEventOut(_Out):
    at: datetime
    state: str
    reason: str


class FileDetailOut(FileOut):
    events: list[FileEventOut]


# -- ledger -----------------------------------------------------------------------------


class BonusTier(_In):
    threshold: Decimal
    bonus: Decimal


class CampaignCreate(_In):
    id: int = Field(description="The platform's CampaignId")
    name: str
    currency: str = Field(description="ISO 4217 code")
    payout_rate: Decimal = Field(description="Share of the sale amount, 0 to 1")
    trackers: list[int] = Field(description="The campaign's ActionTrackerIds")
    lock_days: int = 30
    bonus_tiers: list[BonusTier] = Field(default_factory=list)


class CampaignOut(_Out):
    id: int
    name: str
    currency: str
    payout_rate: Rate
    lock_days: int
    bonus_tiers: list[dict[str, Any]]
    trackers: list[int]
    created_at: datetime


class PartnerCreate(_In):
    id: int = Field(description="The platform's MediaPartnerId")
    name: str


class PartnerOut(_Out):
    id: int
    name: str
    created_at: datetime


class JoinCreate(_In):
    campaign_id: int
    payout_rate: Decimal | None = Field(None, description="Overrides the campaign's rate")


class MembershipOut(_Out):
    campaign_id: int
    partner_id: int
    payout_rate: Rate | None
    joined_at: datetime
