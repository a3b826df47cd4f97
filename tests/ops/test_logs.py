"""JSON logs: one object a line, with the file's trace id while it is processed."""

from __future__ import annotations

import io
import json
import logging
import time
from pathlib import Path

from dropyard.logs import log_context, make_handler
from dropyard.settings import Settings
from tests.ops.test_metrics import CSV, upload, wait_processed
from tests.support import RunningServer, drop_box


def _log_lines(server: RunningServer) -> list[dict[str, object]]:
    found = []
    for line in server.log().splitlines():
        if line.startswith("{") and '"listening"' not in line:
            document = json.loads(line)  # every log line is one JSON object
            assert {"time", "level", "logger", "message"} <= document.keys(), line
            found.append(document)
    return found


def test_processing_a_file_logs_json_with_its_trace_id(server: RunningServer) -> None:
    box = drop_box(server.app)
    upload(server, box, "traced.csv", CSV)
    processed = wait_processed(server, box.connection_id)

    wanted = f"file {processed.id}: {processed.state}"

    def traced() -> list[dict[str, object]]:
        lines = _log_lines(server)
        return [line for line in lines if line.get("trace_id") == processed.trace_id]

    # The line is written just after the state is committed: give it a moment.
    deadline = time.monotonic() + 10
    while not any(wanted in str(x["message"]) for x in traced()) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert any(wanted in str(x["message"]) for x in traced())
    assert all(str(x["time"]).endswith("Z") for x in traced())
    assert box.password not in server.log()


def test_trace_id_is_bound_only_inside_the_context(tmp_path: Path) -> None:
    stream = io.StringIO()
    log = logging.getLogger("dropyard.tests.ops")
    log.propagate = False
    log.setLevel(logging.INFO)
    handler = make_handler(Settings(data_dir=tmp_path, log_format="json"), stream)
    log.addHandler(handler)
    try:
        with log_context(trace_id="t-1"):
            log.info("inside")
        log.warning("outside")
    finally:
        log.removeHandler(handler)
    inside, outside = (json.loads(line) for line in stream.getvalue().splitlines())
    assert inside["trace_id"] == "t-1"
    assert inside["message"] == "inside"
    assert inside["level"] == "INFO"
    assert "trace_id" not in outside


def test_an_unreachable_queue_is_one_line_not_a_stack_trace_a_second(tmp_path: Path) -> None:
    from redis.exceptions import ConnectionError as RedisDown

    stream = io.StringIO()
    log = logging.getLogger("huey.consumer.Worker-1")
    log.propagate = False
    log.setLevel(logging.INFO)
    handler = make_handler(Settings(data_dir=tmp_path, log_format="text"), stream)
    log.addHandler(handler)
    try:
        for _ in range(5):
            try:
                raise RedisDown("Error 111 connecting to 127.0.0.1:6399. Connection refused.")
            except RedisDown:
                log.exception("Error reading from queue")
        try:
            raise ValueError("a bug, not an outage")
        except ValueError:
            log.exception("Unhandled error during execution")
    finally:
        log.removeHandler(handler)
    lines = stream.getvalue().splitlines()
    outage = [line for line in lines if "the job queue is unreachable" in line]
    assert len(outage) == 1 and "WARNING" in outage[0]
    assert stream.getvalue().count("Traceback") == 1  # the bug keeps its stack trace
