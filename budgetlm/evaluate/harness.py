"""The bridge to EleutherAI's lm-evaluation-harness: a run's model and Tokenizer in memory,
scored as lm-eval's Hugging Face model scores a causal LM, no conversion.

`HarnessScorer` answers lm-eval's three request kinds with plain torch (it needs no lm_eval);
`harness_model` wraps it in an `lm_eval.api.model.LM`; `resolve_tasks` checks task names early
and `run_tasks` runs `lm_eval.simple_evaluate` and keeps the per-task metrics.
"""

from __future__ import annotations

import contextlib
import difflib
import functools
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from budgetlm.data.store.tokenizer import Tokenizer
from budgetlm.errors import UserError
from budgetlm.io import Log
from budgetlm.model.build import LanguageModel

INSTALL_HINT = 'pip install -e ".[eval]"'
DEFAULT_MAX_GEN_TOKS = 256
"""lm-eval's default cap on generated tokens when a task sets none."""
LOGITS_PER_BATCH = 2**27
"""Cap on batch rows x positions x vocabulary per forward pass (the full logits are built)."""

Autocast = Callable[[], contextlib.AbstractContextManager]


class HarnessScorer:
    """Log-likelihoods and greedy generations of a model (either backend), tokenized as
    lm-eval's HF model does: the tokenizer's BOS (if any) starts every context, a
    continuation's tokens are those of encode(context + continuation) after the context's,
    inputs are left-truncated to seq_len."""

    def __init__(
        self,
        model: LanguageModel,
        tokenizer: Tokenizer,
        device: torch.device,
        autocast: Autocast = contextlib.nullcontext,
        batch_size: int = 16,
    ) -> None:
        self.model = model.to(device).eval()
        self.tokenizer = tokenizer
        self.device = device
        self.autocast = autocast
        self.batch_size = batch_size
        self.seq_len = model.config.seq_len
        bos = tokenizer.bos_id
        self.prefix_id = bos if bos is not None else tokenizer.eos_id
        """What an empty context is: BOS, else EOS (lm-eval's prefix_token_id)."""

    def encode(self, text: str) -> list[int]:
        """Token ids of a context: BOS (when the tokenizer has one), then the text's."""
        ids = self.tokenizer.encode(text)
        return ids if self.tokenizer.bos_id is None else [self.tokenizer.bos_id, *ids]

    def encode_pair(self, context: str, continuation: str) -> tuple[list[int], list[int]]:
        """Context and continuation ids as lm-eval's TemplateLM makes them: trailing spaces of
        the context move to the continuation, the continuation's ids are those of the whole text
        after the context's, and an empty context is the prefix token."""
        if context:
            stripped = context.rstrip()
            context, continuation = stripped, context[len(stripped) :] + continuation
        if context:
            context_ids = self.encode(context)
            return context_ids, self.encode(context + continuation)[len(context_ids) :]
        ids = self.tokenizer.encode(continuation)
        if ids and ids[0] == self.prefix_id:
            return ids[:1], ids[1:]
        return [self.prefix_id], ids

    @torch.no_grad()
    def loglikelihood(self, pairs: Sequence[tuple[str, str]]) -> list[tuple[float, bool]]:
        """For each (context, continuation): the summed log-probability of the continuation's
        tokens given the context, and whether greedy decoding would produce exactly them."""
        requests = []
        for context, continuation in pairs:
            context_ids, continuation_ids = self.encode_pair(context, continuation)
            requests.append((context_ids + continuation_ids, len(continuation_ids)))
        return self.score(requests)

    @torch.no_grad()
    def loglikelihood_rolling(self, texts: Sequence[str]) -> list[float]:
        """Log-probability of each whole text given the prefix token, scored in non-overlapping
        windows of up to seq_len predictions, each with as much preceding context as fits (the
        last window a full seq_len), as lm-eval's HF model does for perplexity tasks."""
        requests = []
        for text in texts:
            ids = self.tokenizer.encode(text)
            requests.append(([self.prefix_id, *ids], len(ids)))
        return [total for total, _ in self.score(requests)]

    @torch.no_grad()
    def score(self, requests: Sequence[tuple[list[int], int]]) -> list[tuple[float, bool]]:
        """For each (ids, k): the summed log-probability of the last k ids (each conditioned on
        up to seq_len preceding ids, in windows of at most seq_len predictions) and whether each
        is the argmax. Equal model inputs are run once (multiple-choice answers of one token)."""
        length = self.seq_len
        windows: dict[tuple[int, ...], list[tuple[int, list[int]]]] = {}
        for index, (ids, k) in enumerate(requests):
            if k > len(ids) - 1:
                raise ValueError(f"cannot score {k} of {len(ids)} tokens: the first has no context")
            for start in range(len(ids) - k, len(ids), length):
                end = min(start + length, len(ids))
                inputs = tuple(ids[max(0, end - 1 - length) : end - 1])
                windows.setdefault(inputs, []).append((index, ids[start:end]))
        totals = [0.0] * len(requests)
        greedy = [True] * len(requests)
        for batch in self._batches(sorted(windows, key=len, reverse=True)):
            logits = self._forward(batch)
            for row, inputs in enumerate(batch):
                scored = windows[inputs]
                span = max(len(targets) for _, targets in scored)
                logprobs = torch.log_softmax(
                    logits[row, len(inputs) - span : len(inputs)].float(), dim=-1
                )
                for index, targets in scored:
                    rows = logprobs[span - len(targets) :]
                    target = torch.tensor(targets, device=rows.device)
                    totals[index] += rows.gather(1, target[:, None]).sum().item()
                    greedy[index] &= bool((rows.argmax(-1) == target).all())
        return list(zip(totals, greedy, strict=True))

    @torch.no_grad()
    def generate_until(self, requests: Sequence[tuple[str, list[str], int]]) -> list[str]:
        """For each (context, stop strings, max new tokens): the greedy continuation, up to the
        first stop string (excluded), EOS, or the token cap. Contexts slide: each step sees the
        last seq_len tokens. Requests of similar length are decoded together, one token per
        forward pass for the whole batch."""
        prompts = [self.encode(context) or [self.prefix_id] for context, _, _ in requests]
        order = sorted(range(len(requests)), key=lambda i: -len(prompts[i]))
        rows = self.seq_len * self.model.config.vocab_size
        size = max(1, min(self.batch_size, LOGITS_PER_BATCH // rows))
        results = [""] * len(requests)
        for start in range(0, len(order), size):
            chunk = order[start : start + size]
            new: dict[int, list[int]] = {i: [] for i in chunk}
            active = [i for i in chunk if requests[i][2] > 0]
            while active:
                inputs = [tuple((prompts[i] + new[i])[-self.seq_len :]) for i in active]
                logits = self._forward(inputs)
                last = torch.tensor([len(x) - 1 for x in inputs], device=logits.device)
                next_ids = logits[torch.arange(len(inputs), device=logits.device), last]
                still = []
                for i, token in zip(active, next_ids.argmax(-1).tolist(), strict=True):
                    if token == self.tokenizer.eos_id:
                        continue
                    new[i].append(token)
                    stops, cap = requests[i][1], requests[i][2]
                    text = self.tokenizer.decode(new[i])
                    if len(new[i]) < cap and not any(s and s in text for s in stops):
                        still.append(i)
                active = still
            for i in chunk:
                results[i] = cut_at_stops(self.tokenizer.decode(new[i]), requests[i][1])
        return results

    def _batches(self, inputs: list[tuple[int, ...]]):
        """Consecutive groups of at most batch_size inputs (longest first) whose padded logits
        stay under LOGITS_PER_BATCH elements."""
        vocab = self.model.config.vocab_size
        batch: list[tuple[int, ...]] = []
        for x in inputs:
            width = len(batch[0]) if batch else len(x)
            if batch and (
                len(batch) == self.batch_size or (len(batch) + 1) * width * vocab > LOGITS_PER_BATCH
            ):
                yield batch
                batch = []
            batch.append(x)
        if batch:
            yield batch

    def _forward(self, inputs: Sequence[Sequence[int]]) -> torch.Tensor:
        """Logits [B, T, V] of right-padded inputs: causal attention keeps every real position's
        logits independent of the padding after it."""
        width = max(len(x) for x in inputs)
        batch = torch.zeros(len(inputs), width, dtype=torch.long)
        for row, x in enumerate(inputs):
            batch[row, : len(x)] = torch.tensor(x, dtype=torch.long)
        with self.autocast():
            return self.model(batch.to(self.device))


def cut_at_stops(text: str, stops: Sequence[str]) -> str:
    """`text` up to the first occurrence of each stop string in turn (as lm-eval cuts)."""
    for stop in stops:
        if stop:
            text = text.split(stop)[0]
    return text


def harness_model(scorer: HarnessScorer, log: Log = print) -> Any:
    """`scorer` as an `lm_eval.api.model.LM`, to pass to `lm_eval.simple_evaluate(model=...)`."""
    return _lm_class()(scorer, log)


@functools.cache
def _lm_class() -> type:
    """The LM subclass, defined on first use so that importing this module needs no lm_eval."""
    from lm_eval.api.model import LM

    class BudgetlmLM(LM):
        """A budgetlm model + Tokenizer answering lm-eval's requests (greedy generation)."""

        def __init__(self, scorer: HarnessScorer, log: Log) -> None:
            super().__init__()
            self.scorer = scorer
            self._log = log
            self._warned_sampling = False
            self.answered = 0
            """Requests answered so far (0: a failure came from lm-eval's task loading)."""

        @property
        def max_length(self) -> int:
            return self.scorer.seq_len

        @property
        def tokenizer_name(self) -> str:
            return "budgetlm"

        def loglikelihood(self, requests, disable_tqdm: bool = False) -> list[tuple[float, bool]]:
            self.answered += len(requests)
            return self.scorer.loglikelihood([tuple(r.args) for r in requests])

        def loglikelihood_rolling(self, requests, disable_tqdm: bool = False) -> list[float]:
            self.answered += len(requests)
            return self.scorer.loglikelihood_rolling([r.args[0] for r in requests])

        def generate_until(self, requests, disable_tqdm: bool = False) -> list[str]:
            self.answered += len(requests)
            parsed = []
            for request in requests:
                context, kwargs = request.args[0], dict(request.args[1] or {})
                if kwargs.get("do_sample") and not self._warned_sampling:
                    self._log("lm-eval asked for sampling; this model decodes greedily")
                    self._warned_sampling = True
                until = kwargs.get("until") or []
                until = [until] if isinstance(until, str) else list(until)
                cap = next(
                    (
                        int(kwargs[key])
                        for key in ("max_gen_toks", "max_new_tokens", "max_tokens")
                        if kwargs.get(key) is not None
                    ),
                    DEFAULT_MAX_GEN_TOKS,
                )
                parsed.append((context, until, cap))
            return self.scorer.generate_until(parsed)

    return BudgetlmLM


@dataclass
class TaskSelection:
    """Checked lm-eval task names (or task YAML files) and the task manager that knows them."""

    specs: list[str]
    manager: Any


def resolve_tasks(tasks: Sequence[str]) -> TaskSelection:
    """Check that lm-eval is installed and knows every task (a registered name, a glob such as
    `arc_*`, or a task YAML file) before any model work; UserError otherwise, with the closest
    names. Indexing lm-eval's own tasks takes seconds, so it is skipped when all are files."""
    try:
        from lm_eval.tasks import TaskManager
    except ImportError:
        raise UserError(
            f"lm-evaluation-harness tasks need the lm_eval package; install it with {INSTALL_HINT}"
        ) from None
    tasks = [t.strip() for t in tasks if t.strip()]
    if not tasks:
        raise UserError("--tasks is empty; give lm-eval task names, e.g. --tasks arc_easy,piqa")
    files = [t for t in tasks if _is_task_file(t)]
    for t in tasks:
        if t.endswith((".yaml", ".yml")) and t not in files:
            raise UserError(f"task file {t} not found; check the path in --tasks")
    if len(files) == len(tasks):
        return TaskSelection(tasks, TaskManager(include_defaults=False))
    manager = TaskManager()
    known = set(manager.all_tasks)
    specs, unknown = [], []
    for t in tasks:
        if t in files or t in known:
            specs.append(t)
        elif any(c in t for c in "*?[") and (matched := manager.match_tasks([t])):
            specs.extend(m for m in matched if m not in specs)
        else:
            unknown.append(t)
    if unknown:
        hints = []
        for t in unknown:
            close = difflib.get_close_matches(t, manager.all_tasks, n=3, cutoff=0.6)
            hints.append(f"'{t}'" + (f" (closest: {', '.join(close)})" if close else ""))
        raise UserError(
            f"lm-eval has no task {', '.join(hints)}; `lm-eval ls tasks` lists them, or pass "
            "the path of a task YAML file"
        )
    return TaskSelection(specs, manager)


def run_tasks(
    scorer: HarnessScorer,
    selection: TaskSelection,
    limit: int | None = None,
    log: Log = print,
) -> dict[str, dict[str, Any]]:
    """Run the selected lm-eval tasks on the model in memory (zero-shot unless a task says
    otherwise); per task its metrics ({"acc": 0.61, "acc_stderr": 0.02, ...}, lm-eval's filter
    suffix dropped when it is "none") and the number of items scored."""
    import lm_eval

    model = harness_model(scorer, log)
    try:
        results = lm_eval.simple_evaluate(
            model=model,
            tasks=list(selection.specs),
            limit=limit,
            task_manager=selection.manager,
            log_samples=False,
        )
    except Exception as e:
        if model.answered:  # the model ran: not a task loading problem
            raise
        raise UserError(
            f"lm-eval could not load the task(s) {', '.join(selection.specs)}: "
            f"{type(e).__name__}: {e}; fix: hub datasets need the network (or a Hugging Face "
            "datasets cache that holds them), a task YAML file valid dataset keys"
        ) from e
    counts = results.get("n-samples", {})
    out = {}
    for task, metrics in results["results"].items():
        values = {}
        for key, value in metrics.items():
            if key == "sample_len" or not isinstance(value, int | float):
                continue  # the item count is "items"; names and aliases are strings
            name, _, kind = key.partition(",")
            values[name if kind in ("", "none") else key] = value
        if task in counts:
            values["items"] = counts[task].get("effective", counts[task].get("original"))
        out[task] = values
    return out


def _is_task_file(spec: str) -> bool:
    return spec.endswith((".yaml", ".yml")) and Path(spec).expanduser().is_file()
