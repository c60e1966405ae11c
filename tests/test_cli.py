import pytest

from budgetlm.cli import main


def run(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_help_lists_every_command_with_a_purpose(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["--help"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    for command in ("prepare", "pretrain", "generate"):
        assert command in out


def test_unknown_override_key_is_one_line_with_suggestion(capsys):
    code, _, err = run(capsys, "pretrain", "--train.lrr", "3e-3")
    assert code == 2
    assert (
        err.count("\n") == 1
        and "unknown config key 'train.lrr'" in err
        and "did you mean --train.lr?" in err
    )


def test_unknown_plain_flag_is_an_error(capsys):
    code, _, err = run(capsys, "pretrain", "--lr", "3")
    assert code == 2 and "unrecognized argument '--lr'" in err


def test_bad_budget(capsys):
    code, _, err = run(capsys, "pretrain", "--budget", "soon")
    assert code == 2 and "budget 'soon' is not understood" in err


def test_missing_data_path(capsys, tmp_path):
    code, _, err = run(
        capsys, "prepare", "--data", str(tmp_path / "nope.txt"), "--out", str(tmp_path / "out")
    )
    assert code == 2 and "nope.txt" in err and err.count("\n") == 1


def test_generate_needs_a_run(capsys, tmp_path):
    code, _, err = run(capsys, "generate", "--run", str(tmp_path), "hello")
    assert code == 2 and "not a budgetlm run" in err


def test_pretrain_and_generate_end_to_end(capsys, tiny_prepared, tmp_path):
    out_dir = tmp_path / "run"
    code, _, err = run(
        capsys,
        "pretrain",
        "--prepared",
        str(tiny_prepared),
        "--out",
        str(out_dir),
        "--budget",
        "4steps",
        "--model.size",
        "custom",
        "--model.d_model",
        "32",
        "--model.n_layers",
        "1",
        "--model.n_heads",
        "2",
        "--model.seq_len",
        "32",
        "--train.batch_size=4",
        "--train.micro_batch_size=4",
        "--eval.tokens_per_domain",
        "64",
    )
    assert code == 0, err
    assert (out_dir / "checkpoints").is_dir()
    code, out, _ = run(
        capsys,
        "generate",
        "--run",
        str(out_dir),
        "the cat",
        "--max-new-tokens",
        "4",
        "--temperature",
        "0",
    )
    assert code == 0 and out.startswith("the cat")


def test_resume_refuses_config_changes(capsys, tmp_path):
    code, _, err = run(capsys, "pretrain", "--resume", "--model", "nano", "--out", str(tmp_path))
    assert code == 2 and "--resume continues a run" in err
    code, _, err = run(capsys, "pretrain", "--resume", "--train.lr", "1", "--out", str(tmp_path))
    assert code == 2 and "but train.parallel, train.device" in err


def test_resume_may_change_how_steps_run(capsys, tiny_config):
    from budgetlm import api

    run_dir = api.pretrain(tiny_config(), log=lambda _: None).run_dir
    final = run_dir / "checkpoints" / "step_000012"
    for path in final.iterdir():
        path.unlink()
    final.rmdir()
    code, out, err = run(
        capsys, "pretrain", "--resume", "--out", str(run_dir), "--train.micro_batch_size", "4"
    )
    assert code == 0, err
    assert "train.micro_batch_size = 4" in out


def test_prepare_reports_cleaning_and_adds_sources(capsys, tmp_path):
    from .conftest import write_corpus

    prose, code = write_corpus(tmp_path / "corpus")
    (tmp_path / "corpus" / "code" / "copy.py").write_text(
        (tmp_path / "corpus" / "code" / "mod0.py").read_text()
    )
    out = str(tmp_path / "out")
    flags = ["--vocab-size", "300", "--near-dedup", "--val-fraction", "0.2"]
    code_run, stdout, _ = run(capsys, "prepare", "--data", code, "--out", out, *flags)
    assert code_run == 0
    assert "code: 12 of 13 documents kept; removed: exact_duplicate 1" in stdout
    code_run, stdout, _ = run(capsys, "prepare", "--data", code, prose, "--out", out, *flags)
    assert code_run == 0 and "prose: 12 of 12 documents kept" in stdout
    code_run, _, err = run(capsys, "prepare", "--data", code, "--out", out, *flags[:2], *flags[3:])
    assert code_run == 2 and "prepared with cleaning=" in err and err.count("\n") == 1
