"""Studies: tuning and two-fold evaluation of SEA settings against controls.

- :mod:`~sea_dist.studies.space`: settings, presets, search spaces from YAML, variants.
- :mod:`~sea_dist.studies.options`: the ``tune:`` section of a config.
- :mod:`~sea_dist.studies.fits`: one recording pass for every site, full-spectrum fits, controls.
- :mod:`~sea_dist.studies.restart`: exact restart of forward passes from a cached layer input.
- :mod:`~sea_dist.studies.scoring`: cached scores and damage measurements of one variant.
- :mod:`~sea_dist.studies.tune`: ``sea-dist tune``: held-out, damage-budgeted selection.
- :mod:`~sea_dist.studies.tune_report`: its report, plot and RESULT line.
- :mod:`~sea_dist.studies.twofold`: ``sea-dist twofold``: the two-fold TruthfulQA study of a grid;
  :mod:`~sea_dist.studies.twofold_options` (its ``twofold:`` section and built-in grid),
  :mod:`~sea_dist.studies.twofold_bbq` (BBQ two-fold), :mod:`~sea_dist.studies.twofold_report`.
"""
