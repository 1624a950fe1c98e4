"""Child process of the store fault tests: write shards, then die for real in the middle of one.

Usage: ``python store_writer_child.py URL DIE_IN_SHARD SHARD [SHARD ...]``. Writes the listed
shards of the store (created by the parent with ``reliability_workspace.store_spec()``) in order
with the deterministic payloads of ``reliability_workspace.shard_payload``. In shard
``DIE_IN_SHARD`` it writes the activation arrays, then tears a chunk and calls ``os._exit(1)``
before the completion marker: a collector or driver killed mid-shard, as the collection tests'
fault hook (tests/fault_hooks.py) does in a Ray run.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests/ (synthetic_fit)

from reliability_workspace import shard_payload  # noqa: E402

from sea_dist.store import ACTIVATION_ARRAYS, ActivationStore  # noqa: E402


def main(url: str, die_in: int, shards: list[int]) -> None:
    store = ActivationStore.open(url, mode="r+")

    for shard in shards:
        activations, ids, generated, n_tokens = shard_payload(store.spec, shard)
        if shard != die_in:
            store.write_shard(shard, activations, ids, generated, n_tokens)
            continue
        start, stop = store.spec.shard_rows(shard)
        for name in ACTIVATION_ARRAYS:  # the data of the shard, but not its marker
            store.group[name][start:stop] = activations[name]  # type: ignore[index]
        # Garbage over the first chunk file of the shard, as a write cut short would leave.
        Path(url, "neutral", "c", str(die_in), "0", "0").write_bytes(b"\x00torn")
        os._exit(1)
    raise SystemExit("the fault did not fire")


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]), [int(s) for s in sys.argv[3:]])
