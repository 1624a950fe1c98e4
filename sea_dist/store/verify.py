"""Check a whole activation store in one pass and list every problem (``sea-dist store verify``).

What is checked, in order, each problem one line:

1. the group's ``zarr.json`` reads, and its attributes can describe a store (types, ranges);
2. every array agrees with the attributes (shape, chunks, dtype), and its metadata reads;
3. every shard's completion marker: set, and (stores with digests) holding valid digests;
4. every chunk of every finished shard: decodes, exists, matches the sha256 its marker records,
   and holds finite values; the shard's row ids, generations and token counts match theirs.

A store written before digests existed gets steps 1 to 3 and, in step 4, decoding, presence and
finiteness only (a note says so). With ``mark_pending`` the markers of damaged shards are
cleared, so re-running the same collection redoes exactly those shards.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import zarr

from sea_dist.errors import StoreError, excerpt
from sea_dist.store.integrity import (
    LayerCheck,
    ShardDigest,
    read_checked,
    redo_fix,
    texts_digest,
    values_digest,
)
from sea_dist.store.layout import DIGEST_ARRAY, MARKER_ARRAY, array_problem, expected_arrays
from sea_dist.store.markers import ShardMarkers, mark_pending
from sea_dist.store.opening import open_group
from sea_dist.store.spec import ACTIVATION_ARRAYS, StoreSpec, attribute_problems, seal_problems
from sea_dist.store.zarr_store import ActivationStore

READ_THREADS = 4
"""Chunks are read by a few threads (decoding releases the GIL)."""


@dataclass
class VerifyReport:
    """What :func:`verify_store` found.

    Attributes:
        url: the store.
        problems: one line each, in the order found (empty: the store is sound).
        notes: lines that are not problems (a store without digests, what was marked pending).
        damaged_shards: shards whose data or marker is damaged (a resumed collection can redo
            them once they are marked pending).
        chunks_checked: activation chunks read and checked.
        digests_checked: of those, how many were compared with a recorded digest.
    """

    url: str
    problems: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    damaged_shards: set[int] = field(default_factory=set)
    chunks_checked: int = 0
    digests_checked: int = 0

    @property
    def ok(self) -> bool:
        """Whether no problem was found."""
        return not self.problems


def verify_store(url: str, mark_pending: bool = False) -> VerifyReport:
    """Check every part of the store at ``url``; see the module docstring.

    Args:
        url: store URL (local folder or fsspec URL).
        mark_pending: clear the completion markers of damaged shards (the only write; nothing is
            written when the attributes or the arrays' metadata are damaged).

    Returns:
        The report; never raises for a damaged store.
    """
    report = VerifyReport(url)
    try:
        group = open_group(url, mode="r+" if mark_pending else "r")
    except StoreError as error:
        report.problems.append(str(error))
        return report
    attrs = dict(group.attrs)
    report.problems += attribute_problems(attrs, url)
    if report.problems:
        report.notes.append("arrays and chunks not checked: the attributes describe no store")
        return report
    spec = StoreSpec.from_attrs(attrs, url)
    store = ActivationStore(url, group, spec)
    layout = {
        name: array_problem(group, name, spec, url, store.has_digests)
        for name in expected_arrays(spec, has_digests=True)
    }
    report.problems += [problem for problem in layout.values() if problem is not None]
    report.problems += seal_problems(attrs, url)
    if any(layout[name] is not None for name in (*ACTIVATION_ARRAYS, MARKER_ARRAY, DIGEST_ARRAY)):
        report.notes.append(
            "shards not checked: the activation or marker arrays are damaged or disagree "
            "with the attributes"
        )
        return report
    markers = store.markers()
    _check_markers(store, markers, report)
    sound = [name for name, problem in layout.items() if problem is None]
    _check_chunks(store, markers, report)
    _check_rows(store, markers, sound, report)
    if not store.has_digests:
        report.notes.append(
            f"store {excerpt(url)} was written before shard digests: "
            f"{len(markers.unchecked)} shards were checked for decoding, missing chunks and "
            "finite values only; re-collect it to record digests"
        )
    if mark_pending:
        _mark_pending(store, report, layout_sound=all(p is None for p in layout.values()))
    return report


def _check_markers(store: ActivationStore, markers: ShardMarkers, report: VerifyReport) -> None:
    where = f"store {excerpt(store.url)}"
    for shard, why in sorted(markers.damaged.items()):
        report.damaged_shards.add(shard)
        report.problems.append(
            f"{where} shard {shard} marker: expected a complete completion marker, found that "
            f"{why}; {redo_fix(store.url)}"
        )
    pending = [
        s for s in range(store.spec.n_shards) if s not in markers.done and s not in markers.damaged
    ]
    if pending:
        report.problems.append(
            f"{where}: expected all {store.spec.n_shards} shards done, found {len(pending)} "
            f"never finished (first {pending[0]}); re-run the same collect config to resume it"
        )


def _check_chunks(store: ActivationStore, markers: ShardMarkers, report: VerifyReport) -> None:
    """Read every chunk of every done shard once (one chunk per read: every problem is found)."""
    checks = store.layer_checks(markers)
    done = sorted(markers.done)

    def check_one(role: str, check: LayerCheck) -> list[tuple[int, str | None]]:
        array = zarr.open_array(store=store.url, path=role, mode="r")
        found: list[tuple[int, str | None]] = []
        for shard in done:
            start, stop = store.spec.shard_rows(shard)
            try:
                read_checked(array, role, check, start, stop)
            except StoreError as error:
                found.append((shard, str(error)))
            else:
                found.append((shard, None))
        return found

    jobs = [(role, checks[layer]) for layer in store.spec.layers for role in ACTIVATION_ARRAYS]
    with ThreadPoolExecutor(max_workers=READ_THREADS) as pool:
        results = list(pool.map(lambda job: check_one(*job), jobs))
    found = []
    for (role, check), outcomes in zip(jobs, results, strict=True):
        for shard, problem in outcomes:
            report.chunks_checked += 1
            report.digests_checked += int(shard in markers.digests)
            if problem is not None:
                report.damaged_shards.add(shard)
                found.append((shard, check.layer_index, ACTIVATION_ARRAYS.index(role), problem))
    report.problems += [problem for *_, problem in sorted(found)]  # by shard, layer, role


def _check_rows(
    store: ActivationStore, markers: ShardMarkers, sound: list[str], report: VerifyReport
) -> None:
    """Row ids, generations and token counts of each done shard against its digests."""
    where = f"store {excerpt(store.url)}"
    for name in ("row_ids", "generated", "n_tokens"):
        if name not in sound:
            continue
        array = store.array(name)
        for shard in sorted(markers.done):
            start, stop = store.spec.shard_rows(shard)
            try:
                values: Any = np.asarray(array[start:stop])
            except Exception as error:  # noqa: BLE001 - damaged bytes raise anything
                problem = f"found a chunk that cannot be decoded ({type(error).__name__})"
            else:
                digest: ShardDigest | None = markers.digests.get(shard)
                if digest is None:
                    continue
                found = (
                    values_digest(values.astype(np.int64))
                    if name == "n_tokens"
                    else texts_digest([str(v) for v in values.tolist()])
                )
                if found == getattr(digest, name):
                    continue
                problem = f"found other values (sha256 {found[:16]}...)"
            report.damaged_shards.add(shard)
            report.problems.append(
                f"{where} shard {shard} {name}: expected the values its completion marker "
                f"records, {problem}; {redo_fix(store.url)}"
            )


def _mark_pending(store: ActivationStore, report: VerifyReport, layout_sound: bool) -> None:
    if not report.damaged_shards:
        report.notes.append("no damaged shard to mark pending")
        return
    if not layout_sound:
        report.notes.append(
            "nothing marked pending: the arrays' metadata disagree with the attributes; "
            "re-collect with --overwrite"
        )
        return
    shards = sorted(report.damaged_shards)
    mark_pending(store.group, shards)
    report.notes.append(
        f"marked {len(shards)} damaged shards pending ({excerpt(shards, 80)}); re-run the "
        "same collect config to redo them"
    )
