"""Skill curricula in a run ("Skill-it! A Data-Driven Skills Framework for Understanding and
Training Language Models", Chen et al., 2023): the skills graph, given or estimated by short
probe runs, and online Skill-it, which re-weights the sampler's skills every few steps from the
skills' validation losses. The maths is in data/skills.py; this module runs the model.

The losses come from a dedicated pass over the first `data.curriculum_tokens` validation tokens
of each target skill every `data.curriculum_every` steps, not from the run's evaluations: those
score every domain with `eval.tokens_per_domain` tokens at `eval.count` points, a resolution
chosen for the report; the curriculum needs more frequent, cheaper, skill-only measurements.
"""

from __future__ import annotations

import contextlib
import copy
import json
import math
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from budgetlm.budget.spec import Budget
from budgetlm.config import RunConfig
from budgetlm.data.feed.sampler import MixtureSampler
from budgetlm.data.feed.skills import (
    SKILL_GRAPH_FILE,
    SkillGraph,
    check_curriculum,
    check_skills,
    load_skill_graph,
    skillit_update,
)
from budgetlm.errors import UserError
from budgetlm.evaluate.loss import validation_loss
from budgetlm.io import Log, write_text_atomic
from budgetlm.train.distributed import Distributed, broadcast
from budgetlm.train.loop import Metrics
from budgetlm.train.optim import build_optimizer

Autocast = Callable[[], contextlib.AbstractContextManager]


@dataclass
class ProbeCost:
    """What estimating the graph spent: optimizer steps (of the run's batch size) and seconds."""

    steps: int
    seconds: float


@dataclass
class Probing:
    """How probe runs train and score: the run's batch, sequence length, clipping and precision
    (the LR is the optimizer's, the run's peak)."""

    batch_size: int
    micro_batch_size: int
    seq_len: int
    steps: int
    tokens: int
    eval_batch_size: int
    device: torch.device
    autocast: Autocast
    seed: int
    grad_clip: float = 1.0


def skill_losses(
    model: torch.nn.Module,
    val: Mapping[str, np.ndarray],
    skills: list[str],
    probing: Probing,
) -> dict[str, float]:
    """Mean validation loss of each skill on its first `probing.tokens` tokens."""
    return validation_loss(
        model,
        {s: val[s] for s in skills},
        probing.seq_len,
        probing.tokens,
        probing.eval_batch_size,
        probing.device,
        probing.autocast,
    )


def estimate_skill_graph(
    model: torch.nn.Module,
    train: Mapping[str, np.ndarray],
    val: Mapping[str, np.ndarray],
    skills: list[str],
    make_optimizer: Callable[[torch.nn.Module], torch.optim.Optimizer],
    probing: Probing,
    log: Log,
) -> tuple[SkillGraph, dict[str, Any]]:
    """Skill-it's graph from probe runs: a copy of `model` trains on skill i alone for
    `probing.steps` steps (constant peak LR); A[i, j] is skill j's relative validation-loss drop
    (L_j before - L_j after) / L_j before, and A is scaled so its largest entry is 1 (the scale
    of a given graph's diagonal). Returns the graph and the raw losses behind it."""
    before = skill_losses(model, val, skills, probing)
    after = {}
    for skill in skills:
        probe = copy.deepcopy(model)
        probe.train()
        optimizer = make_optimizer(probe)
        sampler = MixtureSampler({skill: train[skill]}, probing.seq_len, seed=probing.seed)
        for _ in range(probing.steps):
            batch = torch.from_numpy(sampler.next_batch(probing.batch_size)).to(probing.device)
            micros = batch.split(probing.micro_batch_size)
            for micro in micros:
                with probing.autocast():
                    loss = probe(micro[:, :-1], micro[:, 1:])
                (loss / len(micros)).backward()
            if probing.grad_clip > 0:
                torch.nn.utils.clip_grad_norm_(probe.parameters(), probing.grad_clip)
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
        after[skill] = skill_losses(probe, val, skills, probing)
        del probe, optimizer
        shown = ", ".join(f"{j} {before[j]:.3f}->{after[skill][j]:.3f}" for j in skills)
        log(f"skill probe {skill}: {shown}")
    drop = np.array([[(before[j] - after[i][j]) / before[j] for j in skills] for i in skills])
    if not np.isfinite(drop).all():
        raise UserError(
            "the skill-graph probe runs diverged (non-finite losses); give data.skill_graph, or "
            "lower train.lr"
        )
    scale = np.abs(drop).max()
    matrix = drop / scale if scale > 0 else drop
    return SkillGraph(list(skills), matrix, "probes"), {"loss_before": before, "loss_after": after}


