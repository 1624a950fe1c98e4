"""Pydantic v2 plumbing of the config sections: strict scalar types and one error contract.

Each section is a frozen pydantic dataclass (so ``dataclasses.replace`` and ``asdict`` keep
working) built with :data:`SECTION` and decorated by :func:`checked`. Pydantic converts and
type-checks the fields; a section's ``_problems()`` then runs the checks across fields. Every
failure, wherever it sits in the tree, becomes one ``field.path: expected X, found Y`` line of a
single :class:`~sea_dist.errors.ConfigError` (:func:`problems_from`), so a user fixes a file in
one round.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import types
import typing
from typing import Annotated, Any, Literal, TypeVar, Union, get_args, get_origin

from pydantic import (
    AfterValidator,
    BeforeValidator,
    ConfigDict,
    Strict,
    TypeAdapter,
    ValidationError,
)
from pydantic import model_validator as _model_validator
from pydantic_core import ArgsKwargs, PydanticCustomError

from sea_dist.config.spec import FLOAT_LIMIT, INT_LIMIT
from sea_dist.errors import ConfigError, excerpt

SECTION = ConfigDict(extra="forbid", use_attribute_docstrings=True, revalidate_instances="never")
"""Unknown keys are refused; attribute docstrings become the JSON Schema descriptions."""

PROBLEMS = "sea_problems"  # error type: lines from a section's cross-field checks
_VALUE = "sea_value"  # error type: a value out of the range every config number keeps


def _value_error(expected: str) -> PydanticCustomError:
    return PydanticCustomError(_VALUE, "expected {expected}", {"expected": expected})


def _int_in_range(value: int) -> int:
    if abs(value) > INT_LIMIT:
        raise _value_error(f"an integer of at most {INT_LIMIT}")
    return value


def _float_input(value: Any) -> Any:
    # An int beyond float range would fail as "expected float"; it is a number, just too big.
    if isinstance(value, int) and not isinstance(value, bool) and abs(value) > FLOAT_LIMIT:
        raise _value_error("a finite number")
    return value


def _finite(value: float) -> float:
    # NaN and inf pass every '<' check of the sections: refuse them here.
    if not math.isfinite(value):
        raise _value_error("a finite number")
    return value


def list_as_tuple(value: Any) -> Any:
    # YAML gives lists; sets, strings and mappings are not lists of anything here.
    return tuple(value) if isinstance(value, list) else value


Int = Annotated[int, Strict(), AfterValidator(_int_in_range)]
"""An integer (not a bool, not a string of digits) within int64."""
Float = Annotated[float, BeforeValidator(_float_input), Strict(), AfterValidator(_finite)]
"""A finite number; an integer is accepted and becomes a float, a bool or string is not."""
Bool = Annotated[bool, Strict()]
Str = Annotated[str, Strict()]
Layers = Str | Annotated[tuple[Int, ...], Strict(), BeforeValidator(list_as_tuple)]
"""A :data:`~sea_dist.config.spec.LayerSpec`: a spec string, or a list of layer indices."""
Names = Annotated[tuple[Str, ...], Strict(), BeforeValidator(list_as_tuple)]
"""A list of strings (kept as a tuple: sections are immutable)."""

T = TypeVar("T")


class Checked:
    """Mixin of every section: ``None`` means all defaults, then ``_problems()`` after the types."""

    def _problems(self) -> list[str]:
        return []

    @_model_validator(mode="before")
    @classmethod
    def _none_is_empty(cls, data: Any) -> Any:
        # An empty YAML section (`fit:`) is None: it takes every default, as `fit: {}` does.
        return {} if data is None else data

    def __post_init__(self) -> None:
        problems = self._problems()
        if problems:
            # A pydantic error, not ConfigError: the other sections are still checked.
            raise PydanticCustomError(
                PROBLEMS, "{count} problems", {"count": len(problems), "problems": problems}
            )


def checked(cls: type[T]) -> type[T]:
    """Make direct construction (``FitConfig(fixed_k=0)``) raise ConfigError, not pydantic's."""
    init = cls.__init__

    @functools.wraps(init)
    def __init__(self: Any, *args: Any, **kwargs: Any) -> None:
        try:
            init(self, *args, **kwargs)
        except ValidationError as error:
            raise ConfigError(_all_problems(error, cls, kwargs)) from None

    cls.__init__ = __init__  # type: ignore[method-assign]
    return cls


