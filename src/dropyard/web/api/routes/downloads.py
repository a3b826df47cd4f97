"""`/d/<token>`: the expiring download links of files delivered by email.

No account and no token header: the signed link is the permission (remote/links.py). A
link that is not genuine answers 404 and an expired one 410, as short plain pages that
say nothing about the file.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import BinaryIO
from urllib.parse import quote

from fastapi import APIRouter, Request
from fastapi.responses import PlainTextResponse, Response, StreamingResponse

from dropyard.app import Dropyard
from dropyard.errors import NotFound
from dropyard.remote.links import LinkExpired

router = APIRouter(include_in_schema=False)
_CHUNK = 256 * 1024
_HEADERS = {"Cache-Control": "no-store", "X-Content-Type-Options": "nosniff"}


def _chunks(stream: BinaryIO) -> Iterator[bytes]:
    try:
        while chunk := stream.read(_CHUNK):
            yield chunk
    finally:
        stream.close()


@router.get("/d/{token}")
def download(token: str, request: Request) -> Response:
    app: Dropyard = request.app.state.dropyard
    address = request.client.host if request.client else "unknown"
    try:
        found = app.remote.links.open(token, address=address)
    except LinkExpired:
        return PlainTextResponse(
            "This download link has expired. Ask the sender for the file.\n",
            status_code=410,
            headers=_HEADERS,
        )
    except NotFound:
        return PlainTextResponse(
            "This download link is not valid.\n", status_code=404, headers=_HEADERS
        )
    ascii_name = found.name.encode("ascii", "replace").decode().replace('"', "_")
    disposition = f"attachment; filename=\"{ascii_name}\"; filename*=UTF-8''{quote(found.name)}"
    return StreamingResponse(
        _chunks(found.stream),
        media_type=found.media_type,
        headers={**_HEADERS, "Content-Length": str(found.size), "Content-Disposition": disposition},
    )
