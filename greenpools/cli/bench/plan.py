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
    #: One part of a scenario measured in parts (a sweep's point), or "".
    part: str = ""

    @property
    def label(self) -> str:
        part = f" {self.part}" if self.part else ""
        return f"{self.scenario.upper()}{part} {self.contender} #{self.rep + 1}"


def plan(backend: str, scenarios: Sequence[str], settings: Settings,
         contenders: Sequence[Contender]) -> list[Step]:
    """Every measurement for one backend, repetitions interleaved (a scenario
    with ``<scenario>_backends`` in ``settings`` runs on those backends only).

    A scenario with ``<scenario>_parts`` in ``settings`` (the sweep's
    points) is measured part by part, each part by every contender in
    turn, the order reversed from one part and one round to the next: so
    the figures compared are taken seconds apart, and neither side always
    runs first.
    """
    steps: list[Step] = []
    for scenario in scenarios:
        if backend not in settings.get(f"{scenario}_backends", (backend,)):
            continue
        reps = int(settings.get(f"{scenario}_reps") or settings["reps"])
        ids = [c.id for c in contenders
               if scenario in c.scenarios and backend in c.backends]
        parts = list(settings.get(f"{scenario}_parts") or [])
        for rep in range(reps):
            if not parts:
                steps.extend(Step(scenario, c, rep) for c in ids)
            for n, part in enumerate(parts):
                order = ids if (rep + n) % 2 == 0 else ids[::-1]
                steps.extend(Step(scenario, c, rep, part) for c in order)
    return steps


Emit = Callable[[dict[str, Any]], None]


def run_steps(backend: str, steps: Sequence[Step], settings: Settings,
              contenders: Sequence[Contender], funcs: dict[str, ScenarioFunc],
              emit: Emit) -> dict[str, Any]:
    """Run ``steps`` here; ``emit`` hears of each; returns the raw results:
    per scenario and contender, one value per round (for a scenario measured
    in parts, the parts of a round merged into one dict)."""
    by_id = {c.id: c for c in contenders}
    raw: dict[str, dict[str, list[Any]]] = {}
    errors: dict[str, str] = {}
    for done, step in enumerate(steps):
        emit({"event": "step", "backend": backend, "label": step.label, "done": done})
        key = f"{step.scenario}/{step.contender}"
        if key in errors:
            continue
        part = {f"{step.scenario}_part": step.part} if step.part else {}
        try:
            value = funcs[step.scenario](by_id[step.contender], {**settings, **part})
        except Exception as exc:
            where = f"{step.part}: " if step.part else ""
            errors[key] = f"{where}{type(exc).__name__}: {exc}"
            _drop_round(raw, step)  # its other parts alone would not be a round
            continue
        rounds = raw.setdefault(step.scenario, {}).setdefault(step.contender, [])
        if step.part and len(rounds) > step.rep:
            rounds[step.rep].update(value)
        else:
            rounds.append(value)
    emit({"event": "step", "backend": backend, "label": "done", "done": len(steps)})
    return {"backend": backend, "raw": raw, "errors": errors, "versions": versions()}


def _drop_round(raw: dict[str, dict[str, list[Any]]], step: Step) -> None:
    """Forget the parts of ``step``'s round measured before it failed."""
    by_contender = raw.get(step.scenario, {})
    rounds = by_contender.get(step.contender, [])
    if step.part and len(rounds) > step.rep:
        del rounds[step.rep]
        if not rounds:
            del by_contender[step.contender]
            if not by_contender:
                del raw[step.scenario]