def validate(cls: type[T], data: Any) -> T:
    """Build ``cls`` from plain data (from YAML), raising one ConfigError with all problems."""
    try:
        return _adapter(cls).validate_python(data)
    except ValidationError as error:
        raise ConfigError(_all_problems(error, cls, data)) from None


_ADAPTERS: dict[Any, TypeAdapter[Any]] = {}


def _adapter(cls: type[T]) -> TypeAdapter[T]:
    """One adapter per section class (building one walks the class's whole schema)."""
    if cls not in _ADAPTERS:
        _ADAPTERS[cls] = TypeAdapter(cls)
    return _ADAPTERS[cls]


_UNKNOWN_KEY = ("unexpected_keyword_argument", "extra_forbidden", "invalid_key")


def _all_problems(error: ValidationError, cls: Any, data: Any) -> list[str]:
    """Every problem, as the lines of :func:`problems_from`.

    An unknown key stops pydantic before its section's checks across fields run, which the
    hand-written validator reported in the same round: the data is checked once more without
    those keys, and the problems of both passes are merged.
    """
    ranked = _ranked_lines(error, cls, data)
    unknown = [item for item in error.errors(include_url=False) if item["type"] in _UNKNOWN_KEY]
    for item in unknown:
        loc = tuple(item["loc"])
        key = item["input"] if item["type"] == "invalid_key" else loc[-1]
        data = _without(data, loc[:-1], key)
    if unknown:
        try:
            _adapter(cls).validate_python(data)
        except ValidationError as again:
            ranked += _ranked_lines(again, cls, data)
    return _in_order(ranked)


def _without(data: Any, loc: tuple[Any, ...], key: Any) -> Any:
    """A copy of ``data`` with ``key`` taken out of the mapping at ``loc`` (copied along loc)."""
    if isinstance(data, ArgsKwargs):
        data = dict(data.kwargs or {})
    if not loc:
        return {k: v for k, v in data.items() if k != key} if isinstance(data, dict) else data
    head, rest = loc[0], loc[1:]
    if isinstance(data, dict) and head in data:
        return {**data, head: _without(data[head], rest, key)}
    if isinstance(data, list | tuple) and isinstance(head, int) and 0 <= head < len(data):
        return [*data[:head], _without(data[head], rest, key), *data[head + 1 :]]
    return data


# -- pydantic errors -> one line per problem -------------------------------------------------------


def _bare(tp: Any) -> Any:
    """The type without its ``Annotated`` metadata."""
    while get_origin(tp) is Annotated:
        tp = get_args(tp)[0]
    return tp


def type_name(tp: Any) -> str:
    """How a message names a field type: ``int``, ``str or null``, ``a list of int``..."""
    tp = _bare(tp)
    origin = get_origin(tp)
    if origin is Literal:
        return " or ".join(repr(a) for a in get_args(tp))
    if origin in (Union, types.UnionType):
        return " or ".join(type_name(a) for a in get_args(tp))
    if origin is tuple:
        return f"a list of {type_name(get_args(tp)[0])}"
    if origin is dict or dataclasses.is_dataclass(tp):
        return "a mapping"
    if tp is type(None):
        return "null"
    return getattr(tp, "__name__", str(tp))


def _key_text(key: Any) -> str:
    """A mapping key as it appears in a field path (short, whatever the key is)."""
    return key if isinstance(key, str) and len(key) <= 60 else excerpt(key, 60)


def _step(value: Any, key: Any) -> Any:
    """``value[key]`` of the raw input, or a marker when it is not there."""
    if isinstance(value, ArgsKwargs):
        value = value.kwargs or {}
    try:
        return value[key]
    except (KeyError, IndexError, TypeError):
        return _ABSENT


