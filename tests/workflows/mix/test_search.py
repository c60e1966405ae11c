import json
import re
import shutil

import numpy as np
import pytest

from budgetlm import api
from budgetlm.cli import main
from budgetlm.config import load_config
from budgetlm.data.store.dataset import PreparedDataset
from budgetlm.errors import UserError
from budgetlm.workflows import proxies
from budgetlm.workflows.mix.sampling import SearchSettings
from tests.conftest import TINY_MODEL, write_corpus

QUICK = SearchSettings(trials=5, candidates=2000, top_k=20, bootstrap=20)
TINY_FLAGS = [x for key, value in TINY_MODEL.items() for x in (f"--{key}", str(value))]


def proxy_config(prepared, **overrides):
    values = {
        "data.prepared": str(prepared),
        "data.sources": [],
        "budget": "6steps",
        **TINY_MODEL,
        "train.batch_size": 8,
        "train.micro_batch_size": 8,
        "eval.tokens_per_domain": 256,
        # one precision whatever the threads: the workers' 1-thread timings may choose another
        "train.precision": "fp32",
        **overrides,
    }
    return load_config(None, list(values.items()))


def quiet(_message):
    pass


@pytest.fixture(scope="module")
def search(tiny_prepared, tmp_path_factory):
    """A finished 5-trial search for the prose loss of tiny_prepared."""
    out = tmp_path_factory.mktemp("search") / "search"
    result = api.mix_search(proxy_config(tiny_prepared), "prose", out, QUICK, log=quiet)
    return out, result


def test_search_writes_a_usable_mixture(search):
    out, result = search
    on_disk = json.loads((out / "mix.json").read_text())
    assert on_disk["weights"] == pytest.approx(result["weights"])
    assert set(result["weights"]) == {"prose", "code"}
    assert sum(result["weights"].values()) == pytest.approx(1.0)
    assert result["target"] == {"prose": 1.0}
    trials = result["trials"]
    assert len(trials) == 5
    for trial in trials:  # the target loss is each proxy's final prose loss
        assert trial["target_loss"] == pytest.approx(trial["val_loss"]["prose"])
        assert sum(trial["weights"].values()) == pytest.approx(1.0)
        assert (out / "trials" / trial["trial"] / "metrics.jsonl").is_file()
    # each proxy trained with its trial's weights
    start = json.loads((out / "trials" / "trial_002" / "metrics.jsonl").read_text().split("\n")[0])
    assert start["weights"] == pytest.approx(trials[2]["weights"])
    # the chosen mixture lies within the range the trials covered
    low = min(t["weights"]["prose"] for t in trials)
    high = max(t["weights"]["prose"] for t in trials)
    assert low - 1e-9 <= result["weights"]["prose"] <= high + 1e-9
    unc = result["uncertainty"]
    assert unc["predicted_loss_sd"] >= 0
    lo, hi = unc["predicted_loss_interval_90"]
    assert lo <= hi
    assert set(unc["p_better_than"]) == {"natural", "uniform", "best_trial"}
    assert -1 <= result["fit"]["loo_spearman"] <= 1 or np.isnan(result["fit"]["loo_spearman"])
    assert result["fit"]["trials"] == 5
    assert result["references"]["best_trial"]["in_trial_range"] is True
    natural = result["references"]["natural"]["weights"]
    counts = PreparedDataset(result["data"]).token_counts("train")
    assert natural["prose"] == pytest.approx(counts["prose"] / sum(counts.values()))


def test_pretrain_trains_with_the_mixture(search, tiny_prepared, tmp_path, capsys):
    out, result = search
    run = tmp_path / "run"
    code = main(
        ["pretrain", "--prepared", str(tiny_prepared), "--mixture", str(out / "mix.json")]
        + ["--out", str(run), "--budget", "4steps", "--train.batch_size", "8"]
        + ["--train.micro_batch_size", "8", "--samples.prompts_per_domain", "0", *TINY_FLAGS]
    )
    assert code == 0, capsys.readouterr().err
    start = json.loads((run / "metrics.jsonl").read_text().split("\n")[0])
    assert start["weights"] == pytest.approx(result["weights"])
    assert load_config(run / "config.yaml").data.weights == pytest.approx(result["weights"])


