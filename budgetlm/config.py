"""The run configuration tree: one dataclass per component, loadable from YAML and
overridable with dotted keys (`train.lr=3e-3`); the resolved tree is saved with every run."""

from __future__ import annotations

import contextlib
import dataclasses
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from budgetlm.data.config import DataConfig
from budgetlm.errors import UserError, closest
from budgetlm.evaluate.config import EvalConfig, SampleConfig
from budgetlm.io import write_text_atomic
from budgetlm.model.config import ModelConfig
from budgetlm.train.config import CheckpointConfig, TrainConfig
from budgetlm.train.guard import GuardConfig


@dataclass
class ContinualConfig:
    """Continual pre-training: which model to continue and how (workflows/continual/recipes.py)."""

    from_run: str | None = None
    """The model to train further: a budgetlm run directory, a Hugging Face causal LM folder
    (anything AutoModelForCausalLM loads), or a hub id ("org/name", downloaded only then)."""
    backend: str = "hf"
    """How a Hugging Face model is trained: 'hf' (transformers' own model, so it keeps its
    architecture) or 'native' (a Llama/Mistral/Qwen2 imported into budgetlm's decoder)."""
    trust_remote_code: bool = False
    """Allow a Hugging Face model whose code is not part of transformers (runs that code)."""
    recipe: str = "default"
    """naive, rewarm, replay, hq-subset, infinite, infinite-replay or default."""
    replay: list[str] | None = None
    """Sources to replay; default: the data the model was pre-trained on."""
    replay_ratio: float | None = None
    """Share of each batch drawn from the replayed data; default: the recipe's."""
    lr: float | None = None
    """Peak learning rate; default: the one the model was pre-trained with (3e-4 for a Hugging
    Face model, whose pre-training LR is not recorded)."""
    seq_len: int | None = None
    """Training context for a Hugging Face model; default: its maximum, capped at 1024 tokens.
    (A budgetlm run keeps its own seq_len.)"""
    subset_fraction: float | None = None
    """Share of the new data's documents to train on, chosen by the model's loss (lowest first);
    default: the recipe's (1.0 = all)."""
    extend_vocab: int = 0
    """Learn up to this many new tokens from the new data and add them to the model's tokenizer,
    embeddings and head (data/store/vocab_extension.py); 0: keep the parent's tokenizer."""
    vocab_init: str = "focus"
    """How the new rows start: focus, mean (of the old tokens each stood for) or random
    (model/vocab_resize.py). focus is the default: it gave the lowest new-language bits per
    byte and the least forgetting of the three in benchmarks/new_language.py."""
    vocab_warmup: float = 0.0
    """Share of the steps that train only the embeddings and head, before everything trains."""
    new_rows_lr_scale: float = 1.0
    """Learning-rate multiplier for the new tokens' embedding and head rows."""


@dataclass
class GrowthConfig:
    """Model growth (G_stack, Du et al., "Stacking Your Transformers: A Closer Look at Model
    Growth for Efficient LLM Pre-Training", 2024): a pre-training run starts from a smaller
    trained run's final model with its blocks repeated to model.n_layers."""

    from_run: str | None = None
    """A finished budgetlm run of the same widths whose n_layers divides model.n_layers (2x or
    more); the optimizer and the schedule start fresh."""


@dataclass
class RunConfig:
    """Everything a run needs; `budgetlm pretrain --config run.yaml` reproduces a run."""

    name: str | None = None
    """Run name; the run directory is `out_dir/name` (default: size and start time)."""
    out_dir: str = "runs"
    budget: str = "5m"
    """Compute budget: time (90s, 5m, 2h, 1h30m), tokens (50Mtok), FLOPs (1e15flop) or steps."""
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)
    checkpoint: CheckpointConfig = field(default_factory=CheckpointConfig)
    samples: SampleConfig = field(default_factory=SampleConfig)
    continual: ContinualConfig = field(default_factory=ContinualConfig)
    guard: GuardConfig = field(default_factory=GuardConfig)
    """Loss-spike and NaN guard: roll back and skip the offending batches (train/guard.py)."""
    growth: GrowthConfig = field(default_factory=GrowthConfig)
    """Start from a smaller trained run's blocks stacked depthwise (workflows/grow.py)."""


def to_dict(config: Any) -> dict[str, Any]:
    """The config tree as plain dicts (for YAML and JSON)."""
    return dataclasses.asdict(config)


def from_dict(cls: type, values: dict[str, Any], where: str = "") -> Any:
    """Build dataclass `cls` from nested dicts, rejecting unknown keys and wrong types."""
    if not isinstance(values, dict):
        raise UserError(
            f"config section '{where or 'top level'}' must be a mapping, got {values!r}"
        )
    hints = typing.get_type_hints(cls)
    names = [f.name for f in dataclasses.fields(cls)]
    kwargs = {}
    for key, value in values.items():
        path = f"{where}.{key}" if where else key
        if key not in names:
            raise UserError(
                f"unknown config key '{path}'{_closest_path(key, names, where)}; "
                f"valid keys here: {', '.join(names)}"
            )
        kwargs[key] = _coerce(hints[key], value, path)
    return cls(**kwargs)


