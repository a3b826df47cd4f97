"""Dropyard delivering to Dropyard: a report made here lands in another installation's
hosted SFTP drop box, as a partner running Dropyard would receive it."""

from __future__ import annotations

from dropyard.remote.service import RemoteLogin
from tests.remote_flow.conftest import Flow
from tests.support import OPERATOR, RunningServer, drop_box


def test_a_report_is_delivered_into_another_dropyards_drop_box(
    flow: Flow, dropyard_sftp: RunningServer
) -> None:
    far = dropyard_sftp
    box = drop_box(far.app, data_type="conversions")
    details = {
        "host": "127.0.0.1",
        "port": far.ports["sftp"],
        "folder": f"/{box.folder}",
        "report": "performance_by_day",
    }
    # The wizard's review: a live test shows the far side's host key, which gets pinned.
    review = flow.app.remote.probe(
        OPERATOR,
        account=flow.account_id,
        method="sftp",
        methodology="deliver",
        details=details,
        credential=RemoteLogin(username=box.login, password=box.password),
    )
    assert all(v.ok for v in review.verdicts if v.check != "pattern matches"), review.verdicts
    assert review.fingerprint is not None
    connection_id = flow.connection(
        method="sftp",
        methodology="deliver",
        details={**details, "host_key_fingerprint": review.fingerprint},
        username=box.login,
        password=box.password,
    )
    made = flow.app.outbound.run(connection_id)
    assert made.file is not None

    result = flow.app.remote.deliver(made.file.id)

    assert result.state == "delivered", result.reason
    received = far.app.files.list_files(OPERATOR, connection_id=box.connection_id)
    assert [(f.name, f.source, f.size) for f in received] == [
        (made.file.name, "sftp", made.file.size)
    ]
    assert received[0].sha256 == made.file.sha256