def test_finished_proxies_are_not_trained_again(search, tiny_prepared, monkeypatch):
    out, result = search
    trained = []

    def train(config, log_file):
        trained.append(config.name)
        return original(config, log_file)

    original = proxies.train_proxy
    monkeypatch.setattr(proxies, "train_proxy", train)
    again = api.mix_search(proxy_config(tiny_prepared), "prose", out, QUICK, log=quiet)
    assert trained == []
    assert again["weights"] == pytest.approx(result["weights"])
    # more trials keep the first five mixtures and train only the sixth
    more = SearchSettings(trials=6, candidates=2000, top_k=20, bootstrap=20)
    grown = api.mix_search(proxy_config(tiny_prepared), "prose", out, more, log=quiet)
    assert trained == ["trial_005"]
    assert [t["weights"] for t in grown["trials"][:5]] == [t["weights"] for t in result["trials"]]


def test_a_search_with_other_settings_is_not_resumed(search, tiny_prepared):
    out, _ = search
    other = SearchSettings(trials=5, concentration=3.0, candidates=2000, top_k=20, bootstrap=20)
    with pytest.raises(UserError, match="other settings.*concentration"):
        api.mix_search(proxy_config(tiny_prepared), "prose", out, other, log=quiet)
    with pytest.raises(UserError, match="other settings.*train.lr"):
        api.mix_search(proxy_config(tiny_prepared, **{"train.lr": 1e-2}), "prose", out, QUICK)


def test_a_killed_proxy_is_started_over(search, tiny_prepared, tmp_path, monkeypatch):
    out = tmp_path / "search"
    shutil.copytree(search[0], out)
    killed = out / "trials" / "trial_001"
    shutil.rmtree(killed)
    killed.mkdir()
    (killed / "metrics.jsonl").write_text('{"type": "start", "step": 0}\n{"type": "tr')
    trained = []

    def train(config, log_file):
        trained.append(config.name)
        return original(config, log_file)

    original = proxies.train_proxy
    monkeypatch.setattr(proxies, "train_proxy", train)
    result = api.mix_search(proxy_config(tiny_prepared), "prose", out, QUICK, log=quiet)
    assert trained == ["trial_001"]
    assert proxies.finished_record(killed) is not None
    assert result["trials"][1]["target_loss"] == pytest.approx(
        search[1]["trials"][1]["target_loss"], abs=1e-3
    )


def test_parallel_workers_train_the_same_proxies(search, tiny_prepared, tmp_path):
    _, one = search  # trained in this process
    config = proxy_config(tiny_prepared)
    two = api.mix_search(config, "prose", tmp_path / "two", QUICK, workers=2, log=quiet)
    assert [t["weights"] for t in two["trials"]] == [t["weights"] for t in one["trials"]]
    losses_one = [t["target_loss"] for t in one["trials"]]
    losses_two = [t["target_loss"] for t in two["trials"]]
    assert losses_two == pytest.approx(losses_one, abs=1e-3)
    log = (tmp_path / "two" / "trials" / "trial_003.log").read_text()
    assert re.match(r"\d+ threads: \d+ cores shared by 2 processes", log)
    assert "\ntraining custom" in log


def test_cli_search_prepares_sources_once_and_prints_the_mixture(tmp_path, capsys):
    sources = write_corpus(tmp_path / "corpus")
    out = tmp_path / "search"
    code = main(
        ["mix", "search", "--data", *sources, "--target", "prose,code"]
        + ["--trials", "4", "--budget", "4steps", "--out", str(out), *TINY_FLAGS]
        + ["--train.batch_size", "8", "--train.micro_batch_size", "8"]
        + ["--eval.tokens_per_domain", "256", "--data.vocab_size", "300"]
        + ["--data.val_fraction", "0.2", "--data.cache_dir", str(tmp_path / "cache")]
    )
    printed = capsys.readouterr()
    assert code == 0, printed.err
    assert "predicted target loss" in printed.out and "mix.json" in printed.out
    result = json.loads((out / "mix.json").read_text())
    assert result["target"] == {"prose": 0.5, "code": 0.5}
    assert result["proxy"]["model"] == "custom"
    assert result["data"].startswith(str(tmp_path / "cache"))  # every proxy read this one copy
    for trial in result["trials"]:
        config = load_config(out / "trials" / trial["trial"] / "config.yaml")
        assert config.data.prepared == result["data"] and config.data.sources == []


