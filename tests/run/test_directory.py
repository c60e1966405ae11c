import os
import re

import pytest

from budgetlm.config import RESUME_SETTINGS, load_config, save_config
from budgetlm.errors import UserError
from budgetlm.run.directory import (
    find_resume_dir,
    is_run_dir,
    load_run_config,
    new_run_dir,
    open_resume,
    require_run_dir,
    run_dir_of,
)


def config(out_dir, name=None, **values):
    items = [("out_dir", str(out_dir)), *values.items()]
    if name is not None:
        items.append(("name", name))
    return load_config(None, items)


def make_run(path, mtime=None, **values):
    path.mkdir(parents=True, exist_ok=True)
    save_config(config(path.parent, path.name, **values), path / "config.yaml")
    if mtime is not None:
        os.utime(path / "config.yaml", (mtime, mtime))
    return path


def test_a_run_is_a_folder_with_config_yaml(tmp_path):
    assert not is_run_dir(tmp_path)
    assert not is_run_dir(tmp_path / "missing")
    (tmp_path / "config.yaml").mkdir()  # a folder of that name does not count
    assert not is_run_dir(tmp_path)
    run = make_run(tmp_path / "run")
    assert is_run_dir(run) and is_run_dir(str(run))


def test_require_run_dir_names_the_flag_and_config_yaml(tmp_path):
    with pytest.raises(UserError) as e:
        require_run_dir(str(tmp_path), "--run")
    message = str(e.value)
    assert message.startswith(f"--run {tmp_path} is not a budgetlm run directory")
    assert "no config.yaml" in message
    run = make_run(tmp_path / "run")
    assert require_run_dir(str(run), "--run") == run


def test_load_run_config_applies_overrides_to_the_saved_config(tmp_path):
    run = make_run(tmp_path / "run", **{"train.lr": 1e-3, "budget": "7steps"})
    loaded = load_run_config(run, "--run", [("train.seed", 5)])
    assert loaded.train.lr == 1e-3 and loaded.budget == "7steps" and loaded.train.seed == 5
    with pytest.raises(UserError, match="--from"):
        load_run_config(tmp_path, "--from")


def test_run_dir_of_is_out_dir_slash_name(tmp_path):
    assert run_dir_of(config(tmp_path, "abc")) == tmp_path / "abc"


def test_new_run_dir_accepts_a_missing_or_empty_folder(tmp_path):
    assert new_run_dir(config(tmp_path, "fresh")) == tmp_path / "fresh"
    assert not (tmp_path / "fresh").exists()  # naming a run does not create it
    (tmp_path / "empty").mkdir()
    assert new_run_dir(config(tmp_path, "empty")) == tmp_path / "empty"


def test_new_run_dir_refuses_a_non_empty_folder(tmp_path):
    (tmp_path / "taken").mkdir()
    (tmp_path / "taken" / "anything.txt").write_text("x")
    with pytest.raises(UserError, match="already exists; pass --resume to continue it"):
        new_run_dir(config(tmp_path, "taken"))


def test_an_unnamed_run_is_named_by_size_and_start_time(tmp_path):
    cfg = config(tmp_path, **{"model.size": "nano"})
    run_dir = new_run_dir(cfg)
    assert re.fullmatch(r"nano-\d{8}-\d{6}", cfg.name)
    assert run_dir == tmp_path / cfg.name


def test_find_resume_dir_of_a_named_run(tmp_path):
    run = make_run(tmp_path / "a")
    make_run(tmp_path / "b")
    assert find_resume_dir(config(tmp_path, "a")) == run


def test_find_resume_dir_when_out_dir_is_the_run_itself(tmp_path):
    run = make_run(tmp_path / "run")
    assert find_resume_dir(config(run)) == run


def test_find_resume_dir_takes_the_newest_run_under_out_dir(tmp_path):
    make_run(tmp_path / "old", mtime=1_000_000)
    newest = make_run(tmp_path / "newest", mtime=3_000_000)
    make_run(tmp_path / "middle", mtime=2_000_000)
    (tmp_path / "not-a-run").mkdir()
    assert find_resume_dir(config(tmp_path)) == newest


def test_find_resume_dir_errors_when_there_is_no_run(tmp_path):
    with pytest.raises(UserError, match=f"--resume: no run found under {tmp_path}"):
        find_resume_dir(config(tmp_path))
    with pytest.raises(UserError, match="no run found"):
        find_resume_dir(config(tmp_path / "missing"))
    (tmp_path / "half").mkdir()
    with pytest.raises(UserError, match=r"--resume: .*half is not a budgetlm run \(no config"):
        find_resume_dir(config(tmp_path, "half"))


def test_open_resume_returns_the_saved_config_with_the_settings(tmp_path):
    run = make_run(tmp_path / "run", **{"train.lr": 1e-3, "train.micro_batch_size": 8})
    lines = []
    wanted = config(tmp_path, "run", **{"train.lr": 5.0})  # ignored: the saved config counts
    run_dir, saved = open_resume(wanted, lines.append, [("train.micro_batch_size", 2)])
    assert run_dir == run
    assert saved.train.lr == 1e-3 and saved.train.micro_batch_size == 2
    assert lines == [f"resuming {run}; train.micro_batch_size = 2"]


def test_open_resume_refuses_keys_outside_resume_settings(tmp_path):
    make_run(tmp_path / "run")
    bad = [("train.lr", 1e-2), ("train.device", "cpu"), ("budget", "9steps")]
    with pytest.raises(UserError) as e:
        open_resume(config(tmp_path, "run"), lambda _: None, bad)
    message = str(e.value)
    assert message.startswith("--resume cannot change train.lr, budget:")
    assert all(key in message for key in RESUME_SETTINGS)


def test_every_resume_setting_is_accepted(tmp_path):
    make_run(tmp_path / "run")
    values = {
        "train.parallel": "fsdp",
        "train.device": "cpu",
        "train.compile": False,
        "train.micro_batch_size": 3,
        "train.activation_checkpointing": True,
    }
    assert set(values) == set(RESUME_SETTINGS)
    _, saved = open_resume(config(tmp_path, "run"), lambda _: None, list(values.items()))
    assert saved.train.parallel == "fsdp" and saved.train.micro_batch_size == 3
    assert saved.train.activation_checkpointing is True