def budget_after_probes(
    budget: Budget, cost: ProbeCost, tokens_per_step: int, flops_per_step: float
) -> Budget:
    """The budget left for training once the probe runs are paid (in the budget's own unit);
    UserError when they used it all."""
    spent = {
        "seconds": cost.seconds,
        "tokens": cost.steps * tokens_per_step,
        "flops": cost.steps * flops_per_step,
        "steps": cost.steps,
    }[budget.kind]
    left = Budget(budget.kind, budget.amount - spent)
    if left.amount <= 0 or (budget.kind != "seconds" and left.amount < spent / cost.steps):
        raise UserError(
            f"the skill-graph probe runs used {Budget(budget.kind, spent)} of the budget "
            f"{budget}, leaving nothing to train; raise --budget, lower data.skill_probe_steps, "
            "or give data.skill_graph"
        )
    return left


class SkillCurriculum:
    """Online Skill-it over the sampler's skill domains (the paper's Algorithm 1): before the
    first step and every `every` steps after, score the target skills' validation losses and
    set w_i <- w_i exp(eta sum_j A_ij L_j) on the skills (other domains keep their share). The
    weights live in the sampler's state, so checkpoints and rollbacks carry them; each update
    is a "mixture" record in metrics.jsonl."""

    def __init__(
        self,
        config: RunConfig,
        sampler: MixtureSampler,
        train: Mapping[str, np.ndarray],
        val: Mapping[str, np.ndarray],
        model: torch.nn.Module,
        device: torch.device,
        autocast: Autocast,
        dist: Distributed,
        sharded: bool = False,
    ) -> None:
        data = config.data
        self.skills = check_skills(data.skills, list(train))
        self.targets = check_skills(data.curriculum_targets, self.skills, "data.curriculum_targets")
        short = [s for s in self.targets if len(val.get(s, ())) < 2]
        if short:
            raise UserError(
                f"skill(s) {', '.join(short)} have no validation data for the curriculum to "
                "score; raise data.val_fraction or add data to them"
            )
        self.config, self.sampler, self.train, self.val = config, sampler, train, val
        self.model, self.dist, self.sharded = model, dist, sharded
        self.eta, self.every = data.curriculum_eta, data.curriculum_every
        self.graph = None if data.skill_graph is None else load_skill_graph(
            data.skill_graph, self.skills
        )  # fmt: skip
        self.probing = Probing(
            batch_size=config.train.batch_size,
            micro_batch_size=config.train.micro_batch_size,
            seq_len=config.model.seq_len,
            steps=data.skill_probe_steps,
            tokens=data.curriculum_tokens,
            eval_batch_size=config.eval.batch_size,
            device=device,
            autocast=autocast,
            seed=config.train.seed,
            grad_clip=config.train.grad_clip,
        )
        self.metrics: Metrics | None = None

    def start(
        self, run_dir: Path, step: int, budget: Budget, controller: Any, metrics: Metrics, log: Log
    ) -> Budget:
        """Load the run's graph (resume), or take the given one or estimate it and save it in
        the run directory; set the first weights in a new run. Returns the budget left for
        training (less the probe runs' cost when the graph was estimated); `controller` gives the
        tokens and FLOPs of one step."""
        self.metrics = metrics
        path = run_dir / SKILL_GRAPH_FILE
        cost = None
        if path.is_file():  # a resumed run keeps the graph (and budget share) it started with
            saved = json.loads(path.read_text(encoding="utf-8"))
            self.graph = load_skill_graph(str(path), self.skills)
            self.graph.source = saved.get("source", self.graph.source)
            if saved.get("probe_cost"):
                cost = ProbeCost(**saved["probe_cost"])
        else:
            record: dict[str, Any] = {}
            if self.graph is None:
                if self.sharded:
                    raise UserError(
                        "the skills graph cannot be estimated with train.parallel fsdp (the probe "
                        "runs copy the whole model); give data.skill_graph, e.g. the "
                        f"{SKILL_GRAPH_FILE} of a run with train.parallel ddp"
                    )
                t0 = time.perf_counter()
                log(f"estimating the skills graph: {self.probing.steps} probe steps per skill")
                self.graph, record = estimate_skill_graph(
                    self.model,
                    self.train,
                    self.val,
                    self.skills,
                    self._probe_optimizer,
                    self.probing,
                    log,
                )
                self.graph = broadcast(self.graph, self.dist)  # every rank uses rank 0's
                seconds = broadcast(time.perf_counter() - t0, self.dist)
                cost = ProbeCost(len(self.skills) * self.probing.steps, round(seconds, 3))
                record["probe_cost"] = vars(cost)
            if self.dist.is_main:
                write_text_atomic(path, json.dumps({**self.graph.to_json(), **record}) + "\n")
            self.metrics.write(
                "skill_graph",
                step=step,
                **self.graph.to_json(),
                targets=self.targets,
                probe_cost=vars(cost) if cost else None,
            )
        if cost is not None:
            budget = budget_after_probes(
                budget, cost, controller.tokens_per_step, controller.flops_per_step
            )
            log(
                f"skill probes used {cost.steps} steps ({cost.seconds:.1f}s); training for {budget}"
            )
        if step == 0:
            self.update(0)
        return budget

    def after_step(self, step: int) -> None:
        """The trainer's hook after each optimizer step: update every `every` steps."""
        if step % self.every == 0:
            self.update(step)

    def update(self, step: int) -> None:
        """Score the target skills and move the skills' weights (skipped, and said so, when a
        loss is not finite: the loss guard is about to roll the run back)."""
        assert self.graph is not None and self.metrics is not None, "start() sets them"
        t0 = time.perf_counter()
        losses = broadcast(
            skill_losses(self.model, self.val, self.targets, self.probing), self.dist
        )
        if not all(math.isfinite(v) for v in losses.values()):
            self.metrics.write("mixture", step=step, skipped="non-finite loss", val_loss=losses)
            return
        weights = dict(self.sampler.weights)
        mass = sum(weights[s] for s in self.skills)  # the skills' share; other domains keep theirs
        if mass <= 0:
            return  # every skill has weight 0: nothing to re-weight
        new = skillit_update(
            np.array([weights[s] / mass for s in self.skills]),
            self.graph.columns(self.targets),
            np.array([losses[t] for t in self.targets]),
            self.eta,
        )
        weights.update({s: float(w * mass) for s, w in zip(self.skills, new, strict=True)})
        self.sampler.set_weights(weights)
        self.metrics.write(
            "mixture",
            step=step,
            weights=dict(self.sampler.weights),
            val_loss=losses,
            seconds=round(time.perf_counter() - t0, 4),
        )

    def _probe_optimizer(self, model: torch.nn.Module) -> torch.optim.Optimizer:
        return build_optimizer(model, self.config.train)


def build_curriculum(
    config: RunConfig,
    sampler: MixtureSampler,
    train: Mapping[str, np.ndarray],
    val: Mapping[str, np.ndarray],
    model: torch.nn.Module,
    device: torch.device,
    autocast: Autocast,
    dist: Distributed,
    sharded: bool = False,
) -> SkillCurriculum | None:
    """The run's curriculum, or None for `data.curriculum: none` (after checking the setting)."""
    data = config.data
    check_curriculum(
        data.curriculum,
        data.curriculum_eta,
        data.curriculum_every,
        data.curriculum_tokens,
        data.skill_probe_steps,
        bool(data.schedule),
    )
    if data.curriculum == "none":
        return None
    return SkillCurriculum(config, sampler, train, val, model, device, autocast, dist, sharded)
