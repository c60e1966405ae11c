"""The training loop: optimizer steps until the budget's planned total, with periodic
evaluation and atomic checkpoints. What the budget allows is decided by the controller it is
given (budget/); where batches come from is decided by the sampler it is given (data/)."""

from __future__ import annotations

import contextlib
import copy
import math
import time
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch
from torch.nn.parallel import DistributedDataParallel

from budgetlm.errors import UserError
from budgetlm.evaluate.bpb import bits_per_byte
from budgetlm.evaluate.config import EvalConfig
from budgetlm.evaluate.loss import validation_loss
from budgetlm.train.checkpoint import (
    load_optimizer,
    load_weights,
    prune_checkpoints,
    save_checkpoint,
)
from budgetlm.train.config import CheckpointConfig, TrainConfig
from budgetlm.train.distributed import (
    Distributed,
    barrier,
    broadcast,
    mean_across,
    rank_slice,
)
from budgetlm.train.guard import GuardConfig, LossGuard
from budgetlm.train.objective import step_losses
from budgetlm.train.precision import autocast
from budgetlm.train.progress import Progress, format_duration
from budgetlm.train.ramps import batch_splits, context_splits
from budgetlm.train.sharding import (
    gather_optimizer,
    gather_weights,
    is_sharded,
    load_full_state,
    local_value,
    set_gradient_sync,
)


class BatchSource(Protocol):
    def next_batch(self, n: int, progress: float = 0.0) -> np.ndarray: ...
    def state_dict(self) -> dict: ...
    def load_state_dict(self, state: dict) -> None: ...


class Schedule(Protocol):
    def lr_factor(self, step: int, total: int) -> float: ...
    def can_replan(self, step: int, total: int) -> bool: ...
    def decay_start(self, total: int) -> int: ...


class Metrics(Protocol):
    """Where records go (run/records.py's MetricsLog writes metrics.jsonl)."""

    def write(self, kind: str, **fields: Any) -> None: ...
    def close(self) -> None: ...


class Controller(Protocol):
    """What keeps the run within its budget (budget/controller.py's BudgetController)."""

    def initial_total(self, elapsed: float = 0.0, reserve: float = 0.0) -> int: ...
    def observe_step(self, seconds: float) -> None: ...
    def observe_overhead(self, kind: str, seconds: float) -> None: ...
    def seconds_per_step(self) -> float | None: ...
    def overhead(self, kind: str, default: float = 0.0) -> float: ...
    def replan(self, steps_done: int, elapsed: float, reserve_seconds: float) -> int: ...
    def off_plan(self, steps_done: int, total: int, elapsed: float, reserve: float) -> bool: ...
    def used(self, steps_done: int, elapsed: float, total: int) -> float: ...
    def state_dict(self) -> dict: ...
    def load_state_dict(self, state: dict) -> None: ...


@dataclass
class TrainState:
    """Counters that a checkpoint restores; `seconds` is where the training time went."""

    step: int = 0
    tokens: int = 0
    total_steps: int = 0
    elapsed: float = 0.0
    evals_done: int = 0
    next_eval: int = 0
    checkpoints_done: int = 0
    pre_decay_saved: bool = False
    rollbacks: int = 0
    skipped_batches: int = 0
    seconds: dict[str, float] = field(
        default_factory=lambda: {"steps": 0.0, "eval": 0.0, "checkpoint": 0.0}
    )


@dataclass
class TrainResult:
    state: TrainState
    val_loss: dict[str, float]
    tokens_per_second: float


class StepRule(Protocol):
    """Something done around each optimizer step (train/new_rows.py): `before_step` once the
    gradients are summed and clipped, `after_step` right after the update."""

    def before_step(self, step: int, total_steps: int) -> None: ...

    def after_step(self) -> None: ...


