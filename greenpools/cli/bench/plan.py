"""Planning one backend's measurements and running them in this process."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from .contenders import Contender
from .environment import versions
from .scenarios import ScenarioFunc, Settings


@dataclass(frozen=True)
class Step:
    scenario: str
    contender: str
    rep: int

    @property
    def label(self) -> str:
        return f"{self.scenario.upper()} {self.contender} #{self.rep + 1}"


def plan(backend: str, scenarios: Sequence[str], settings: Settings,
         contenders: Sequence[Contender]) -> list[Step]:
    """Every measurement for one backend, repetitions interleaved (a scenario
    with ``<scenario>_backends`` in ``settings`` runs on those backends only)."""
    steps = []
    for scenario in scenarios:
        if backend not in settings.get(f"{scenario}_backends", (backend,)):
            continue
        reps = int(settings.get(f"{scenario}_reps") or settings["reps"])
        for rep in range(reps):
            for contender in contenders:
                if scenario in contender.scenarios and backend in contender.backends:
                    steps.append(Step(scenario, contender.id, rep))
    return steps


Emit = Callable[[dict[str, Any]], None]


def run_steps(backend: str, steps: Sequence[Step], settings: Settings,
              contenders: Sequence[Contender], funcs: dict[str, ScenarioFunc],
              emit: Emit) -> dict[str, Any]:
    """Run ``steps`` here; ``emit`` hears of each; returns the raw results."""
    by_id = {c.id: c for c in contenders}
    raw: dict[str, dict[str, list[Any]]] = {}
    errors: dict[str, str] = {}
    for done, step in enumerate(steps):
        emit({"event": "step", "backend": backend, "label": step.label, "done": done})
        key = f"{step.scenario}/{step.contender}"
        if key in errors:
            continue
        try:
            value = funcs[step.scenario](by_id[step.contender], settings)
        except Exception as exc:
            errors[key] = f"{type(exc).__name__}: {exc}"
            continue
        raw.setdefault(step.scenario, {}).setdefault(step.contender, []).append(value)
    emit({"event": "step", "backend": backend, "label": "done", "done": len(steps)})
    return {"backend": backend, "raw": raw, "errors": errors, "versions": versions()}
