import shutil

import pytest

from budgetlm.cli import main
from budgetlm.errors import UserError
from budgetlm.report.build import make_report


def test_one_run_report_goes_into_the_run(report_runs, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(report_runs["parent"], run)
    files = make_report([run])
    assert files.html == run / "report.html" and files.html.is_file()
    assert not [p for p in run.iterdir() if p.name.startswith(".")]  # no temporary file left
    assert make_report([run], out=tmp_path).html == tmp_path / "report.html"  # a folder


def test_comparison_default_path_and_outputs(report_runs, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    files = make_report(
        [report_runs["parent"], report_runs["continual"]],
        png_dir=tmp_path / "png",
        markdown=tmp_path / "notes" / "final.md",
    )
    assert files.html.name == "compare-parent-continual.html" and files.html.is_file()
    assert sorted(p.stem for p in files.pngs) == sorted(files.figures)
    assert files.markdown_path.read_text() == files.markdown
    assert files.markdown.startswith("| run |")


def test_runs_with_different_tokenizers_are_not_compared(report_runs, tmp_path):
    with pytest.raises(UserError, match="different tokenizers"):
        make_report([report_runs["parent"], report_runs["other"]], out=tmp_path / "x.html")
    assert not (tmp_path / "x.html").exists()
    make_report([report_runs["other"]], out=tmp_path / "alone.html")  # alone it is fine


def test_a_run_without_its_tokenizer_cannot_be_compared(report_runs, tmp_path):
    run = tmp_path / "no-tokenizer"
    shutil.copytree(report_runs["parent"], run)
    (run / "tokenizer.json").unlink()
    with pytest.raises(UserError, match="has no tokenizer.json"):
        make_report([report_runs["continual"], run], out=tmp_path / "x.html")


def test_bad_arguments(report_runs, tmp_path):
    with pytest.raises(UserError, match="does not exist"):
        make_report([tmp_path / "missing"])
    with pytest.raises(UserError, match="given twice"):
        make_report([report_runs["parent"], report_runs["parent"]])
    with pytest.raises(UserError, match="--peak-flops"):
        make_report([report_runs["parent"]], peak_flops=0)
    with pytest.raises(UserError, match="at least one run"):
        make_report([])
    with pytest.raises(UserError, match="--markdown .* is a directory"):  # --markdown RUN RUN2
        make_report([report_runs["continual"]], markdown=report_runs["parent"])


def test_cli(report_runs, tmp_path, capsys):
    out = tmp_path / "page.html"
    code = main(["report", str(report_runs["parent"]), "--out", str(out), "--markdown"])
    printed = capsys.readouterr().out
    assert code == 0 and out.is_file()
    assert printed.startswith("| run |") and f"report written to {out}" in printed
    code = main(["report", str(report_runs["parent"]), str(report_runs["other"])])
    assert code == 2
    assert "budgetlm report: error: runs" in capsys.readouterr().err