class Trainer:
    """Runs optimizer steps with gradient accumulation, bf16 autocast and clipping."""

    def __init__(
        self,
        model: torch.nn.Module,
        optimizer: torch.optim.Optimizer,
        batches: BatchSource,
        schedule: Schedule,
        controller: Controller,
        val_streams: Mapping[str, np.ndarray],
        run_dir: Path,
        train: TrainConfig,
        evaluation: EvalConfig,
        checkpoint: CheckpointConfig,
        metrics: Metrics,
        progress: Progress,
        device: torch.device,
        seq_len: int,
        extra_state: Callable[[], dict[str, Any]] = dict,
        extra_evaluation: Callable[[torch.nn.Module], dict[str, Any]] | None = None,
        guard: GuardConfig | None = None,
        dist: Distributed | None = None,
        host_model: Callable[[], torch.nn.Module] | None = None,
        after_step: Callable[[int], None] | None = None,
        spent_seconds: float = 0.0,
        bytes_per_token: Mapping[str, float | None] | None = None,
        step_rule: StepRule | None = None,
    ) -> None:
        """`model` may be sharded with FSDP2 (train/sharding.py); `host_model` then builds an
        unsharded copy on the CPU, which checkpoints are written from and read into.
        `bytes_per_token` (of each domain's scored validation text) adds bits per byte to
        every evaluation. `step_rule` is called around each optimizer step.
        `spent_seconds` went to preparing the run and count against a time budget."""
        self.dist = dist or Distributed()
        world = self.dist.world_size
        if train.batch_size % (train.micro_batch_size * world):
            raise UserError(
                f"train.batch_size ({train.batch_size}) must be a multiple of "
                f"train.micro_batch_size ({train.micro_batch_size})"
                + (f" times the {world} processes" if world > 1 else "")
            )
        if train.precision not in ("bf16", "fp32"):
            raise UserError(f"train.precision must be 'bf16' or 'fp32', got '{train.precision}'")
        self.model, self.optimizer, self.batches = model, optimizer, batches
        self.sharded = is_sharded(model)
        if self.sharded and host_model is None:
            raise ValueError("a sharded model needs host_model to write and read checkpoints")
        self._host_factory, self._host = host_model, None
        self.ddp = (
            DistributedDataParallel(model) if self.dist.enabled and not self.sharded else None
        )
        wrapped = self.ddp or model
        self.forward = torch.compile(wrapped) if train.compile else wrapped
        # Until a compiled step has run, a failure to compile (forward or backward, e.g. no C++
        # compiler) falls back to this eager module: a slower run rather than a failed one.
        self._eager_fallback = wrapped if train.compile else None
        self.schedule, self.controller = schedule, controller
        self.val_streams = val_streams
        self.bytes_per_token = dict(bytes_per_token or {})
        self.step_rule = step_rule
        self.run_dir = Path(run_dir)
        self.cfg, self.eval_cfg, self.ckpt_cfg = train, evaluation, checkpoint
        self.metrics, self.progress = metrics, progress
        self.device, self.seq_len = device, seq_len
        self.extra_state = extra_state
        self.extra_evaluation = extra_evaluation
        # Called with the step number after each optimizer step but the last, before that step's
        # evaluation and checkpoint (e.g. to re-weight the data mixture; whatever it changes
        # must be in the batch source's state to be checkpointed and rolled back).
        self.after_step = after_step
        self.eval_fractions = evaluation.fractions()
        self.tokens_per_step = train.batch_size * seq_len
        self.state = TrainState()
        self.guard_cfg = guard or GuardConfig()
        self.guard = LossGuard(self.guard_cfg)
        self._window: list[torch.Tensor] = []  # per-step losses not yet checked by the guard
        self._loss_sum = torch.zeros(())  # training loss summed since the last logged record
        self._logged = (0, 0.0)  # (step, elapsed seconds) of the last logged record
        self._snapshot: dict[str, Any] | None = None
        self._started = 0.0
        self._saved_step = -1
        self._spent = spent_seconds
        self._replanned_off_schedule = False

    def autocast(self) -> contextlib.AbstractContextManager:
        """bf16 autocast on CPU (AMX) and CUDA; fp32 when asked."""
        return autocast(self.device, self.cfg.precision)

    def restore(self, checkpoint_dir: Path, state: dict[str, Any]) -> None:
        """Load weights, optimizer, sampler, budget controller and counters from a checkpoint."""
        if self.sharded:  # every rank reads the full state and keeps its shards of it
            host = self._host_factory()
            load_weights(checkpoint_dir, host)
            weights = host.state_dict()
            del host
            load_full_state(self.model, None, weights, None)

            def load(optimizer_state: dict[str, Any]) -> None:
                load_full_state(self.model, self.optimizer, None, optimizer_state)

            load_optimizer(checkpoint_dir, self.optimizer, load)
        else:
            load_weights(checkpoint_dir, self.model)
            load_optimizer(checkpoint_dir, self.optimizer)
        self.batches.load_state_dict(state["sampler"])
        self.controller.load_state_dict(state["planner"])
        self.guard.load_state_dict(state.get("guard", {}))
        self.state = TrainState(**state["train"])

    def run(self) -> TrainResult:
        """Train to the planned total; evaluate and checkpoint along the way and at the end."""
        s = self.state
        fresh = s.step == 0 and s.elapsed == 0
        self._started = time.perf_counter() - s.elapsed - (self._spent if fresh else 0.0)
        if s.step == 0:
            s.total_steps = broadcast(
                self.controller.initial_total(self._elapsed(), self._reserve()), self.dist
            )
            self._evaluate()
            self._replan()  # with the first evaluation's measured time
        self._take_snapshot()
        while True:
            self._train_to_total()
            if self._guard_passed():  # the last steps' losses, before the final checkpoint
                break
        val = self._evaluate()
        self._checkpoint(tags=["final"])
        self.progress.close()
        rate = s.tokens / max(1e-9, s.seconds["steps"])
        return TrainResult(state=s, val_loss=val, tokens_per_second=rate)

    def _train_to_total(self) -> None:
        """Optimizer steps until the planned total, with logging, evaluations and checkpoints;
        returns early after a guard rollback only to be called again."""
        s = self.state
        self._loss_sum = torch.zeros((), device=self.device)
        self._logged = (s.step, self._elapsed())
        while s.step < s.total_steps:
            t0 = time.perf_counter()
            lr = self.cfg.lr * self.schedule.lr_factor(s.step, s.total_steps)
            loss, grad_norm = self._optimizer_step(lr)
            self._window.append(loss)
            self._loss_sum += loss
            s.step += 1
            s.tokens += self.tokens_per_step
            step_time = time.perf_counter() - t0
            s.seconds["steps"] += step_time
            self.controller.observe_step(step_time)
            self._replan()
            if s.step == 1 or s.step % self.cfg.log_every == 0 or s.step == s.total_steps:
                if not self._guard_passed():
                    continue
                logged_at, logged_time = self._logged
                loss_sum = mean_across(self._loss_sum, self.dist)  # the global batch's loss
                mean_loss = loss_sum.item() / (s.step - logged_at)
                rate = (
                    (s.step - logged_at)
                    * self.tokens_per_step
                    / max(1e-9, self._elapsed() - logged_time)
                )
                self.metrics.write(
                    "train",
                    step=s.step,
                    tokens=s.tokens,
                    loss=mean_loss,
                    lr=lr,
                    grad_norm=float(grad_norm),
                    tokens_per_s=rate,
                    elapsed=self._elapsed(),
                    total_steps=s.total_steps,
                )
                self._show(mean_loss, rate)
                self._loss_sum.zero_()
                self._logged = (s.step, self._elapsed())
            if s.step < s.total_steps:
                if self.after_step is not None:
                    self.after_step(s.step)
                self._maybe_checkpoint_pre_decay()
                self._maybe_evaluate()
                self._maybe_checkpoint()
            checked = not self._window  # every loss so far passed the guard
            if (
                checked
                and s.step - self._snapshot["train"]["step"] >= self.guard_cfg.snapshot_every
            ):
                self._take_snapshot()

    def _guard_passed(self) -> bool:
        """Check the losses since the last check; on a bad one, roll back to the last snapshot
        and skip the batches served since, and return False."""
        if not self._window:
            return True
        window = mean_across(torch.stack(self._window), self.dist)  # every rank decides alike
        losses = window.tolist()  # one host sync per check, not per step
        first_step = self.state.step - len(losses) + 1
        self._window.clear()
        bad = self.guard.first_bad(losses)
        if bad is None:
            return True
        index, reason = bad
        if not self.guard_cfg.enabled:
            raise FloatingPointError(f"training {reason} at step {first_step + index}")
        self._roll_back(first_step + index, reason)
        return False

    def _take_snapshot(self) -> None:
        """Keep the current (checked, good) state in memory to roll back to."""
        self._snapshot = {
            "model": {k: v.detach().clone() for k, v in self.model.state_dict().items()},
            "optimizer": copy.deepcopy(self.optimizer.state_dict()),
            "sampler": copy.deepcopy(self.batches.state_dict()),
            "guard": self.guard.state_dict(),
            "train": asdict(self.state),
        }

    def _roll_back(self, bad_step: int, reason: str) -> None:
        """Restore the snapshot and skip the batches from it up to the bad step (PaLM's
        remedy); the wall time spent stays spent."""
        s, snap = self.state, self._snapshot
        assert snap is not None
        if s.rollbacks >= self.guard_cfg.max_rollbacks:
            raise FloatingPointError(
                f"training {reason} at step {bad_step}, after {s.rollbacks} rollbacks already: "
                f"the run keeps diverging; lower train.lr (now {self.cfg.lr:g}) or raise "
                "train.warmup_fraction"
            )
        self.model.load_state_dict(snap["model"])
        self.optimizer.load_state_dict(copy.deepcopy(snap["optimizer"]))
        self.batches.load_state_dict(copy.deepcopy(snap["sampler"]))
        self.guard.load_state_dict(snap["guard"])
        kept = {"seconds": s.seconds, "elapsed": s.elapsed}
        for key, value in {**snap["train"], **kept}.items():
            setattr(s, key, copy.deepcopy(value) if key != "seconds" else value)
        skip = bad_step - s.step
        progress = s.step / max(1, s.total_steps)
        for _ in range(skip):
            self.batches.next_batch(self.cfg.batch_size, progress)
        s.rollbacks += 1
        s.skipped_batches += skip
        self._loss_sum.zero_()
        self._logged = (s.step, self._elapsed())
        self.metrics.write(
            "rollback",
            step=bad_step,
            to_step=s.step,
            reason=reason,
            skipped_batches=skip,
        )
        self.progress.message(
            f"[{format_duration(self._elapsed())}] step {bad_step}: {reason}; rolled back to step "
            f"{s.step} and skipped the {skip} batches since"
        )
        self._take_snapshot()

    def _optimizer_step(self, lr: float) -> tuple[torch.Tensor, torch.Tensor]:
        """One scheduled step: this rank's share of the batch, forward and backward, clipping
        and the update; during a batch warm-up (train/ramps.py) the batch is spent on several
        updates of equal parts. Returns the batch's mean loss and the last gradient norm."""
        for group in self.optimizer.param_groups:  # AdamW groups may scale it (embeddings)
            group["lr"] = lr * group.get("lr_multiplier", 1.0)
        s = self.state
        progress = s.step / max(1, s.total_steps)
        batch = self.batches.next_batch(self.cfg.batch_size, progress)
        if self.dist.enabled:
            batch = rank_slice(batch, self.dist.rank, self.dist.world_size)
        batch = torch.from_numpy(batch).to(self.device, non_blocking=True)
        context = context_splits(progress, self.cfg.context_warmup, self.seq_len)
        parts = batch.chunk(batch_splits(progress, self.cfg.batch_warmup, len(batch)))
        total = torch.zeros((), device=self.device)
        for part in parts:
            total += self._gradients_of(part, context) / len(parts)
            grad_norm = self._update()
        return total, grad_norm

    def _gradients_of(self, batch: torch.Tensor, context: int) -> torch.Tensor:
        """`_accumulate_gradients`, falling back to eager once if an untried compiled model
        fails."""
        try:
            total = self._accumulate_gradients(batch, context)
        except Exception as e:  # noqa: BLE001 - any failure of an untried compiled model
            if self._eager_fallback is None:
                raise
            first = str(e).strip().splitlines()[0][:200] if str(e).strip() else type(e).__name__
            self.progress.message(
                f"torch.compile failed ({first}); training without it (train.compile false)"
            )
            self.optimizer.zero_grad(set_to_none=True)
            self.forward, self._eager_fallback = self._eager_fallback, None
            total = self._accumulate_gradients(batch, context)
        self._eager_fallback = None  # a compiled step ran: later errors are real errors
        return total

    def _update(self) -> torch.Tensor:
        """Clip the gradients, step the optimizer (inside the step rule), clear the gradients;
        the gradient norm before clipping."""
        s = self.state
        if self.cfg.grad_clip > 0:
            grad_norm = torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.cfg.grad_clip)
            grad_norm = local_value(grad_norm)
        else:
            grad_norm = torch.zeros(())
        if self.step_rule is not None:
            self.step_rule.before_step(s.step, s.total_steps)
        self.optimizer.step()
        if self.step_rule is not None:
            self.step_rule.after_step()
        self.optimizer.zero_grad(set_to_none=True)
        return grad_norm

    def _accumulate_gradients(self, batch: torch.Tensor, context: int = 1) -> torch.Tensor:
        """Forward and backward over the micro-batches of this rank's batch; the mean loss."""
        total = torch.zeros((), device=self.device)
        micros = batch.split(self.cfg.micro_batch_size)
        accum = len(micros)
        for i, micro in enumerate(micros):
            # Gradients are averaged across ranks once, on the last micro-batch's backward
            sync = i == len(micros) - 1
            if self.sharded:
                set_gradient_sync(self.model, sync)
            unsynced = self.ddp is not None and not sync
            with self.autocast(), self.ddp.no_sync() if unsynced else contextlib.nullcontext():
                loss, objective = step_losses(
                    self.forward,
                    micro,
                    self.cfg.sample_weighting,
                    self.cfg.sample_weighting_delta,
                    self.cfg.sample_weighting_temperature,
                    self.cfg.z_loss,
                    context,
                )
                (objective / accum).backward()
            total += loss.detach() / accum
        return total

    def _elapsed(self) -> float:
        return time.perf_counter() - self._started

    def _replan(self) -> None:
        """Re-plan the total while the schedule allows; past that, only when the run would miss a
        time budget by more than the budget controller tolerates (the LR then jumps a little)."""
        s = self.state
        free = self.schedule.can_replan(s.step, s.total_steps)
        if not free and not self.controller.off_plan(
            s.step, s.total_steps, self._elapsed(), self._reserve()
        ):
            return
        total = broadcast(
            self.controller.replan(s.step, self._elapsed(), self._reserve()), self.dist
        )
        if not free and total != s.total_steps and not self._replanned_off_schedule:
            self._replanned_off_schedule = True
            self.progress.message(
                f"[{format_duration(self._elapsed())}] step {s.step}: steps ran at a different "
                f"speed than planned; re-planned {s.total_steps} -> {total} steps to end on time"
            )
        s.total_steps = max(s.step, total)  # rank 0's clock decides for all

    def _reserve(self) -> float:
        """Seconds still needed for evaluations and checkpoints until the end of the run."""
        s = self.state
        evals_left = len(self.eval_fractions) - s.next_eval + 1
        every = self.ckpt_cfg.every
        ckpts_left = (max(0, math.ceil(1 / every) - 1 - s.checkpoints_done) if every > 0 else 0) + 1
        ckpts_left += int(self.ckpt_cfg.pre_decay and not s.pre_decay_saved)
        per_step = self.controller.seconds_per_step() or 0.0
        return (
            evals_left * self.controller.overhead("eval", per_step)
            + ckpts_left * self.controller.overhead("checkpoint", per_step)
            + self.controller.overhead("end", 0.0)
        )

    def _maybe_evaluate(self) -> None:
        s = self.state
        if self._eval_due() and self._guard_passed():
            while self._eval_due():  # several shares may have passed in one step
                s.next_eval += 1
            self._evaluate()
            self._replan()

    def _eval_due(self) -> bool:
        s = self.state
        # fractions are rounded to 6 digits (2/3 -> 0.666667): without the tolerance, 2/3 of 12
        # steps would be step 9, not 8
        return s.next_eval < len(self.eval_fractions) and s.step >= math.ceil(
            self.eval_fractions[s.next_eval] * s.total_steps - 1e-5
        )

    def _evaluate(self) -> dict[str, float]:
        """Validation loss per domain (and any extra evaluation); logged and returned."""
        s = self.state
        t0 = time.perf_counter()
        losses = validation_loss(
            self.model,
            self.val_streams,
            self.seq_len,
            self.eval_cfg.tokens_per_domain,
            self.eval_cfg.batch_size,
            self.device,
            self.autocast,
        )
        extra = self.extra_evaluation(self.model) if self.extra_evaluation else {}
        seconds = time.perf_counter() - t0
        s.seconds["eval"] += seconds
        s.evals_done += 1
        self.controller.observe_overhead("eval", seconds)
        bpb = bits_per_byte(losses, self.bytes_per_token)
        self.metrics.write(
            "eval",
            step=s.step,
            tokens=s.tokens,
            elapsed=self._elapsed(),
            val_loss=losses,
            **({"val_bpb": bpb} if bpb else {}),
            seconds=seconds,
            **extra,
        )
        shown = ", ".join(f"{d} {v:.3f}" for d, v in losses.items())
        self.progress.message(
            f"[{format_duration(self._elapsed())}] step {s.step}/{s.total_steps} val loss: {shown}"
        )
        return losses

    def _maybe_checkpoint(self) -> None:
        s, every = self.state, self.ckpt_cfg.every
        if every > 0 and s.step >= (s.checkpoints_done + 1) * every * s.total_steps:
            s.checkpoints_done += 1
            m = self.ckpt_cfg.keep_every
            tags = ["kept"] if m > 0 and s.checkpoints_done % m == 0 else []
            if self._saved_step != s.step:  # the pre-decay checkpoint may be this very step
                self._checkpoint(tags=tags)
                self._replan()

    def _maybe_checkpoint_pre_decay(self) -> None:
        s = self.state
        if (
            self.ckpt_cfg.pre_decay
            and not s.pre_decay_saved
            and s.step >= self.schedule.decay_start(s.total_steps)
        ):
            s.pre_decay_saved = True
            self._checkpoint(tags=["pre_decay"])

    def _checkpoint(self, tags: list[str]) -> None:
        s = self.state
        if not self._guard_passed():  # never save a state the guard would reject
            return
        t0 = time.perf_counter()
        s.elapsed = self._elapsed()
        state = {
            "tags": tags,
            "train": asdict(s),
            "sampler": self.batches.state_dict(),
            "planner": self.controller.state_dict(),
            "lr_factor": self.schedule.lr_factor(max(0, s.step - 1), s.total_steps),
            "guard": self.guard.state_dict(),
            **self.extra_state(),
        }
        if self.sharded:  # gathered on rank 0 and written in the format of an unsharded run
            model, optimizer = self.unsharded_model(), gather_optimizer(self.model, self.optimizer)
        else:  # DDP keeps model and optimizer identical on every rank
            model, optimizer = self.model, self.optimizer
        if self.dist.is_main:
            path = save_checkpoint(self.run_dir, s.step, model, optimizer, state)
            prune_checkpoints(self.run_dir, self.ckpt_cfg.keep_last)
        else:
            path = self.run_dir / "checkpoints" / f"step_{s.step:06d}"
        barrier(self.dist)  # no rank runs ahead of a checkpoint being written
        self._saved_step = s.step
        seconds = time.perf_counter() - t0
        s.seconds["checkpoint"] += seconds
        self.controller.observe_overhead("checkpoint", seconds)
        self.metrics.write(
            "checkpoint",
            step=s.step,
            path=str(path.relative_to(self.run_dir)),
            tags=tags,
            seconds=seconds,
        )

    def unsharded_model(self) -> torch.nn.Module | None:
        """The model with all its weights, for checkpoints and samples: the model itself, or for
        a sharded one a CPU copy gathered on rank 0 (None on the other ranks; every rank must
        call this, as gathering is a collective)."""
        if not self.sharded:
            return self.model
        weights = gather_weights(self.model)
        if not self.dist.is_main:
            return None
        if self._host is None:
            self._host = self._host_factory()
        self._host.load_state_dict(weights)
        return self._host

    def _show(self, loss: float, rate: float) -> None:
        s = self.state
        elapsed = self._elapsed()
        used = self.controller.used(s.step, elapsed, s.total_steps)
        per_step = self.controller.seconds_per_step() or 0.0
        eta = (s.total_steps - s.step) * per_step + self._reserve()
        self.progress.update(s.step, s.total_steps, loss, rate, used, eta)
