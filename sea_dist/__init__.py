"""sea-dist: Spectral Editing of Activations (SEA) at cluster scale.

Importing this package is cheap and side-effect free; heavy libraries load in the submodules
that need them.
"""

__version__ = "0.1.0"
