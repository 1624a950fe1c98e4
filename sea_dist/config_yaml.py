"""A bounded YAML reader for configuration files: size, depth and alias expansion are limited.

``yaml.safe_load`` builds aliases as shared references, so a few hundred bytes of anchors can stand
for a document of a billion values; anything that later walks the data (validation, an error
message quoting a value, a JSON dump of the resolved config) then runs for minutes and exhausts
memory. A list nested thousands deep makes the recursive composer raise ``RecursionError``.

:func:`parse_yaml` therefore first walks the parser's event stream (iterative, nothing built) and
computes, for every node, its size and height *as if every alias were expanded*; it refuses the
document as soon as either passes its limit. Only then is the document constructed, by a safe
loader that also refuses a key given twice in one mapping (plain PyYAML keeps the last one, so
``fit:`` written twice silently dropped the first section).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml
from yaml.constructor import ConstructorError
from yaml.nodes import MappingNode, ScalarNode

from sea_dist.errors import ConfigError, excerpt

MAX_CONFIG_BYTES = 1 << 20
"""A config larger than 1 MiB is refused before it is parsed."""
MAX_DEPTH = 32
"""Deepest nesting of mappings and lists, aliases expanded."""
MAX_NODES = 10_000
"""Most values (scalars, mappings, lists, keys included), aliases expanded."""

_MERGE_TAG = "tag:yaml.org,2002:merge"


class _Frame:
    """An open mapping or list while walking events: its expanded size and height so far."""

    __slots__ = ("anchor", "height", "size")

    def __init__(self, anchor: str | None) -> None:
        self.anchor = anchor
        self.size = 1
        self.height = 0


def _too_big(where: str, what: str, limit: int, fix: str) -> ConfigError:
    return ConfigError(f"config: expected at most {limit} {what} in {where}, found more; {fix}")


def check_bounds(text: str, where: str) -> None:
    """Refuse a YAML text whose alias-expanded size or depth is over the limits.

    Walks the event stream only (no values are built), in time linear in the text.

    Raises:
        ConfigError: too many values or too deep once aliases are expanded, or not YAML.
    """
    anchors: dict[str, tuple[int, int]] = {}  # anchor -> (expanded size, height)
    stack: list[_Frame] = []
    loader = yaml.SafeLoader(text)
    try:
        while loader.check_event():
            event = loader.get_event()
            if isinstance(event, yaml.CollectionStartEvent):
                stack.append(_Frame(event.anchor))
                if len(stack) > MAX_DEPTH:
                    raise _too_big(where, "levels of nesting", MAX_DEPTH, "flatten the file")
                continue
            if isinstance(event, yaml.CollectionEndEvent):
                frame = stack.pop()
                size, height = frame.size, frame.height + 1
                if frame.anchor is not None:
                    anchors[frame.anchor] = (size, height)
            elif isinstance(event, yaml.ScalarEvent):
                size, height = 1, 1
                if event.anchor is not None:
                    anchors[event.anchor] = (size, height)
            elif isinstance(event, yaml.AliasEvent):
                # An undefined alias is reported by the composer below, with its line.
                size, height = anchors.get(event.anchor or "", (1, 1))
            else:  # stream and document events
                continue
            if len(stack) + height > MAX_DEPTH:
                raise _too_big(
                    where, "levels of nesting (aliases expanded)", MAX_DEPTH, "flatten the file"
                )
            if stack:
                parent = stack[-1]
                parent.size += size
                parent.height = max(parent.height, height)
                if parent.size > MAX_NODES:
                    raise _too_big(
                        where,
                        "values (aliases expanded)",
                        MAX_NODES,
                        "a config is small; remove repeated aliases",
                    )
    except yaml.YAMLError as error:
        raise _not_yaml(where, error) from None
    finally:
        loader.dispose()


def _not_yaml(where: str, error: BaseException) -> ConfigError:
    text = str(error).strip()
    first_line = text.splitlines()[0] if text else type(error).__name__
    mark = getattr(error, "problem_mark", None)
    at = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
    problem = getattr(error, "problem", None)
    if problem:  # PyYAML's problems read "found ..." / "but found ...": keep one "found"
        first_line = re.sub(r"^(but )?found ", "", problem)
    return ConfigError(f"config: expected valid YAML in {where}, found {first_line[:200]}{at}")


class _UniqueKeyLoader(yaml.SafeLoader):
    """PyYAML's safe loader, refusing a key that appears twice in one mapping."""

    where = "the config"

    def construct_mapping(self, node: MappingNode, deep: bool = False) -> dict[Any, Any]:
        if isinstance(node, MappingNode):
            seen: dict[Any, int] = {}
            for key_node, _ in node.value:
                if key_node.tag == _MERGE_TAG or not isinstance(key_node, ScalarNode):
                    continue  # merged keys may be overridden; complex keys fail in super()
                key = self.construct_object(key_node, deep=True)
                line = key_node.start_mark.line + 1
                if key in seen:
                    raise ConfigError(
                        f"config: expected each key once per mapping in {self.where}, found "
                        f"{excerpt(key, 60)} at lines {seen[key]} and {line} (YAML would keep "
                        "only the last); merge the two into one"
                    )
                seen[key] = line
        return super().construct_mapping(node, deep=deep)


def parse_yaml(text: str, where: str = "the config") -> Any:
    """Parse one YAML document within the size, depth and alias limits, keys unique.

    Args:
        text: the YAML text.
        where: how error messages name the source (e.g. the quoted file path).

    Raises:
        ConfigError: over a limit, a duplicate key, or not a single valid YAML document.
    """
    if len(text) > MAX_CONFIG_BYTES:
        raise _too_big(where, "characters", MAX_CONFIG_BYTES, "a config is small")
    check_bounds(text, where)
    loader = _UniqueKeyLoader(text)
    loader.where = where
    try:
        return loader.get_single_data()
    except ConstructorError as error:
        raise _not_yaml(where, error) from None
    except yaml.YAMLError as error:
        raise _not_yaml(where, error) from None
    finally:
        loader.dispose()


def read_yaml_file(path: str | Path) -> Any:
    """Read and parse a YAML config file within the limits of :func:`parse_yaml`.

    Raises:
        ConfigError: no such file, too large, not UTF-8, or see :func:`parse_yaml`.
    """
    path = Path(path)
    where = excerpt(str(path), 200)
    if not path.is_file():
        raise ConfigError(f"config: expected a YAML file, found no file at {where}")
    try:
        with path.open("rb") as handle:
            raw = handle.read(MAX_CONFIG_BYTES + 1)
    except OSError as error:
        raise ConfigError(
            f"config: expected a readable file at {where}, found {error.strerror or error}"
        ) from None
    if len(raw) > MAX_CONFIG_BYTES:
        raise _too_big(where, "bytes", MAX_CONFIG_BYTES, "a config is small")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as error:
        raise ConfigError(f"config: expected valid YAML in {where}, found {error}"[:300]) from None
    return parse_yaml(text, where)
