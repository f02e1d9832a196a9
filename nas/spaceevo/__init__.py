"""SpaceEvo: evolve the search space itself for INT8 on the target.

A candidate space of a hyper-space (:mod:`nas.spaceevo.candidate`) picks per searchable stage a
block type and a contiguous width window; its Q-T score (:mod:`nas.spaceevo.score`) combines the
target's LUT latencies of sampled subnets (:mod:`nas.spaceevo.latency`) with their block-wise
distillation NSR losses; aging evolution (:mod:`nas.spaceevo.evolution`) finds the best space,
written as an ordinary DSL YAML space with a report (:mod:`nas.spaceevo.report`).
Block-wise quality (:mod:`nas.spaceevo.blockkd`, stored by :mod:`nas.spaceevo.quality`).

Importing this package does not import torch.
"""

from __future__ import annotations

from nas.spaceevo.candidate import BLOCK_LABEL, WINDOW_LABEL, Candidate, HyperSpace, SpaceEvoError, StageSpec
from nas.spaceevo.evolution import PAPER_SCALE, AgingEvolution, EvolutionConfig, EvolutionResult, Individual
from nas.spaceevo.latency import MissingLatencyError, PartLatency, StageLatencyModel
from nas.spaceevo.score import BudgetScore, MissingQualityError, QTScore, QTScorer, StageQuality, qt_score

__all__ = [
    "BLOCK_LABEL",
    "PAPER_SCALE",
    "WINDOW_LABEL",
    "AgingEvolution",
    "BudgetScore",
    "Candidate",
    "EvolutionConfig",
    "EvolutionResult",
    "HyperSpace",
    "Individual",
    "MissingLatencyError",
    "MissingQualityError",
    "PartLatency",
    "QTScore",
    "QTScorer",
    "SpaceEvoError",
    "StageLatencyModel",
    "StageQuality",
    "StageSpec",
    "qt_score",
]
