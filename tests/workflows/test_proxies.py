import json

import pytest

from budgetlm.config import load_config
from budgetlm.machine.threads import PROCESSES_ENV
from budgetlm.workflows import proxies
from budgetlm.workflows.proxies import differences, run_proxies, train_proxy, worker_threads


def test_equal_trees_have_no_differences():
    tree = {"train": {"lr": 3e-3, "betas": [0.9, 0.95]}, "name": "a", "budget": "5m"}
    assert differences(tree, json.loads(json.dumps(tree))) == []


def test_differences_are_dotted_keys_in_sorted_order():
    saved = {"train": {"lr": 1e-3, "seed": 0, "opt": {"beta": 0.9}}, "budget": "5m", "name": "x"}
    wanted = {"train": {"lr": 3e-3, "seed": 0, "opt": {"beta": 0.95}}, "budget": "6m", "name": "x"}
    assert differences(saved, wanted) == ["budget", "train.lr", "train.opt.beta"]


def test_keys_only_one_side_has_are_skipped():
    saved = {"train": {"lr": 1e-3, "old_key": 1}, "gone": {"x": 1}}
    wanted = {"train": {"lr": 1e-3, "new_key": 2}, "added": 5}
    assert differences(saved, wanted) == []
    assert differences({"a": {"b": 1}}, {"a": {"b": 2, "c": 3}}) == ["a.b"]


def test_a_value_against_a_subtree_is_a_difference():
    assert differences({"a": {"b": 1}}, {"a": 1}) == ["a"]
    assert differences({"a": [1, 2]}, {"a": [2, 1]}) == ["a"]
    assert differences(1, 2) == [""]


@pytest.mark.parametrize(("cores", "workers", "sharing", "threads"), [
    (8, 2, None, 4),
    (8, 3, None, 2),
    (2, 4, None, 1),  # at least one thread each
    (16, 2, "2", 4),  # two budgetlm processes already share the machine
])  # fmt: skip
def test_worker_threads_share_out_the_cores(monkeypatch, cores, workers, sharing, threads):
    monkeypatch.setattr(proxies, "usable_cores", lambda: cores)
    monkeypatch.delenv("LOCAL_WORLD_SIZE", raising=False)
    if sharing is None:
        monkeypatch.delenv(PROCESSES_ENV, raising=False)
    else:
        monkeypatch.setenv(PROCESSES_ENV, sharing)
    assert worker_threads(workers) == threads


def config(tmp_path, name):
    return load_config(None, [("out_dir", str(tmp_path / "proxies")), ("name", name)])


def write_metrics(run_dir, *records):
    run_dir.mkdir(parents=True, exist_ok=True)
    lines = [json.dumps(r) for r in records]
    (run_dir / "metrics.jsonl").write_text("\n".join(lines) + "\n")


def end_record(loss):
    return {"type": "end", "step": 6, "val_loss": {"prose": loss}}


@pytest.fixture
def fake_training(monkeypatch):
    """train_proxy replaced by one that writes a finished metrics.jsonl; the calls it got."""
    calls = []

    def fake(cfg, log_file):
        run_dir = proxies.run_dir_of(cfg)
        calls.append((cfg.name, log_file, run_dir.exists()))
        write_metrics(run_dir, {"type": "start", "step": 0}, end_record(1.0 + len(calls)))
        return proxies.finished_record(run_dir)

    monkeypatch.setattr(proxies, "train_proxy", fake)
    return calls


def test_finished_runs_are_reused_and_unfinished_ones_started_over(tmp_path, fake_training):
    done = tmp_path / "proxies" / "done"
    write_metrics(done, {"type": "start", "step": 0}, end_record(0.5))
    killed = tmp_path / "proxies" / "killed"
    write_metrics(killed, {"type": "start", "step": 0}, {"type": "train", "step": 2})
    (killed / "leftover.txt").write_text("from the killed run")
    lines = []
    configs = [config(tmp_path, n) for n in ("done", "killed", "new")]
    results = run_proxies(configs, workers=1, log=lines.append)
    # the killed run's folder was removed before it was trained again
    assert fake_training == [
        ("killed", str(killed) + ".log", False),
        ("new", str(tmp_path / "proxies" / "new") + ".log", False),
    ]
    assert not (killed / "leftover.txt").exists()
    assert list(results) == ["done", "killed", "new"]
    assert results["done"] == end_record(0.5)
    assert results["killed"]["val_loss"] == {"prose": 2.0}
    assert results["new"]["val_loss"] == {"prose": 3.0}
    assert lines[0] == "1 of 3 proxy runs already finished; not training them"
    assert lines[1:] == ["proxy 2/3 killed: prose 2.000", "proxy 3/3 new: prose 3.000"]


def test_a_torn_end_record_does_not_count_as_finished(tmp_path, fake_training):
    run_dir = tmp_path / "proxies" / "torn"
    run_dir.mkdir(parents=True)
    (run_dir / "metrics.jsonl").write_text('{"type": "start", "step": 0}\n{"type": "end", "st')
    results = run_proxies([config(tmp_path, "torn")], workers=1, log=lambda _: None)
    assert [name for name, _, _ in fake_training] == ["torn"]
    assert results["torn"]["val_loss"] == {"prose": 2.0}


def test_nothing_is_trained_when_every_run_is_finished(tmp_path, fake_training):
    for name, loss in (("a", 0.25), ("b", 0.75)):
        write_metrics(tmp_path / "proxies" / name, end_record(loss))
    lines = []
    results = run_proxies([config(tmp_path, n) for n in "ab"], workers=4, log=lines.append)
    assert fake_training == []
    assert {n: r["val_loss"]["prose"] for n, r in results.items()} == {"a": 0.25, "b": 0.75}
    assert lines == ["2 of 2 proxy runs already finished; not training them"]


def test_train_proxy_sends_the_runs_output_to_its_log_file(tmp_path, monkeypatch):
    def fake_pretrain(cfg, log):
        log("training the proxy")
        write_metrics(proxies.run_dir_of(cfg), end_record(4.0))

    monkeypatch.setattr(proxies, "pretrain", fake_pretrain)
    cfg = config(tmp_path, "p")
    log_file = tmp_path / "logs" / "p.log"  # its folder does not exist yet
    assert train_proxy(cfg, str(log_file)) == end_record(4.0)
    assert log_file.read_text() == "training the proxy\n"


def test_train_proxy_of_a_run_that_wrote_no_end_record_returns_nothing(tmp_path, monkeypatch):
    monkeypatch.setattr(proxies, "pretrain", lambda cfg, log: None)
    assert train_proxy(config(tmp_path, "q"), str(tmp_path / "q.log")) == {}
