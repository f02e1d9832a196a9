"""hwnas: the dependency-free bottom layer shared by every package.

Holds the root of the error hierarchy, seeding and small I/O helpers. It imports
nothing heavy (no torch, no numpy) so that device-side code can use it.
"""

from __future__ import annotations

from hwnas.errors import (
    ConfigError,
    HwnasError,
    InvalidArchError,
    SpaceDefinitionError,
    UnknownNameError,
)
from hwnas.seeding import make_rng, seed_everything

__version__ = "0.1.0"

__all__ = [
    "ConfigError",
    "HwnasError",
    "InvalidArchError",
    "SpaceDefinitionError",
    "UnknownNameError",
    "__version__",
    "make_rng",
    "seed_everything",
]
