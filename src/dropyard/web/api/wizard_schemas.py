"""Documents of the stateless wizard API: the state travels in each request and answer,
with what the current step offers (`StepOptions` of `connections/wizard.py`)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from dropyard.connections.wizard import Review, StepOptions
from dropyard.web.api.schemas import ProbeOut


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid")


class _Out(BaseModel):
    model_config = ConfigDict(from_attributes=True)


_STATE = Field(description="The state of the previous answer, sent back unchanged")


class StateIn(_In):
    state: dict[str, Any] = _STATE


class SubmitIn(_In):
    state: dict[str, Any] = _STATE
    data: dict[str, Any] = Field(
        default_factory=dict, description="The current step's inputs (see options)"
    )


class ChoiceOut(_Out):
    value: str
    label: str
    help: str


class FieldOut(_Out):
    name: str
    label: str
    kind: str
    required: bool
    default: Any
    choices: list[str]
    help: str


class OptionsOut(BaseModel):
    """What the current step offers; `fields_by_combination` is keyed "method/methodology"."""

    step: str
    steps: list[ChoiceOut]
    choices: dict[str, list[ChoiceOut]]
    selected: dict[str, Any]
    fields: list[FieldOut]
    fields_by_combination: dict[str, list[FieldOut]]
    methodologies_by_method: dict[str, list[ChoiceOut]]
    credential_required: bool
    usable_credentials: list[int]
    can_go_back: bool

    @classmethod
    def of(cls, options: StepOptions) -> OptionsOut:
        def choices(values: tuple[Any, ...]) -> list[ChoiceOut]:
            return [ChoiceOut.model_validate(c) for c in values]

        def fields(values: tuple[Any, ...]) -> list[FieldOut]:
            return [FieldOut.model_validate(f) for f in values]

        return cls(
            step=options.step,
            steps=choices(options.steps),
            choices={name: choices(values) for name, values in options.choices.items()},
            selected=dict(options.selected),
            fields=fields(options.fields),
            fields_by_combination={
                f"{method}/{methodology}": fields(specs)
                for (method, methodology), specs in options.fields_by_combination.items()
            },
            methodologies_by_method={
                method: choices(values)
                for method, values in options.methodologies_by_method.items()
            },
            credential_required=options.credential_required,
            usable_credentials=list(options.usable_credentials),
            can_go_back=options.can_go_back,
        )


class WizardOut(BaseModel):
    state: dict[str, Any] = Field(description="Send this back with the next request")
    options: OptionsOut


class ReviewItem(BaseModel):
    label: str
    value: str


class ReviewOut(BaseModel):
    items: list[ReviewItem]
    uri: str
    uri_note: str | None
    probe: ProbeOut | None = Field(
        None,
        description="Pull/deliver: a live test of the partner's server with these details "
        "and login. A failed one does not block creating",
    )
    pin: str | None = Field(
        None,
        description="The host key or certificate fingerprint shown: send it back as `pin` "
        "to POST /connections to pin it",
    )

    @classmethod
    def of(
        cls,
        review: Review,
        *,
        extra: tuple[tuple[str, str], ...] = (),
        probe: ProbeOut | None = None,
        pin: str | None = None,
    ) -> ReviewOut:
        return cls(
            items=[
                ReviewItem(label=label, value=value) for label, value in (*review.items, *extra)
            ],
            uri=review.uri,
            uri_note=review.uri_note,
            probe=probe,
            pin=pin,
        )
