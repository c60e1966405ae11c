"""Skills, the graph of which skill helps which, and the online Skill-it mixture update, as in
"Skill-it! A Data-Driven Skills Framework for Understanding and Training Language Models"
(Chen et al., 2023).

A skill is a domain of the data. The skills graph A is an n x n matrix: A[i, j] is how much
training on skill i lowers skill j's validation loss (the diagonal is a skill's effect on
itself). Online Skill-it (the paper's Algorithm 1) moves the mixture weights of the skills
towards those that help the skills whose loss is still high:
w_i <- w_i * exp(eta * sum_j A[i, j] * L_j), then renormalised.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from budgetlm.errors import UserError, closest

SKILL_GRAPH_FILE = "skill_graph.json"
"""Where a run keeps the skills graph it used (estimated or given), in the run directory."""
PREREQUISITES = "prerequisites"
"""`data.skill_graph` value: builtin:arith's declared prerequisites as the graph."""
PREREQUISITE_EDGE = 0.5
"""Weight of a prerequisite edge; the diagonal is 1 (the Skill-it code's convention for given
graphs: off-diagonal 1s become 0.5)."""
CURRICULA = ("none", "skillit")


@dataclass
class SkillGraph:
    """A[i, j]: how much training on skill i lowers skill j's loss; `source` says where it came
    from ("probes", "prerequisites", "config" or a file path)."""

    skills: list[str]
    matrix: np.ndarray
    source: str

    def columns(self, targets: Sequence[str]) -> np.ndarray:
        """The [n_skills, n_targets] block of A for the target skills' losses."""
        return self.matrix[:, [self.skills.index(t) for t in targets]]

    def to_json(self) -> dict[str, Any]:
        return {
            "skills": list(self.skills),
            "matrix": [[float(v) for v in row] for row in self.matrix],
            "source": self.source,
        }


def skillit_update(
    weights: np.ndarray, graph: np.ndarray, losses: np.ndarray, eta: float
) -> np.ndarray:
    """One online Skill-it step: w_i * exp(eta * sum_j graph[i, j] * losses[j]), normalised to
    sum to one (computed in log space, so large exponents do not overflow). Skills with weight
    0 keep it."""
    weights = np.asarray(weights, dtype=np.float64)
    with np.errstate(divide="ignore"):
        logits = np.log(weights) + eta * (np.asarray(graph) @ np.asarray(losses, dtype=np.float64))
    if not np.isfinite(logits).any():
        raise ValueError("skillit_update needs at least one skill with positive weight")
    new = np.exp(logits - logits[np.isfinite(logits)].max())
    return new / new.sum()


def check_skills(
    skills: Sequence[str] | None, domains: Sequence[str], key: str = "data.skills"
) -> list[str]:
    """The skill domains (default: every domain), checked to be domains of the data."""
    if skills is None:
        return sorted(domains)
    if not skills:
        raise UserError(f"{key} is empty; name the domains that are skills, or leave it unset")
    for s in skills:
        if s not in domains:
            raise UserError(
                f"{key} names '{s}'{closest(s, domains)}, which is not one of the "
                f"{'skills' if key.endswith('targets') else 'domains in the data'}: "
                f"{', '.join(sorted(domains))}"
            )
    if len(set(skills)) != len(skills):
        raise UserError(f"{key} names a domain twice: {list(skills)}")
    return sorted(skills)


def load_skill_graph(spec: Mapping[str, Any] | str, skills: Sequence[str]) -> SkillGraph:
    """The graph of `data.skill_graph`: a mapping {i: {j: A_ij}}, "prerequisites", or the path
    of a JSON file holding a mapping or {"skills": [...], "matrix": [[...]]} (the format of a
    run's skill_graph.json). Unknown skill names, a matrix that is not square or not over
    exactly the skills, and non-finite entries are UserErrors."""
    if isinstance(spec, str) and spec == PREREQUISITES:
        return prerequisite_graph(skills)
    if isinstance(spec, str):
        path = Path(spec).expanduser()
        if not path.is_file():
            raise UserError(
                f"data.skill_graph: no such file '{spec}'; give a JSON file, a mapping "
                f"{{skill: {{skill: weight}}}}, or '{PREREQUISITES}'"
            )
        try:
            values = json.loads(path.read_text(encoding="utf-8"))
        except (json.JSONDecodeError, UnicodeDecodeError) as e:
            raise UserError(f"data.skill_graph: '{path}' is not valid JSON ({e})") from None
        where, source = f"data.skill_graph ({path})", str(path)
    else:
        values, where, source = spec, "data.skill_graph", "config"
    if isinstance(values, dict) and "matrix" in values:
        return _graph_from_matrix(values, skills, where, source)
    if not isinstance(values, dict):
        raise UserError(
            f"{where} must be a mapping {{skill: {{skill: weight}}}} or "
            f'{{"skills": [...], "matrix": [[...]]}}, got {type(values).__name__}'
        )
    return _graph_from_mapping(values, skills, where, source)


