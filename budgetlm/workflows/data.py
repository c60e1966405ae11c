"""Open the data a command trains or evaluates on: a prepared dataset directory, or raw
sources prepared (and cached) on first use, checked against the model's tokenizer."""

from __future__ import annotations

from pathlib import Path

from budgetlm.config import RunConfig
from budgetlm.data.prepare.cache import prepare_cached
from budgetlm.data.store.dataset import PreparedDataset
from budgetlm.data.store.manifest import MANIFEST_FILE
from budgetlm.data.store.tokenizer import Tokenizer
from budgetlm.errors import UserError
from budgetlm.io import Log
from budgetlm.run.records import start_record


def open_data(config: RunConfig, tokenizer: Path | None, log: Log) -> PreparedDataset:
    """The prepared dataset of config.data (prepared and cached from its sources if needed),
    tokenized with `tokenizer` when given."""
    data = config.data
    if data.prepared:
        dataset = PreparedDataset(data.prepared)
        if (
            tokenizer is not None
            and dataset.tokenizer.fingerprint != Tokenizer.load(tokenizer).fingerprint
        ):
            raise UserError(
                f"the prepared dataset {data.prepared} was tokenized with another tokenizer than "
                f"the model's ({tokenizer}); prepare it with `budgetlm prepare --tokenizer "
                f"{tokenizer} ...` or pass the raw sources with --data"
            )
        return dataset
    if not data.sources:
        raise UserError("no training data: pass --data SOURCE... or --prepared DIR")
    path = prepare_cached(
        data.sources,
        data.vocab_size,
        data.val_fraction,
        data.text_field,
        data.seed,
        data.cache_dir,
        log,
        tokenizer=tokenizer,
        cleaning=data.clean,
    )
    return PreparedDataset(path)


def trained_on(run_dir: str | Path) -> dict[str, str] | None:
    """The prepared dataset directory of each domain a run trained on (its start record), or
    None when the run recorded none."""
    start = start_record(run_dir)
    used = start.get("data") if start else None
    return used if isinstance(used, dict) and used else None


def is_prepared_dir(path: str | Path) -> bool:
    """Whether a prepared dataset is still at `path` (it may have been deleted since)."""
    return (Path(path) / MANIFEST_FILE).is_file()


def gone_dirs(used: dict[str, str]) -> list[str]:
    """The prepared dataset directories of `used` (domain -> directory) no longer there."""
    return sorted({d for d in used.values() if not is_prepared_dir(d)})


def open_by_domain(used: dict[str, str]) -> dict[str, PreparedDataset]:
    """Each domain's prepared dataset, every directory opened once."""
    opened = {path: PreparedDataset(path) for path in sorted(set(used.values()))}
    return {domain: opened[path] for domain, path in used.items()}
