"""A real S3-compatible server (moto) on 127.0.0.1 for integration tests: no rename, real HTTP.

The server runs single-threaded on purpose: moto checks ``If-None-Match: *`` and then stores the
object in two steps, so with threads two racing conditional puts could both succeed, which real
S3 never allows. One thread makes the emulator's conditional put atomic like S3's, so concurrent
checks test our protocol, not a gap in the emulator.

Use from a test module (``tests/`` is on ``sys.path``, see ``conftest.py``)::

    @pytest.fixture(scope="module")
    def s3_endpoint() -> Iterator[str]:
        with s3_server() as endpoint:
            yield endpoint

:func:`make_bucket` creates a bucket; :func:`options` are s3fs storage options; :func:`s3_env` is
the environment that lets s3fs (and so Zarr and Ray actors started after it is set) reach the server
without any storage options: botocore reads ``AWS_ENDPOINT_URL`` and the credentials.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from typing import Any

SERVER = """
import sys
from moto.moto_server.werkzeug_app import (
    DomainDispatcherApplication, MotoRequestHandler, create_backend_app)
from werkzeug.serving import make_server
server = make_server("127.0.0.1", 0, DomainDispatcherApplication(create_backend_app),
                     threaded=False, request_handler=MotoRequestHandler)
print(server.server_port, flush=True)
server.serve_forever()
"""
CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
}


@contextlib.contextmanager
def s3_server() -> Iterator[str]:
    """Run a moto S3 server in a subprocess; yield its ``http://127.0.0.1:PORT``."""
    env = {**os.environ, **CREDENTIALS}
    process = subprocess.Popen(
        [sys.executable, "-c", SERVER],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        env=env,
    )
    try:
        assert process.stdout is not None
        port = int(process.stdout.readline())
        endpoint = f"http://127.0.0.1:{port}"
        for _ in range(100):
            try:
                urllib.request.urlopen(endpoint, timeout=2).close()  # noqa: S310 - loopback
                break
            except OSError:
                time.sleep(0.1)
        yield endpoint
    finally:
        os.kill(process.pid, signal.SIGTERM)
        process.wait(timeout=20)


def options(endpoint: str) -> dict[str, Any]:
    """fsspec/s3fs storage options for the server at ``endpoint``."""
    return {
        "key": "testing",
        "secret": "testing",
        "client_kwargs": {"endpoint_url": endpoint, "region_name": "us-east-1"},
    }


def s3_env(endpoint: str) -> dict[str, str]:
    """Environment variables that point s3fs/botocore at ``endpoint`` (no storage options)."""
    return {**CREDENTIALS, "AWS_ENDPOINT_URL": endpoint}


def make_bucket(endpoint: str, name: str) -> str:
    """Create bucket ``name`` (a valid S3 bucket name) on the server; return the name."""
    import boto3

    client = boto3.client(
        "s3",
        endpoint_url=endpoint,
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )
    client.create_bucket(Bucket=name)
    return name
