"""Reference parsing: the accepted forms, and everything else refused (never a path)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sea_dist.errors import RegistryError
from sea_dist.registry.refs import LATEST, Ref, check_alias, check_version, parse_ref
from sea_dist.registry.storage import check_segment


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("sea-demo", Ref(name="sea-demo", alias=LATEST)),
        ("sea-demo@latest", Ref(name="sea-demo", alias=LATEST)),
        ("sea-demo@production", Ref(name="sea-demo", alias="production")),
        ("sea-demo@7", Ref(name="sea-demo", version=7)),
        ("sea-demo@v12", Ref(name="sea-demo", version=12)),
        ("a.b_c-9@x.y", Ref(name="a.b_c-9", alias="x.y")),
        ("sha256:abcd", Ref(sha256="abcd")),
        ("sha256:" + "0" * 64, Ref(sha256="0" * 64)),
    ],
)
def test_accepted_forms(text: str, expected: Ref) -> None:
    assert parse_ref(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "",
        "Sea",
        "../etc",
        "a/b",
        "a@",
        "@1",
        "a@0",
        "a@-1",
        "a@b@c",
        "a@../x",
        "a@B",
        "sha256:",
        "sha256:abc",
        "sha256:ABCD",
        "sha256:xyz1",
        "sha256:" + "0" * 65,
        "a" * 101,
        ".hidden",
        "-x",
        "a@v0",
        "a@007x/",
        "name with space",
        "a\n",
        "a@7\n",
        "a@prod\n",
        "sha256:abcd\n",
        "a\x00b",
    ],
)
def test_malformed_refs_are_refused(text: str) -> None:
    with pytest.raises(RegistryError, match="reference"):
        parse_ref(text)


@given(st.text(max_size=40))
def test_any_accepted_ref_is_path_safe(text: str) -> None:
    try:
        ref = parse_ref(text)
    except RegistryError:
        return
    for part in (ref.name, ref.alias, ref.sha256):
        if part is not None:
            assert check_segment(part) == part  # a single safe path component


def test_aliases_and_versions() -> None:
    assert check_alias("production") == "production"
    for bad in ("latest", "7", "v7", "0", "v007", "Prod", "../x"):
        with pytest.raises(RegistryError):
            check_alias(bad)
    assert check_version(3) == 3
    assert check_version("v4") == 4
    for bad_version in (0, -1, True, "x", "1.5", None):
        with pytest.raises(RegistryError):
            check_version(bad_version)


@pytest.mark.parametrize("segment", ["..", ".", "a/b", "", "a\\b", "..x", "/abs", "x\x00", "x\n"])
def test_unsafe_path_segments_are_refused(segment: str) -> None:
    with pytest.raises(RegistryError, match="path segment"):
        check_segment(segment)
