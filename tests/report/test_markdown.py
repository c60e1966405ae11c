from budgetlm.report.markdown import final_numbers, markdown_table
from budgetlm.report.rundata import load_run


def test_one_row_per_run_with_final_losses(report_runs):
    runs = [load_run(report_runs["parent"]), load_run(report_runs["continual"])]
    text = markdown_table(runs)
    lines = text.splitlines()
    assert len(lines) == 2 + 2
    header = [c.strip() for c in lines[0].strip("|").split("|")]
    assert header[:9] == [
        "run",
        "model",
        "params",
        "budget",
        "used",
        "steps",
        "tokens",
        "time",
        "tokens/s",
    ]
    assert header[9:12] == ["val loss prose", "val loss code", "val loss notes"]
    assert header[12:] == ["bits/byte prose", "bits/byte code", "bits/byte notes"]
    parent = [c.strip() for c in lines[2].strip("|").split("|")]
    assert parent[0] == "parent" and parent[3] == "12steps" and parent[4] == "100%"
    assert parent[9] == f"{runs[0].end['val_loss']['prose']:.3f}"
    assert parent[11] == "–"  # the parent never saw 'notes'
    continual = [c.strip() for c in lines[3].strip("|").split("|")]
    assert continual[11] == f"{runs[1].end['val_loss']['notes']:.3f}"
    assert continual[14] == f"{runs[1].end['val_bpb']['notes']:.3f}"


def test_mfu_column_only_with_a_peak(report_runs):
    run = load_run(report_runs["parent"])
    assert "MFU" not in markdown_table([run])
    peak = 10 * final_numbers(run)["flops_per_s"]
    assert "| 10.0% |" in markdown_table([run], peak_flops=peak)
