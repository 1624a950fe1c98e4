"""A fresh local Ray head for integration tests, on 127.0.0.1 with its own ports and temp dir.

Started with ``ray start --head --block`` in its own process group and stopped by signalling that
process, so no other Ray cluster on the machine is touched (never ``ray stop``).
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

RAY = Path(sys.executable).with_name("ray")


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def local_ray_head(prefix: str, num_cpus: int = 2, gcs_port: int | None = None) -> Iterator[str]:
    """Run a Ray head for the ``with`` block; yields its dashboard (Jobs API) URL.

    ``gcs_port`` picks the head's port, for drivers that join with ``--address 127.0.0.1:PORT``.
    """
    temp_dir = tempfile.mkdtemp(prefix=prefix, dir="/tmp")
    dashboard = free_port()
    env = dict(os.environ, RAY_AUTH_MODE="disabled", RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER="0")
    command = [
        str(RAY),
        "start",
        "--head",
        "--block",
        f"--port={gcs_port or free_port()}",
        "--dashboard-host=127.0.0.1",
        f"--dashboard-port={dashboard}",
        f"--ray-client-server-port={free_port()}",
        f"--dashboard-agent-listen-port={free_port()}",
        f"--num-cpus={num_cpus}",
        "--include-dashboard=true",
        f"--temp-dir={temp_dir}",
    ]
    log = open(Path(temp_dir) / "ray-start.log", "wb")  # noqa: SIM115 - closed below
    head = subprocess.Popen(
        command, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
    )
    address = f"http://127.0.0.1:{dashboard}"
    try:
        deadline = time.monotonic() + 180  # 2 shared cores: startup takes 10-60 s
        while True:
            if head.poll() is not None:
                raise RuntimeError(
                    f"ray start exited: {(Path(temp_dir) / 'ray-start.log').read_text()[-2000:]}"
                )
            try:
                with urllib.request.urlopen(f"{address}/api/jobs/", timeout=5) as response:
                    if response.status == 200:
                        break
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError("Ray dashboard did not come up within 180 s")
            time.sleep(1)
        yield address
    finally:
        # SIGTERM to `ray start --block` stops exactly the processes it started.
        head.send_signal(signal.SIGTERM)
        try:
            head.wait(90)
        except subprocess.TimeoutExpired:
            os.killpg(head.pid, signal.SIGKILL)
            head.wait(10)
        log.close()
        shutil.rmtree(temp_dir, ignore_errors=True)  # Ray's session logs and sockets
