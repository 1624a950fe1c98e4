"""Evaluation before and after an edit: TruthfulQA MC1/MC2, BBQ accuracy, perplexity, report.

Scoring is pure torch (batched, padded, masked) and works on any causal LM, edited through
:func:`sea_dist.edit.apply_edit` hooks or folded weights alike. Submodules load on import of their
own name; this package imports nothing heavy.
"""
