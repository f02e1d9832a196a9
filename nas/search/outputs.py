"""The files a search leaves behind: ``best.json`` or ``pareto/NN_<archid>.json`` (arch files that
``nas export --arch`` and ``nas eval-subnet`` read) and ``summary.json`` (every trial)."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from hwnas.errors import ConfigError

__all__ = ["arch_record", "write_search_outputs"]


def _space_digest(space: Any) -> str | None:
    from spaces import space_hash

    try:
        return space_hash(space)
    except Exception:  # a space without a declarative form has no hash
        return None


def arch_record(trial: Any, space: Any, digest: str | None = None) -> dict[str, Any]:
    """One trial as an arch file: decisions, id, values, space name and hash, block string."""
    return {
        "arch": trial.arch.to_dict(),
        "arch_id": trial.arch.id,
        "values": dict(trial.values),
        "space": space.name,
        "space_hash": digest if digest is not None else _space_digest(space),
        "describe": space.describe(trial.arch),
    }


def write_search_outputs(
    folder: str | Path, searcher: Any, space: Any, *, multi_objective: bool, summary: Mapping[str, Any]
) -> dict[str, Any]:
    """Write the arch file(s) and ``summary.json`` of ``searcher``'s run into ``folder``.

    ``summary`` holds what the caller knows of the run (searcher name, seed, objectives,
    constraints, budget, evaluator descriptions, seconds); the trials, the best arch (one
    objective) or the Pareto front (several) and the written files are added here. Returns
    ``{"dir", "best", "pareto", "summary"}`` (paths as strings).
    """
    from hwnas.io import atomic_write_text, json_safe

    folder = Path(folder)
    digest = _space_digest(space)

    def dump(path: Path, obj: Any) -> None:
        atomic_write_text(path, json.dumps(json_safe(obj), indent=2, sort_keys=False) + "\n")

    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigError(f"--out {folder}: cannot create the folder ({exc.strerror})") from None
    written: dict[str, Any] = {"dir": str(folder), "best": None, "pareto": []}
    best = searcher.best()
    if not multi_objective:
        if best is not None:
            dump(folder / "best.json", arch_record(best, space, digest))
            written["best"] = str(folder / "best.json")
    else:
        pdir = folder / "pareto"
        pdir.mkdir(exist_ok=True)
        for old in pdir.glob("*.json"):  # a rerun into the same folder replaces the earlier front
            old.unlink()
        front: Sequence[Any] = sorted(searcher.pareto_front(), key=lambda t: searcher.oriented(t), reverse=True)
        width = max(2, len(str(len(front) - 1)))
        for i, t in enumerate(front):
            path = pdir / f"{i:0{width}d}_{t.arch.id}.json"
            dump(path, arch_record(t, space, digest))
            written["pareto"].append(str(path))
    record = {
        **summary,
        "space": {"name": space.name, "hash": digest},
        "trials": [
            {
                "number": t.number,
                "arch_id": t.arch.id,
                "arch": t.arch.to_dict(),
                "values": dict(t.values),
                "feasible": t.feasible,
            }
            for t in searcher.history
        ],
        "best": arch_record(best, space, digest) if best is not None else None,
        "pareto_front": [arch_record(t, space, digest) for t in searcher.pareto_front()] if multi_objective else None,
        "files": written,
    }
    dump(folder / "summary.json", record)
    written["summary"] = str(folder / "summary.json")
    return written
