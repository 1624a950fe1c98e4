"""``python -m sea_dist.cli``: the same as the ``sea-dist`` command."""

from sea_dist.cli import main

raise SystemExit(main())