def _closest_path(key: str, names: list[str], where: str) -> str:
    """A ' (did you mean --section.key?)' hint naming the full dotted key, as typed on the CLI."""
    hint = closest(key, names)
    if not hint:
        return ""
    match = hint.split("'")[1]
    return f" (did you mean --{where + '.' if where else ''}{match}?)"


def _coerce(hint: Any, value: Any, path: str) -> Any:
    """Check `value` against the type hint `hint`, converting ints to floats where allowed."""
    if dataclasses.is_dataclass(hint):
        return from_dict(hint, value if value is not None else {}, path)
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        args = typing.get_args(hint)
        if value is None and type(None) in args:
            return None
        errors = []
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _coerce(arg, value, path)
            except UserError as e:
                errors.append(str(e))
        raise UserError(errors[0])
    if origin is list:
        (item,) = typing.get_args(hint)
        if isinstance(value, str):
            value = [value]
        if not isinstance(value, list | tuple):
            raise UserError(f"config key '{path}' must be a list, got {value!r}")
        return [_coerce(item, v, f"{path}[{i}]") for i, v in enumerate(value)]
    if origin is dict:
        key_t, val_t = typing.get_args(hint)
        if not isinstance(value, dict):
            raise UserError(f"config key '{path}' must be a mapping, got {value!r}")
        return {_coerce(key_t, k, path): _coerce(val_t, v, f"{path}.{k}") for k, v in value.items()}
    if hint is float and isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    if hint is float and isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            pass
    if hint is int and isinstance(value, float) and value.is_integer():
        return int(value)
    if hint is str and isinstance(value, int | float) and not isinstance(value, bool):
        return str(value)
    if isinstance(value, hint) and not (hint is int and isinstance(value, bool)):
        return value
    raise UserError(f"config key '{path}' must be {hint.__name__}, got {value!r}")


def parse_override(text: str) -> tuple[str, Any]:
    """Split `train.lr=3e-3` into ('train.lr', 0.003); values are parsed as YAML scalars."""
    if "=" not in text:
        raise UserError(f"override '{text}' must look like key=value, e.g. train.lr=3e-3")
    key, raw = text.split("=", 1)
    try:
        value = yaml.safe_load(raw) if raw != "" else ""
    except yaml.YAMLError:
        value = raw
    if isinstance(value, str):  # YAML 1.1 reads "3e-3" as a string
        with contextlib.suppress(ValueError):
            value = float(value)
    return key.strip(), value


def apply_overrides(values: dict[str, Any], overrides: list[tuple[str, Any]]) -> dict[str, Any]:
    """Set dotted keys in a nested dict (validation happens in `from_dict`)."""
    for key, value in overrides:
        node = values
        parts = key.split(".")
        for part in parts[:-1]:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise UserError(f"config key '{key}': '{part}' is not a section")
        node[parts[-1]] = value
    return values


RESUME_SETTINGS = (
    "train.parallel",
    "train.device",
    "train.compile",
    "train.micro_batch_size",
    "train.activation_checkpointing",
)
"""Keys a resumed run may change: they decide how the steps are computed, not what they compute
(e.g. resume a sharded run with DDP, or on a machine with less memory)."""


def decided_by_machine(key: str, saved: Any, wanted: Any) -> bool:
    """Whether a saved run config's `saved` value of `key` is what a run decides by measuring the
    machine (job/decide.py) when asked for `wanted`: a precision, compilation or activation
    checkpointing left to auto, or evaluation tokens shrunk to fit evaluation's share of a time
    budget."""
    if key == "train.precision":
        return wanted == "auto"
    if key in ("train.compile", "train.activation_checkpointing"):
        return wanted is None
    if key == "eval.tokens_per_domain":
        return isinstance(saved, int) and isinstance(wanted, int) and saved < wanted
    return False


def load_config(path: str | Path | None = None, overrides: list[tuple[str, Any]] = ()) -> RunConfig:
    """Defaults, then the YAML file, then the overrides; unknown keys are errors."""
    values: dict[str, Any] = {}
    if path is not None:
        values = read_yaml(path)
    values = apply_overrides(values, list(overrides))
    try:
        return from_dict(RunConfig, values)
    except UserError as e:
        where = f"{path}: " if path is not None else ""
        raise UserError(f"{where}{e}") from None


def read_yaml(path: str | Path) -> dict[str, Any]:
    """A YAML mapping from a file, with a clear error when missing or malformed."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"config file {path} does not exist; check the path given to --config")
    try:
        values = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except (yaml.YAMLError, UnicodeDecodeError) as e:
        raise UserError(f"config file {path} is not valid YAML: {str(e).splitlines()[0]}") from None
    if not isinstance(values, dict):
        raise UserError(
            f"config file {path} must hold a mapping of keys, not {type(values).__name__}"
        )
    return values


def save_config(config: RunConfig, path: str | Path) -> None:
    """Write the config as YAML atomically (temp file + rename)."""
    write_text_atomic(path, yaml.safe_dump(to_dict(config), sort_keys=False))
