"""BBQ accuracy: argmax of answer log-probabilities, overall and per category."""

from __future__ import annotations

import numpy as np
from scoring_reference import reference_logprob
from tiny_models import build_tiny_model

from sea_dist.data import BBQItem, PromptTemplate
from sea_dist.evaluate.bbq import bbq_prompt, score_bbq

ITEMS = [
    BBQItem(
        id=f"bbq-{cat}-{i}",
        context=f"Two people, {name} and Sam, met at {place}.",
        question="Who was late?",
        answers=(name, "Sam", "Cannot be determined"),
        label=i % 3,
        category=cat,
        unknown_index=2,
        context_condition=cond,
    )
    for i, (cat, name, place, cond) in enumerate(
        [
            ("Age", "Ann", "the park", "ambig"),
            ("Age", "Bob", "work", "disambig"),
            ("Gender", "Cy", "a cafe", "ambig"),
            ("Gender", "Di", "school", "disambig"),
            ("Age", "Ed", "the station", "disambig"),
        ]
    )
]


def test_bbq_predictions_and_accuracy_match_reference() -> None:
    model, tokenizer = build_tiny_model("llama")
    template = PromptTemplate("qa")
    scores = score_bbq(model, tokenizer, ITEMS, template, batch_size=4)
    reference = np.array(
        [
            [
                reference_logprob(model, tokenizer, template.render(bbq_prompt(item)), " " + answer)
                for answer in item.answers
            ]
            for item in ITEMS
        ]
    )
    np.testing.assert_allclose(scores.logprob, reference, rtol=1e-5, atol=1e-5)
    lengths = np.array([[len((" " + a).encode()) for a in item.answers] for item in ITEMS])
    assert np.array_equal(scores.n_tokens, lengths)
    predictions = reference.argmax(1)
    labels = np.array([item.label for item in ITEMS])
    assert np.array_equal(scores.predictions, predictions)
    assert scores.accuracy == np.mean(predictions == labels)
    assert np.array_equal(scores.predictions_normalised, (reference / lengths).argmax(1))
    by_cat = scores.by_category()
    age = [i for i, item in enumerate(ITEMS) if item.category == "Age"]
    assert by_cat["Age"]["n"] == 3
    assert by_cat["Age"]["accuracy"] == np.mean(predictions[age] == labels[age])
    assert set(scores.by_condition()) == {"ambig", "disambig"}


def test_bbq_default_template_and_empty_input() -> None:
    model, tokenizer = build_tiny_model("gpt2")
    scores = score_bbq(model, tokenizer, ITEMS[:2])
    assert scores.logprob.shape == (2, 3)
    empty = score_bbq(model, tokenizer, [])
    assert empty.n == 0 and np.isnan(empty.accuracy)
