"""Bad HTTP requests against a real ``sea-dist registry serve`` (started by the CLI, loopback).

Each must get a 4xx answer whose body is the JSON error document (one-line message, no
traceback), and the registry must be byte-identical afterwards (the whole tree is hashed).
"""

from __future__ import annotations

import pytest
from http_raw import send_raw
from reliability_corpus import HTTP_CASES, HttpCase
from reliability_workspace import Workspace
from tree_snapshot import changes, tree_digest

pytestmark = [pytest.mark.integration, pytest.mark.bad_input]


def _param(case: HttpCase) -> object:
    marks = [pytest.mark.xfail(strict=True, reason=case.bug)] if case.bug else []
    return pytest.param(case, id=case.id, marks=marks)


@pytest.mark.parametrize("case", [_param(c) for c in HTTP_CASES])
def test_bad_request_gets_json_4xx(case: HttpCase, served: object, workspace: Workspace) -> None:
    before = tree_digest(workspace.registry)
    response = send_raw(served.url, case.raw)  # type: ignore[attr-defined]
    after = tree_digest(workspace.registry)
    assert response.status == case.status, response.body[:300]
    assert 400 <= response.status < 500
    assert response.headers.get("content-type") == "application/json", response.body[:120]
    error = response.json()["error"]
    assert error["status"] == case.status
    assert error["message"] and "\n" not in error["message"]
    assert "Traceback" not in response.body.decode("utf-8", "replace")
    assert changes(before, after) == []
