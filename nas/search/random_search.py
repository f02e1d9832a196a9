"""Random search: a uniformly random arch of the space at every ask (the baseline)."""

from __future__ import annotations

from nas.search._registry import register_searcher
from nas.search.base import Searcher
from spaces.arch import Arch

__all__ = ["RandomSearcher"]


@register_searcher("random")
class RandomSearcher(Searcher):
    """Samples the space uniformly (``space.sample``), skipping archs already told."""

    name = "random"

    def ask(self) -> Arch:
        return self.sample_unseen()
