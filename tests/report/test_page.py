import re
import shutil
from html import escape

from budgetlm import api
from budgetlm.report.build import make_report
from budgetlm.report.rundata import load_run


def page(run_dirs, tmp_path, **kwargs):
    files = make_report(run_dirs, out=tmp_path / "report.html", **kwargs)
    return files, files.html.read_text()


def test_nothing_is_fetched_to_view_the_page(report_runs, tmp_path):
    _, html = page([report_runs["parent"], report_runs["continual"]], tmp_path)
    assert "<script" not in html and "@import" not in html
    assert not re.search(r"(src|href)\s*=\s*[\"']?(https?:|//)", html)
    assert set(re.findall(r"https?://[^\s\"'<>]+", html)) == {"http://www.w3.org/2000/svg"}


def test_single_run_page_shows_header_plots_tables_samples_and_config(report_runs, tmp_path):
    run = load_run(report_runs["parent"])
    files, html = page([run.path], tmp_path)
    assert "<h1>parent</h1>" in html
    assert re.search(r'<meta name="budgetlm-plots" content="([^"]+)"', html)[1].split(",") == (
        files.figures
    )
    for figure in files.figures:
        assert f'id="fig-{figure}"' in html
    for loss in run.end["val_loss"].values():
        assert f'<div class="v">{loss:.3f}</div>' in html
    assert "12steps: used 12 steps (100%)" in html
    assert "MFU unknown: no measured peak FLOP/s" in html
    for state in run.checkpoints:
        assert f"<td>{state['name']}</td>" in html
    assert escape(run.config_text) in html
    assert escape(run.samples.splitlines()[0]) in html
    assert "Continual pre-training" not in html


def test_mfu_shown_against_a_given_peak(report_runs, tmp_path):
    run = load_run(report_runs["parent"])
    peak = 5 * run.end["tokens_per_s"] * run.start["flops_per_token"]
    files, html = page([run.path], tmp_path, peak_flops=peak)
    assert "MFU 20.0% of" in html and "given with --peak-flops" in html
    assert "mfu" in files.figures


def test_continual_page_shows_gap_and_forgetting(report_runs, tmp_path):
    run = load_run(report_runs["continual"])
    _, html = page([run.path], tmp_path)
    assert "Continual pre-training: stability gap and forgetting" in html
    assert "with recipe <b>default</b>" in html
    record = run.last("continual")
    for domain, change in record["forgetting"].items():
        row = rf"<td>{domain}</td><td>old \(replayed\)</td>(?:(?!</tr>).)*"
        assert re.search(rf"{row}<td class=num>{change:+.3f}</td></tr>", html)
    assert "parent final · prose" in html  # the parent's final losses as reference lines


def test_eval_json_results_are_shown(report_runs, tmp_path):
    run_dir = tmp_path / "evaluated"
    shutil.copytree(report_runs["parent"], run_dir)
    result = api.evaluate(run_dir, tokens_per_domain=128, log=lambda _: None)
    _, html = page([run_dir], tmp_path)
    assert "<code>eval.json</code>" in html
    for domain, loss in result["val_loss"].items():
        assert f"<td>{domain}</td><td class=num>{loss:.3f}</td>" in html


def test_comparison_page_has_a_row_per_run(report_runs, tmp_path):
    files, html = page([report_runs["parent"], report_runs["continual"]], tmp_path)
    assert "<h1>Comparison of 2 runs</h1>" in html
    assert "<td>parent</td>" in html and "<td>continual</td>" in html
    assert "parent · prose" in html and "continual · notes" in html
    assert "mixture-0" in files.figures and "mixture-1" in files.figures
