"""Content fingerprint of a demonstration set under a prompt template.

The activation store records it, and a later run compares it to decide whether stored
activations were produced from the same inputs. It must therefore depend on every character the
model sees and on row order (rows map to store rows), and on nothing else: not on metadata, not
on Python's per-process ``hash`` seed, not on Unicode composition (NFC normalised).
"""

from __future__ import annotations

import hashlib
import json
import unicodedata
from collections.abc import Sequence

from sea_dist.data.schema import FIELDS, Demonstration
from sea_dist.data.templates import PromptTemplate

FINGERPRINT_VERSION = "sea-dist/demonstrations/v1"


def _nfc(text: str) -> str:
    return unicodedata.normalize("NFC", text)


def demonstrations_fingerprint(demos: Sequence[Demonstration], template: PromptTemplate) -> str:
    """sha256 hex digest over the NFC-normalised rows (in order) and the template identity.

    Each row is hashed as one JSON array ``[id, prompt, positive, negative]`` on its own line,
    so field and row boundaries cannot be confused.

    Args:
        demos: Demonstrations in store-row order.
        template: The template the prompts are rendered with.

    Returns:
        64 lowercase hex characters; equal across runs, processes and machines for equal input.
    """
    digest = hashlib.sha256()
    header = {"version": FINGERPRINT_VERSION, "template": template.identity(), "rows": len(demos)}
    digest.update(json.dumps(header, sort_keys=True).encode("utf-8") + b"\n")
    for demo in demos:
        row = [_nfc(getattr(demo, name)) for name in FIELDS]
        digest.update(json.dumps(row, ensure_ascii=False).encode("utf-8") + b"\n")
    return digest.hexdigest()
