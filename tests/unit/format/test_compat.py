"""The one model-compatibility check, on a manifest-like record and the facts of a model."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from sea_dist.errors import ArtifactError
from sea_dist.format.compat import ModelFacts, check_model_compatible


@dataclass(frozen=True)
class Fitted:
    model_id: str = "org/tiny-llama"
    architecture: str = "llama"
    d_model: int = 16
    n_model_layers: int = 4


def test_the_fitted_model_passes_by_id_or_folder_name() -> None:
    for model_id in ("org/tiny-llama", "/models/tiny-llama/", "TINY-LLAMA", None):
        check_model_compatible(Fitted(), [0, 3], ModelFacts(16, 4, "llama", model_id), "p")


@pytest.mark.parametrize(
    ("model", "layers", "match"),
    [
        (ModelFacts(32, 4), [0], "p: d_model: expected 32 .the model's., found 16"),
        (ModelFacts(16, 5), [0], "p: n_model_layers: expected 5"),
        (ModelFacts(16, 4), [4], r"p: layers: expected indices below 4, found \[4\]"),
        (ModelFacts(16, 4, "mistral"), [0], "p: architecture: expected 'mistral'"),
        (ModelFacts(16, 4, model_id="other"), [0], "p: model_id: expected 'other'"),
    ],
)
def test_mismatches_are_refused_in_one_line(
    model: ModelFacts, layers: list[int], match: str
) -> None:
    with pytest.raises(ArtifactError, match=match) as error:
        check_model_compatible(Fitted(), layers, model, "p")
    assert "\n" not in str(error.value)


def test_allow_mismatch_relaxes_names_not_shapes() -> None:
    other = ModelFacts(16, 4, "mistral", "other")
    check_model_compatible(Fitted(), [0], other, "p", allow_model_mismatch=True)
    with pytest.raises(ArtifactError, match="d_model"):
        check_model_compatible(Fitted(), [0], ModelFacts(8, 4), "p", allow_model_mismatch=True)
