"""FTPS benchmark: one large file up and down with curl against Dropyard's FTP port.

    .venv/bin/python -m bench.ftps                  # 256 MiB, 3 runs
    .venv/bin/python -m bench.ftps --size-mib 1024

For scale, the same transfers go to a bare pyftpdlib FTPS server (the library Dropyard's
FTP front-end is built on, same TLS settings, a plain folder, no session core, no commit):
the ratio shows what Dropyard adds on top of the library, not how it compares with a C
server. curl uses explicit TLS (`--ssl-reqd`, AUTH TLS, protected data channel); the time
is curl's own, from the start of the transfer to the final reply (`time_total -
time_pretransfer`), so the login is left out and Dropyard's commit (answered with the 226)
is in.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import statistics
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from tests.support import start_server

from bench import machine
from bench.servers import DROPYARD_ENV, free_port, password_box, scratch, wait_for_port
from dropyard.gateway.tls import ensure_certificate

MIB = 1024 * 1024
MB = 1_000_000


@dataclass(frozen=True)
class FtpTarget:
    name: str
    port: int
    login: str
    password: str
    upload_dir: str
    download_dir: str
    upload_path: Path  # where an upload lands on disk (checked, then removed)


def curl(target: FtpTarget, remote: str, *args: str, cwd: Path) -> float:
    """One curl transfer; seconds from the start of the transfer to the final reply."""
    done = subprocess.run(
        [
            "curl",
            "--silent",
            "--show-error",
            "--ssl-reqd",
            "--insecure",
            "--user",
            f"{target.login}:{target.password}",
            "--write-out",
            "%{time_pretransfer} %{time_total}",
            *args,
            f"ftp://127.0.0.1:{target.port}{remote}",
        ],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=900,
        stdin=subprocess.DEVNULL,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"curl against {target.name} failed: {done.stderr[-1000:]}")
    pretransfer, total = (float(v) for v in done.stdout.split()[-2:])
    return total - pretransfer


# -- the bare pyftpdlib reference -------------------------------------------------------


def serve_reference(port: int, root: Path, cert: Path, key: Path, password: str) -> None:
    """A pyftpdlib FTPS server with nothing of Dropyard in it (runs in its own process)."""
    from pyftpdlib.authorizers import DummyAuthorizer
    from pyftpdlib.handlers import TLS_FTPHandler
    from pyftpdlib.servers import ThreadedFTPServer

    from dropyard.gateway.ftp import tls_context

    authorizer = DummyAuthorizer()
    authorizer.add_user("bench", password, str(root), perm="elradfmw")
    handler = TLS_FTPHandler
    handler.authorizer = authorizer
    handler.ssl_context = tls_context(cert, key)
    handler.tls_control_required = True
    handler.tls_data_required = True
    handler.banner = "reference"
    server = ThreadedFTPServer(("127.0.0.1", port), handler)
    server.serve_forever()


@contextlib.contextmanager
def reference(work: Path, cert: Path, key: Path) -> Iterator[FtpTarget]:
    root = work / "reference"
    for sub in ("in", "out"):
        (root / sub).mkdir(parents=True)
    port = free_port()
    log = work / "reference.log"
    with open(log, "wb") as out:
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "bench.ftps",
                "--reference-server",
                f"{port},{root},{cert},{key}",
            ],
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
    try:
        wait_for_port(port, process, log)
        yield FtpTarget(
            "pyftpdlib", port, "bench", "bench-password", "/in", "/out", root / "in" / "up.bin"
        )
    finally:
        process.terminate()
        process.wait(10)


# -- the benchmark ----------------------------------------------------------------------


def run(size_mib: int, runs: int) -> str | None:
    size = size_mib * MIB
    load_before = " ".join(Path("/proc/loadavg").read_text().split()[:3])
    with scratch() as work:
        data_dir = work / "dropyard"
        server = start_server(
            data_dir,
            f"sqlite:///{data_dir / 'dropyard.db'}",
            extra_env=DROPYARD_ENV,
            roles="ftp",
        )
        try:
            if "ftp" not in server.ports:
                print("dropyard serve has no FTP port yet: nothing to measure")
                return None
            box = password_box(server, "ftp")
            ours = FtpTarget(
                "dropyard",
                server.ports["ftp"],
                box.login,
                box.password,
                box.upload_dir,
                box.download_dir,
                server.settings.files_dir / "inbox" / str(box.inbound_id),
            )
            source = work / "big.bin"
            block = os.urandom(MIB)
            with open(source, "wb") as handle:
                for _ in range(size_mib):
                    handle.write(block)
            outbound = server.settings.files_dir / "folders" / str(box.outbound_id)
            outbound.mkdir(parents=True, exist_ok=True)
            os.link(source, outbound / "big.bin")
            # The certificate the server presents (made at its start), reused by the reference.
            cert, key = ensure_certificate(server.settings.keys_dir, hostname="127.0.0.1")
            with reference(work, cert, key) as ref:
                os.link(source, work / "reference" / "out" / "big.bin")
                results = _measure(ref, ours, work, size, runs)
        finally:
            server.stop()
    header = [
        "transfer",
        "pyftpdlib MB/s",
        "Dropyard MB/s",
        "Dropyard/pyftpdlib",
        "runs: pyftpdlib / Dropyard",
    ]
    rows = [
        [
            what,
            f"{statistics.median(ref_values):.1f}",
            f"{statistics.median(our_values):.1f}",
            f"{statistics.median(our_values) / statistics.median(ref_values):.2f}x",
            " ".join(f"{v:.0f}" for v in ref_values)
            + " / "
            + " ".join(f"{v:.0f}" for v in our_values),
        ]
        for what, (ref_values, our_values) in results.items()
    ]
    print(machine.text_table(header, rows))
    return (
        f"## FTPS: one {size_mib} MiB file up and down (curl)\n\n"
        f"{machine.environment()} · load average before/after {load_before} / "
        f"{' '.join(Path('/proc/loadavg').read_text().split()[:3])}\n\n"
        f"`curl --ssl-reqd -k` (explicit TLS, protected data channel, TLS 1.3 AES-GCM as "
        f"negotiated) against Dropyard's FTP port and, for scale, a bare pyftpdlib FTPS "
        f"server with the same TLS context writing to a plain folder. Median of {runs} runs, "
        f"interleaved; MB = 10^6 bytes; time from the start of the transfer to the final "
        f"reply (Dropyard answers 226 after the commit: fsync, SHA-256, move, row, "
        f"receipt).\n\n"
        f"{machine.markdown_table(header, rows)}\n"
    )


def _measure(
    ref: FtpTarget, ours: FtpTarget, work: Path, size: int, runs: int
) -> dict[str, tuple[list[float], list[float]]]:
    results: dict[str, tuple[list[float], list[float]]] = {"upload": ([], []), "download": ([], [])}
    for _ in range(runs):
        for index, target in enumerate((ref, ours)):
            seconds = curl(target, f"{target.upload_dir}/up.bin", "-T", "big.bin", cwd=work)
            stored = (
                [target.upload_path]
                if target.upload_path.is_file()
                else list(target.upload_path.iterdir())
            )
            if sum(p.stat().st_size for p in stored) != size:
                raise RuntimeError(f"{target.name}: the upload stored a wrong size")
            for path in stored:
                path.unlink()
            results["upload"][index].append(size / MB / seconds)
            os.sync()
        for index, target in enumerate((ref, ours)):
            seconds = curl(target, f"{target.download_dir}/big.bin", "-o", "got.bin", cwd=work)
            if (work / "got.bin").stat().st_size != size:
                raise RuntimeError(f"{target.name}: the download has a wrong size")
            (work / "got.bin").unlink()
            results["download"][index].append(size / MB / seconds)
            os.sync()
    return results


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.ftps", description=__doc__)
    parser.add_argument("--size-mib", type=int, default=256)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--no-readme", action="store_true")
    parser.add_argument("--reference-server", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.reference_server:
        port, root, cert, key = args.reference_server.split(",")
        serve_reference(int(port), Path(root), Path(cert), Path(key), "bench-password")
        return
    body = run(args.size_mib, args.runs)
    if body is None:
        body = (
            "## FTPS: one large file up and down (curl)\n\n"
            "Awaits the FTP server: `dropyard serve` did not open an FTP port when this ran."
        )
    if not args.no_readme:
        machine.update_readme("ftps", body)


if __name__ == "__main__":
    main()
