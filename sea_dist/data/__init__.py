"""Demonstrations for SEA: schema, loaders, prompt templates, fingerprints and package data.

Imports only the standard library (and pyarrow lazily, for Parquet), so collection workers and
serving images can use it without the distributed stack.
"""

from sea_dist.data.bbq import bbq_demonstration, bbq_demonstrations, load_bbq_items
from sea_dist.data.builtin import load_builtin_demonstrations, load_heldout_text
from sea_dist.data.fingerprint import demonstrations_fingerprint
from sea_dist.data.generic import load_table
from sea_dist.data.halueval import halueval_demonstrations
from sea_dist.data.loaders import (
    load_demonstrations,
    load_heldout_demonstrations,
    split_holdout,
)
from sea_dist.data.locate import default_data_dir, default_path
from sea_dist.data.schema import MAX_ROW_BYTES, BBQItem, Demonstration, TruthfulQAItem
from sea_dist.data.templates import PromptTemplate, make_template
from sea_dist.data.truthfulqa import (
    load_truthfulqa_items,
    truthfulqa_demonstrations,
    truthfulqa_id,
)

__all__ = [
    "MAX_ROW_BYTES",
    "BBQItem",
    "Demonstration",
    "PromptTemplate",
    "TruthfulQAItem",
    "bbq_demonstration",
    "bbq_demonstrations",
    "default_data_dir",
    "default_path",
    "demonstrations_fingerprint",
    "halueval_demonstrations",
    "load_bbq_items",
    "load_builtin_demonstrations",
    "load_demonstrations",
    "load_heldout_demonstrations",
    "load_heldout_text",
    "load_table",
    "load_truthfulqa_items",
    "make_template",
    "split_holdout",
    "truthfulqa_demonstrations",
    "truthfulqa_id",
]
