import io

from budgetlm.train.progress import Progress, format_duration


def test_terminal_gets_an_updating_line():
    out = io.StringIO()
    p = Progress(out, interactive=True)
    p.update(10, 100, 3.21, 25_000, 0.1, 125)
    p.message("evaluated")
    p.close()
    text = out.getvalue()
    assert "step 10/100 | loss 3.210 | 25.0k tok/s | budget 10% | ETA 2m05s" in text
    assert "evaluated\n" in text


def test_log_file_gets_only_messages():
    out = io.StringIO()
    p = Progress(out, interactive=False)
    p.update(10, 100, 3.21, 25_000, 0.1, 125)
    p.message("evaluated")
    p.close()
    assert out.getvalue() == "evaluated\n"


def test_format_duration():
    assert format_duration(5) == "5s" and format_duration(3725) == "1h02m"
