"""SVG charts: one bar or point per value with its hover title, axes that cover the data, every
label escaped, and an accessible name."""
import xml.etree.ElementTree as ET

import pytest

from consultant.charts import bar_chart, line_chart, nice_ticks

SVG = "{http://www.w3.org/2000/svg}"
HOSTILE = '</text><script>alert("x")</script><text a=\'b\'>&amp;'


def parse(svg: str) -> ET.Element:
    return ET.fromstring(svg)


def bars(root):
    return [r for r in root.iter(f"{SVG}rect") if r.get("class") == "bar"]


def test_there_is_one_bar_per_value_with_its_series_label_and_value_in_the_title():
    labels = ["09:00", "10:00", "11:00"]
    series = {"drafted": [3, 0, 7], "sent": [1, 2, 5]}
    root = parse(bar_chart(labels, series, "Per hour"))
    found = [(r.get("data-label"), float(r.get("data-value")), r.find(f"{SVG}title").text) for r in bars(root)]
    expected = [(label, value, f"{name}, {label}: {value}") for name, values in series.items()
                for label, value in zip(labels, values)]
    assert found == expected


def test_a_bar_is_as_tall_as_its_value_and_a_zero_has_no_height():
    root = parse(bar_chart(["a", "b", "c"], {"n": [2, 4, 0]}, "t"))
    heights = [float(r.get("height")) for r in bars(root)]
    assert heights[1] == pytest.approx(2 * heights[0]) and heights[2] == 0
    bottoms = {round(float(r.get("y")) + float(r.get("height")), 2) for r in bars(root)}
    assert len(bottoms) == 1  # all bars stand on the same axis


def test_the_y_axis_ticks_rise_evenly_from_zero_and_cover_the_largest_value():
    for top in (0, 1, 3, 7, 10, 99, 1234, 0.4):
        ticks = nice_ticks(0, top)
        steps = {round(b - a, 9) for a, b in zip(ticks, ticks[1:])}
        assert ticks[0] == 0 and ticks[-1] >= top and len(steps) == 1 and 2 <= len(ticks) <= 7, (top, ticks)
    root = parse(bar_chart(["a"], {"n": [1234]}, "t"))
    tick_labels = [t.text for g in root.iter(f"{SVG}g") if g.get("class") == "y-axis" for t in g.iter(f"{SVG}text")]
    assert float(tick_labels[-1]) >= 1234 and tick_labels[0] == "0"


def test_hostile_labels_names_and_titles_are_escaped_and_kept_as_text():
    svg = bar_chart([HOSTILE], {HOSTILE: [1]}, HOSTILE, unit=HOSTILE)
    root = parse(svg)
    assert not [e for e in root.iter() if e.tag.endswith("script")]
    assert root.get("aria-label") == HOSTILE
    [bar] = bars(root)
    assert bar.get("data-label") == HOSTILE
    assert bar.find(f"{SVG}title").text == f"{HOSTILE}, {HOSTILE}: 1{HOSTILE}"
    assert "<script>" not in svg


def test_control_characters_in_a_label_do_not_break_the_document():
    root = parse(line_chart(["a\x00b\x1b"], {"n\x07": [1]}, "t\x0c"))
    assert root.find(f"{SVG}title").text == "t"


def test_the_chart_is_an_image_named_by_its_title_with_a_text_summary():
    root = parse(bar_chart(["mon", "tue"], {"sent": [2, 5]}, "Sent per day"))
    assert root.get("role") == "img" and root.get("aria-label") == "Sent per day"
    children = list(root)
    assert children[0].tag == f"{SVG}title" and children[0].text == "Sent per day"
    assert children[1].tag == f"{SVG}desc" and "sent: total 7, most at tue (5)" in children[1].text


def test_a_line_chart_has_one_point_per_value_on_one_line_per_series():
    labels = [f"d{i}" for i in range(30)]
    series = {"drafted": list(range(30)), "sent": [i % 4 for i in range(30)]}
    root = parse(line_chart(labels, series, "Per day"))
    lines = list(root.iter(f"{SVG}polyline"))
    assert [len(line.get("points").split()) for line in lines] == [30, 30]
    points = [c for c in root.iter(f"{SVG}circle") if c.get("class") == "point"]
    assert [float(c.get("data-value")) for c in points] == series["drafted"] + series["sent"]
    ys = [float(c.get("cy")) for c in points[:30]]
    assert ys == sorted(ys, reverse=True)  # a rising series climbs (SVG y grows downwards)


def test_crowded_x_labels_are_thinned_but_the_first_is_kept():
    labels = [f"{h:02d}:00" for h in range(24)]
    root = parse(bar_chart(labels, {"a": [1] * 24, "b": [1] * 24, "c": [1] * 24}, "t", width=400))
    shown = [t.text for g in root.iter(f"{SVG}g") if g.get("class") == "x-axis" for t in g.iter(f"{SVG}text")]
    assert shown[0] == "00:00" and 2 <= len(shown) < 24 and set(shown) <= set(labels)


def test_a_series_without_one_value_per_label_is_refused():
    with pytest.raises(ValueError):
        bar_chart(["a", "b"], {"n": [1]}, "t")
    with pytest.raises(ValueError):
        line_chart(["a"], {}, "t")
