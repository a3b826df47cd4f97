"""One file of the token's account, with its history of state changes."""

from __future__ import annotations

from dataclasses import asdict

from fastapi import APIRouter

from dropyard.web.api.deps import CallerDep
from dropyard.web.api.schemas import FileDetailOut

router = APIRouter(tags=["files"])


@router.get("/files/{file_id}")
def get_file(file_id: int, who: CallerDep) -> FileDetailOut:
    view, events = who.app.files.get(who.actor, file_id)
    return FileDetailOut.model_validate({**asdict(view), "events": [asdict(e) for e in events]})
