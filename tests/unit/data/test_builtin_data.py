"""The packaged built-in demonstrations and held-out text."""

from __future__ import annotations

from collections import Counter

from sea_dist.config import DataConfig
from sea_dist.data import load_builtin_demonstrations, load_demonstrations, load_heldout_text
from sea_dist.data.templates import FEW_SHOT_PAIRS


def test_builtin_set_is_large_unique_and_contrastive() -> None:
    demos = load_builtin_demonstrations()
    assert len(demos) >= 150
    assert len({d.id for d in demos}) == len(demos)
    assert len({d.prompt.casefold() for d in demos}) == len(demos)
    for demo in demos:
        assert demo.prompt.strip() and demo.positive.strip() and demo.negative.strip()
        assert demo.positive.casefold() != demo.negative.casefold(), demo.id
        assert demo.prompt.endswith("?"), demo.id
        # Short answers: a few words to one sentence.
        assert len(demo.positive.split()) <= 20 and len(demo.negative.split()) <= 20, demo.id
        assert demo.metadata["source"] == "builtin"
    categories = Counter(d.metadata["category"] for d in demos)
    assert len(categories) >= 6 and min(categories.values()) >= 10
    few_shot_questions = {q.casefold() for q, _ in FEW_SHOT_PAIRS}
    assert not few_shot_questions & {d.prompt.casefold() for d in demos}


def test_default_config_loads_builtin_with_limit() -> None:
    assert load_demonstrations(DataConfig()) == load_builtin_demonstrations()
    assert len(load_demonstrations(DataConfig(limit=12))) == 12


def test_heldout_text_paragraphs() -> None:
    paragraphs = load_heldout_text()
    assert 35 <= len(paragraphs) <= 60
    assert len(set(paragraphs)) == len(paragraphs)
    for paragraph in paragraphs:
        assert "\n" not in paragraph
        assert 25 <= len(paragraph.split()) <= 150
