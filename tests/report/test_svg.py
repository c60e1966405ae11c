import re
import xml.etree.ElementTree as ET

from budgetlm.report.figure import Bar, Figure, Marker, Reference, Series
from budgetlm.report.svg import HEIGHT, LEFT, RIGHT, TOP, WIDTH, legend_html, nice_ticks, render_svg

SVG = "{http://www.w3.org/2000/svg}"


def test_ticks_are_round_and_cover_the_range():
    assert nice_ticks(0, 10) == [0, 2, 4, 6, 8, 10]
    assert nice_ticks(3.7, 8.4) == [4, 5, 6, 7, 8]
    assert nice_ticks(0, 245_760, "tokens") == [0, 50_000, 100_000, 150_000, 200_000]
    assert nice_ticks(0, 600, "seconds") == [0, 120, 240, 360, 480, 600]  # whole minutes
    assert nice_ticks(5, 5) == [5]


def line_figure(**extra):
    return Figure(
        "loss",
        "Loss",
        "tokens",
        "loss",
        series=[Series("prose", [0, 100, 200, 300], [4.0, 3.0, None, 2.0], points=True)],
        xunit="tokens",
        **extra,
    )


def test_a_line_maps_data_onto_the_plot_area():
    svg = ET.fromstring(render_svg(line_figure()))
    path = svg.find(f".//{SVG}path")
    d = path.get("d")
    # None breaks the line: a second move-to after the gap
    assert d.count("M") == 2 and d.count("L") == 1
    first = [float(v) for v in re.match(r"M([\d.]+),([\d.]+)", d).groups()]
    # x 0 is the left edge; y 4.0 is the top value, padded by 6% of the 2.0 range
    assert first[0] == LEFT
    plot_height = HEIGHT - TOP - 46
    assert abs(first[1] - (TOP + 0.12 / 2.24 * plot_height)) < 0.1
    last = re.findall(r"([\d.]+),([\d.]+)", d)[-1]
    assert float(last[0]) == WIDTH - RIGHT  # x 300 is the right edge
    assert len(svg.findall(f".//{SVG}circle")) == 3  # a dot per finite point
    assert svg.get("viewBox") == f"0 0 {WIDTH} {HEIGHT}"


def test_markers_and_references_are_drawn_and_listed():
    fig = line_figure(
        markers=[Marker(100, "gap +0.2 · prose", y=3.0), Marker(200, "recovered · prose")],
        references=[Reference(3.5, "parent final · prose")],
    )
    svg = render_svg(fig)
    ET.fromstring(svg)
    assert "1: gap +0.2 · prose" in svg and "2: recovered · prose" in svg
    legend = legend_html(fig)
    assert "1: gap +0.2 · prose" in legend and "parent final · prose (3.500)" in legend


def test_step_series_hold_each_value():
    fig = Figure("mix", "Mix", "tokens", "share", xunit="tokens")
    fig.series.append(Series("a", [0, 100, 200], [0.2, 0.6, 0.6], step=True))
    d = ET.fromstring(render_svg(fig)).find(f".//{SVG}path").get("d")
    points = re.findall(r"([\d.]+),([\d.]+)", d)
    # (0, .2) -> (100, .2) -> (100, .6) -> (200, .6) -> (200, .6): held, then stepped
    assert points[1][1] == points[0][1] and points[2][0] == points[1][0]


def test_bars_stack_segments_and_show_the_limit():
    fig = Figure(
        "time",
        "Time",
        "seconds",
        "",
        bars=[Bar("run-a", [("steps", 60.0), ("eval", 30.0)]), Bar("run-b", [("steps", 45.0)])],
        limit=("time budget", 120.0),
        xunit="seconds",
    )
    svg = ET.fromstring(render_svg(fig))
    rects = [r for r in svg.iter(f"{SVG}rect") if r.get("height") == "20"]
    widths = [float(r.get("width")) for r in rects]
    assert len(rects) == 3
    assert abs(widths[0] / widths[1] - 2.0) < 0.01  # 60 s is twice 30 s
    assert "time budget (2m00s)" in legend_html(fig)


def test_text_is_escaped():
    fig = line_figure()
    fig.series[0].label = "<b>&"
    svg = render_svg(fig)
    ET.fromstring(svg)
    assert "<b>&" not in svg and "&lt;b&gt;&amp;" in svg