_ABSENT = object()


def _walk(loc: tuple[Any, ...], root: Any, data: Any) -> tuple[str, Any, Any, int, list[float]]:
    """Follow ``loc`` through the declared types.

    Returns:
        The field path (``fit.k`` / ``schedule.schedules[0].cron``), the declared type there, the
        raw input value there (or a marker), how many parts of ``loc`` were followed, and the
        rank of the path (field positions), which orders the lines as the fields are declared.
    """
    path, tp, value, used = "", root, data, 0
    rank: list[float] = []
    for position, part in enumerate(loc):
        bare = _bare(tp)
        origin = get_origin(bare)
        if dataclasses.is_dataclass(bare) and isinstance(part, str):
            names = [f.name for f in dataclasses.fields(bare)]
            if part not in names:
                break
            tp = typing.get_type_hints(bare, include_extras=True)[part]
            path, step = (f"{path}.{part}" if path else part), names.index(part) + 1.0
        elif origin is tuple and isinstance(part, int):
            path, tp, step = f"{path}[{part}]", get_args(bare)[0], part
        elif origin is dict and loc[position + 1 : position + 2] != ("[key]",):
            path, tp, step = f"{path}.{_key_text(part)}", get_args(bare)[1], 0
        else:  # a union member's tag, a key pydantic refused, or an unknown field
            break
        value, used = _step(value, part), position + 1
        rank.append(step)
    return path, tp, value, used, rank


def problems_from(error: ValidationError, root: Any, data: Any) -> list[str]:
    """Translate pydantic's errors into the house lines, one per problem.

    In a section, unknown keys come first, then the fields in declared order, then the checks
    across its fields, as the hand-written validator reported them.

    Args:
        error: what pydantic raised while validating ``data`` as ``root``.
        root: the section class validated (the path of every line starts there).
        data: the raw input (a mapping from YAML, or the keyword arguments of a constructor).
    """
    return _in_order(_ranked_lines(error, root, data))


def _in_order(ranked: list[tuple[list[float], str]]) -> list[str]:
    ordered = sorted(ranked, key=lambda pair: pair[0])  # stable: input order among equals
    return list(dict.fromkeys(line for _, line in ordered))


def _ranked_lines(error: ValidationError, root: Any, data: Any) -> list[tuple[list[float], str]]:
    ranked: list[tuple[list[float], str]] = []
    for item in error.errors(include_url=False):
        loc, kind, ctx = tuple(item["loc"]), item["type"], item.get("ctx") or {}
        path, tp, value, used, rank = _walk(loc, root, data)
        if value is _ABSENT:
            value = item["input"]
        prefix = f"{path}." if path else ""
        if get_origin(_bare(tp)) in (Union, types.UnionType) and used < len(loc):
            # One member's complaint (say, an item of the list form) is not the whole story.
            lines = [f"{path}: expected {type_name(tp)}, found {excerpt(value)}"]
        elif kind == PROBLEMS:
            lines = [f"{prefix}{problem}" for problem in ctx["problems"]]
            rank = [*rank, math.inf]
        elif kind in _UNKNOWN_KEY:
            key = item["input"] if kind == "invalid_key" else loc[used]
            known = ", ".join(sorted(f.name for f in dataclasses.fields(_bare(tp))))
            lines = [f"{prefix}{_key_text(key)}: unknown key; expected one of {known}"]
            rank = [*rank, 0]
        elif kind in ("missing", "missing_argument"):
            lines = [f"{path}: expected {type_name(tp)}, found nothing"]
        elif kind == _VALUE:
            lines = [f"{path}: expected {ctx['expected']}, found {excerpt(value)}"]
        else:  # a wrong type: say what the field takes, whichever union member failed
            lines = [f"{path or 'config'}: expected {type_name(tp)}, found {excerpt(value)}"]
        ranked += [(rank, line) for line in lines]
    return ranked
