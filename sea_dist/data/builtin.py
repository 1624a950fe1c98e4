"""Package data: the built-in demonstrations and the held-out text for perplexity checks.

Both files live in ``sea_dist/resources`` and are read through :mod:`importlib.resources`, so
they work from a source checkout, an installed wheel or a zip.
"""

from __future__ import annotations

from importlib import resources

from sea_dist.data.generic import load_table
from sea_dist.data.schema import Demonstration

RESOURCES = "sea_dist.resources"
BUILTIN_DEMONSTRATIONS = "builtin_demonstrations.jsonl"
HELDOUT_TEXT = "heldout_text.txt"


def load_builtin_demonstrations() -> list[Demonstration]:
    """The built-in set: short factual questions with a true and a plausible false answer.

    Returns:
        Demonstrations with ids like ``builtin-geo-001``; metadata holds ``category``.
    """
    with resources.as_file(resources.files(RESOURCES) / BUILTIN_DEMONSTRATIONS) as path:
        return load_table(path, "jsonl", source="builtin")


def load_heldout_text() -> list[str]:
    """Neutral plain-English paragraphs, for perplexity as a capability control.

    Returns:
        Paragraphs (separated by blank lines in the file), each stripped and joined onto one line.
    """
    text = (resources.files(RESOURCES) / HELDOUT_TEXT).read_text(encoding="utf-8")
    paragraphs = (" ".join(block.split()) for block in text.split("\n\n"))
    return [paragraph for paragraph in paragraphs if paragraph]