def _graph_from_mapping(
    values: Mapping[str, Any], skills: Sequence[str], where: str, source: str
) -> SkillGraph:
    """{i: {j: A_ij}}: entries not given are 0, except the diagonal, which is 1 (a skill helps
    itself) unless given."""
    index = {s: k for k, s in enumerate(skills)}
    matrix = np.eye(len(skills))
    for i, row in values.items():
        _check_name(i, index, where)
        if not isinstance(row, dict):
            raise UserError(f"{where}.{i} must be a mapping {{skill: weight}}, got {row!r}")
        for j, value in row.items():
            _check_name(j, index, f"{where}.{i}")
            matrix[index[i], index[j]] = _number(value, f"{where}.{i}.{j}")
    return SkillGraph(list(skills), matrix, source)


def _graph_from_matrix(
    values: Mapping[str, Any], skills: Sequence[str], where: str, source: str
) -> SkillGraph:
    """{"skills": [...], "matrix": [[...]]}: the same skills as the data's, in any order."""
    names = values.get("skills")
    rows = values["matrix"]
    if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
        raise UserError(f'{where} has a "matrix" but no "skills" list naming its rows and columns')
    if not isinstance(rows, list) or any(
        not isinstance(r, list) or len(r) != len(rows) for r in rows
    ):
        raise UserError(f"{where}: the matrix must be square (a list of {len(names)} rows of "
                        f"{len(names)} numbers)")  # fmt: skip
    if len(rows) != len(names):
        raise UserError(
            f"{where}: the matrix is {len(rows)} x {len(rows)} but names {len(names)} skills"
        )
    for n in names:
        _check_name(n, {s: 0 for s in skills}, where)
    missing = sorted(set(skills) - set(names))
    if missing or len(set(names)) != len(names):
        raise UserError(
            f"{where} covers skills {names}, but the skills are {sorted(skills)}; give one row "
            "and column per skill"
            + (f" (missing: {', '.join(missing)})" if missing else " (a skill appears twice)")
        )
    given = np.array([[_number(v, f"{where}.matrix") for v in r] for r in rows], dtype=np.float64)
    order = [names.index(s) for s in skills]
    return SkillGraph(list(skills), given[np.ix_(order, order)], source)


def _check_name(name: str, index: Mapping[str, int], where: str) -> None:
    if name not in index:
        raise UserError(
            f"{where} names unknown skill '{name}'{closest(name, index)}; skills: "
            f"{', '.join(sorted(index))}"
        )


def _number(value: Any, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise UserError(f"{where} must be a finite number, got {value!r}")
    return float(value)


def prerequisite_graph(skills: Sequence[str]) -> SkillGraph:
    """builtin:arith's prerequisites as a graph: 1 on the diagonal, PREREQUISITE_EDGE from every
    skill to each skill that builds on it directly or through others (ancestors, so a chain whose
    middle skill is left out stays connected)."""
    from budgetlm.data.ingest.arith import SKILLS

    unknown = [s for s in skills if s not in SKILLS]
    if unknown:
        raise UserError(
            f"data.skill_graph '{PREREQUISITES}' needs builtin:arith skills as the skills, but "
            f"{', '.join(unknown)} {'is' if len(unknown) == 1 else 'are'} not (skills: "
            f"{', '.join(SKILLS)}); give the graph as a mapping or JSON file instead"
        )

    def ancestors(name: str) -> set[str]:
        direct = set(SKILLS[name].prerequisites)
        return direct.union(*(ancestors(p) for p in direct)) if direct else set()

    matrix = np.eye(len(skills))
    for j, target in enumerate(skills):
        for i, helper in enumerate(skills):
            if helper in ancestors(target):
                matrix[i, j] = PREREQUISITE_EDGE
    return SkillGraph(list(skills), matrix, PREREQUISITES)


def check_curriculum(
    curriculum: str, eta: float, every: int, tokens: int, probe_steps: int, has_schedule: bool
) -> None:
    """UserErrors for curriculum settings that cannot work."""
    if curriculum not in CURRICULA:
        raise UserError(
            f"data.curriculum must be one of {', '.join(CURRICULA)}, got '{curriculum}'"
            f"{closest(curriculum, CURRICULA)}"
        )
    if curriculum == "none":
        return
    if not eta >= 0 or not math.isfinite(eta):
        raise UserError(f"data.curriculum_eta must be >= 0 (a step size), got {eta}; e.g. 0.1")
    for key, value in (
        ("curriculum_every", every),
        ("curriculum_tokens", tokens),
        ("skill_probe_steps", probe_steps),
    ):
        if value < 1:
            raise UserError(f"data.{key} must be a positive number, got {value}")
    if has_schedule:
        raise UserError(
            "data.schedule and data.curriculum both set the mixture over time; use one of them"
        )
