import struct

import pytest

from budgetlm.errors import UserError
from budgetlm.report.figure import Bar, Figure, Marker, Series
from budgetlm.report.png import DPI, SIZE, write_pngs


def png_size(path):
    head = path.read_bytes()[:24]
    assert head[:8] == b"\x89PNG\r\n\x1a\n"
    return struct.unpack(">II", head[16:24])


def test_each_figure_becomes_a_png_of_paper_size(tmp_path):
    figures = [
        Figure(
            "loss",
            "Loss",
            "tokens",
            "loss",
            series=[Series("prose", [0, 1000, 2000], [5.0, None, 3.0], dash=1)],
            markers=[Marker(1000, "rollback"), Marker(2000, "gap", y=3.0)],
            xunit="tokens",
        ),
        Figure("time", "Time", "seconds", "", bars=[Bar("run", [("steps", 5.0), ("eval", 1.0)])]),
    ]
    paths = write_pngs(figures, tmp_path / "png")
    assert [p.name for p in paths] == ["loss.png", "time.png"]
    assert png_size(paths[0]) == (round(SIZE[0] * DPI), round(SIZE[1] * DPI))
    assert png_size(paths[1])[0] == round(SIZE[0] * DPI)
    assert not list((tmp_path / "png").glob(".*"))  # no temporary files left


def test_png_into_a_file_is_refused(tmp_path):
    (tmp_path / "f").write_text("x")
    with pytest.raises(UserError, match="is a file"):
        write_pngs([], tmp_path / "f")
