"""What a collection run did: the summary the driver logs and returns."""

from __future__ import annotations

from dataclasses import dataclass, field

import fsspec

from sea_dist.collect.actor import ShardResult


@dataclass
class CollectSummary:
    """What a collection run did.

    Attributes:
        store_url: the store written.
        rows: demonstrations in the store (N).
        shards: shards in the store.
        shards_skipped: shards already complete when the run started (resume).
        shards_collected: shards recorded by this run.
        shards_retried: shard attempts that failed and were re-queued.
        actors_replaced: collectors that died and were replaced.
        num_actors: collectors started.
        tokens: tokens in the recording passes of this run.
        rows_collected: demonstrations recorded by this run.
        wall_seconds: wall time of the run (cluster start excluded).
        store_bytes: size of the store on its file system.
    """

    store_url: str
    rows: int
    shards: int
    shards_skipped: int = 0
    shards_collected: int = 0
    shards_retried: int = 0
    actors_replaced: int = 0
    num_actors: int = 0
    tokens: int = 0
    rows_collected: int = 0
    wall_seconds: float = 0.0
    store_bytes: int = 0
    results: list[ShardResult] = field(default_factory=list, repr=False)

    def line(self) -> str:
        """The one-line summary the driver logs at the end of a run."""
        wall = max(self.wall_seconds, 1e-9)
        return (
            f"collect: {self.rows_collected} rows, {self.tokens} tokens in "
            f"{self.wall_seconds:.1f} s ({self.rows_collected / wall:.1f} demos/s, "
            f"{self.tokens / wall:.0f} tokens/s) with {self.num_actors} actors; shards "
            f"{self.shards_collected} collected, {self.shards_skipped} already done, "
            f"{self.shards_retried} retried, {self.actors_replaced} actors replaced; store "
            f"{self.store_url}: {self.rows} rows in {self.shards} shards, "
            f"{self.store_bytes / 1e6:.1f} MB"
        )

    def lines(self) -> list[str]:
        """A human summary, a few lines."""
        wall = max(self.wall_seconds, 1e-9)
        return [
            f"store {self.store_url}: {self.rows} rows in {self.shards} shards, "
            f"{self.store_bytes / 1e6:.1f} MB",
            f"this run: {self.rows_collected} rows, {self.tokens} tokens in "
            f"{self.wall_seconds:.1f} s ({self.rows_collected / wall:.1f} demos/s, "
            f"{self.tokens / wall:.0f} tokens/s) with {self.num_actors} actors",
            f"shards: {self.shards_collected} collected, {self.shards_skipped} already done, "
            f"{self.shards_retried} retried, {self.actors_replaced} actors replaced",
        ]


def store_size(url: str) -> int:
    """Bytes used by the store at ``url`` (0 if it cannot be measured)."""
    try:
        fs, path = fsspec.core.url_to_fs(url)
        return int(fs.du(path, total=True))
    except (OSError, ValueError, NotImplementedError):
        return 0