def test_mix_without_a_command(capsys):
    assert main(["mix"]) == 2
    assert "mix needs a command" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--target", "poetry"], "unknown target domain 'poetry'"),
        (["--target", "prose", "--trials", "3"], "--trials 3 is too few"),
        (["--target", "prose", "--budget", "5m"], "needs a token or step budget"),
        (["--target", "prose", "--eval-only", "code"], "at least two domains"),
        (["--target", "prose", "--max-epochs", "lots"], "--max-epochs lots"),
        (["--target", "prose", "--regressor", "forest"], "unknown regressor 'forest'"),
    ],
)
def test_cli_search_bad_input(tiny_prepared, tmp_path, capsys, args, message):
    out = tmp_path / "search"
    code = main(["mix", "search", "--prepared", str(tiny_prepared), "--out", str(out), *args])
    err = capsys.readouterr().err
    assert code == 2 and message in err and err.count("\n") == 1
    assert not (out / "trials").exists()


def test_target_without_enough_validation_data(tiny_prepared, tmp_path, capsys):
    """A domain whose validation split is one short document cannot rank mixtures."""
    root = tmp_path / "corpus"
    (root / "one").mkdir(parents=True)
    for attempt in range(20):
        (root / "one" / "long.txt").write_text(f"attempt {attempt}: the dog ran. " * 30)
        (root / "one" / "short.txt").write_text("the dog")
        out = tmp_path / f"prepared{attempt}"
        api.prepare(
            [f"one={root / 'one'}", f"prose={tiny_prepared.parent / 'prose'}"],
            out,
            val_fraction=0.2,
            tokenizer=tiny_prepared / "tokenizer.json",
            log=quiet,
        )
        val_tokens = PreparedDataset(out).token_counts("val")["one"]
        if val_tokens <= 32:
            break
    code = main(
        ["mix", "search", "--prepared", str(out), "--target", "one", *TINY_FLAGS]
        + ["--out", str(tmp_path / "search")]
    )
    err = capsys.readouterr().err
    assert code == 2 and f"target domain 'one' has {val_tokens} validation tokens" in err
    assert "larger --val-fraction" in err


@pytest.mark.parametrize(
    ("weights", "message"),
    [
        ({"prose": 0.5, "web": 0.5}, "unknown domain 'web'"),
        ({"prose": 1.0}, "no weight for domain(s) code"),
        ({"prose": 0.5, "code": 0.6}, "sum to 1.1, not 1"),
    ],
)
def test_pretrain_with_a_bad_mixture(tiny_prepared, tmp_path, capsys, weights, message):
    path = tmp_path / "mix.json"
    path.write_text(json.dumps({"weights": weights}))
    run = tmp_path / "run"
    code = main(
        ["pretrain", "--prepared", str(tiny_prepared), "--mixture", str(path), "--out", str(run)]
        + ["--budget", "4steps", *TINY_FLAGS]
    )
    err = capsys.readouterr().err
    assert code == 2 and message in err and err.count("\n") == 1
    assert not run.exists()


def test_continue_splits_the_new_data_by_the_mixture(tmp_path, capsys):
    """The mixture weights the new domains; the replayed share stays the recipe's."""
    root = tmp_path / "corpus"
    prose, code = write_corpus(root)
    common = [*TINY_FLAGS, "--train.batch_size", "8", "--train.micro_batch_size", "8"]
    common += ["--data.cache_dir", str(tmp_path / "cache"), "--data.vocab_size", "300"]
    common += ["--data.val_fraction", "0.2", "--eval.tokens_per_domain", "256"]
    common += ["--samples.prompts_per_domain", "0"]
    parent = tmp_path / "parent"
    assert (
        main(["pretrain", "--data", prose, "--out", str(parent), "--budget", "4steps", *common])
        == 0
    )
    notes = root / "notes"
    notes.mkdir()
    for i in range(4):
        (notes / f"n{i}.txt").write_text(f"note {i}: the cat sat on the mat. " * 20)
    mix = tmp_path / "mix.json"
    mix.write_text(json.dumps({"weights": {"code": 0.25, "notes": 0.75}}))
    run = tmp_path / "continued"
    code_rc = main(
        ["continue", "--from", str(parent), "--data", code, f"notes={notes}"]
        + ["--mixture", str(mix), "--replay-ratio", "0.2", "--out", str(run)]
        + ["--budget", "4steps", *common]
    )
    assert code_rc == 0, capsys.readouterr().err
    start = json.loads((run / "metrics.jsonl").read_text().split("\n")[0])
    assert start["weights"] == pytest.approx({"code": 0.2, "notes": 0.6, "prose": 0.2})
