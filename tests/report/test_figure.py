from budgetlm.report.figure import Bar, Figure, Series, format_seconds, format_value


def test_values_read_as_a_person_writes_them():
    assert format_value(1_500_000, "tokens") == "1.5M"
    assert format_value(245_760, "tokens") == "246k"
    assert format_value(0.003, "number") == "0.003"
    assert format_value(2e-5, "number") == "2.0e-05"
    assert format_value(0.25, "percent") == "25%"
    assert format_value(0, "number") == "0"
    assert format_value(90, "seconds") == "1m30s"


def test_durations():
    assert format_seconds(12.5) == "12.5s"
    assert format_seconds(90) == "1m30s"
    assert format_seconds(4000) == "1h06m"  # 66 whole minutes (and 40 s)
    assert format_seconds(0) == "0s"


def test_a_figure_without_finite_values_is_empty():
    assert Figure("a", "A", "x", "y", series=[Series("s", [1, 2], [None, None])]).is_empty()
    assert not Figure("a", "A", "x", "y", series=[Series("s", [1, 2], [None, 3.0])]).is_empty()
    assert Figure("b", "B", "x", "", bars=[Bar("run", [("steps", 0.0)])]).is_empty()
    assert Figure("b", "B", "x", "", bars=[Bar("run", [("steps", 1.0)])]).kind == "bars"
