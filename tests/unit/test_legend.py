import math
from pathlib import Path

import numpy as np
import pytest

from cropai.crops import CLASSES
from cropai.errors import InvalidInput
from cropai.legend import PALETTE, Legend, LegendClass, normalise_code


def legend_file(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "legend.csv"
    path.write_text(text)
    return path


def read_legend(tmp_path: Path, text: str) -> Legend:
    return Legend.from_csv(legend_file(tmp_path, text))


@pytest.mark.parametrize(
    ("value", "code"),
    [
        (1110, "1110"),
        (1110.0, "1110"),
        ("1110.0", "1110"),
        (" 1110 ", "1110"),
        (np.int32(1110), "1110"),
        (np.float64(1110.0), "1110"),
        (1110.5, "1110.5"),
        ("BTH", "BTH"),
        (" winter wheat ", "winter wheat"),
        (None, ""),
        (math.nan, ""),
        ("  ", ""),
    ],
)
def test_label_values_normalise_to_comparable_text(value: object, code: str) -> None:
    assert normalise_code(value) == code


def test_codes_of_one_class_merge(tmp_path: Path) -> None:
    legend = read_legend(tmp_path, "code,class\n1500,barley\n1110,wheat\n1510,barley\n")
    assert legend.by_name()["barley"].codes == ("1500", "1510")


def test_classes_are_numbered_in_order_of_first_appearance(tmp_path: Path) -> None:
    legend = read_legend(tmp_path, "code,class\n1200,maize\n1110,wheat\n1201,maize\n")
    assert [(c.id, c.name) for c in legend.classes] == [(1, "maize"), (2, "wheat")]


def test_whole_number_codes_match_however_written(tmp_path: Path) -> None:
    legend = read_legend(tmp_path, "code,class\n1110.0,wheat\n 1200 ,maize\n")
    assert legend.class_for(1110).name == "wheat"  # type: ignore[union-attr]
    assert legend.class_for("1200.0").name == "maize"  # type: ignore[union-attr]


def test_ignored_codes_are_neither_classes_nor_unknown(tmp_path: Path) -> None:
    legend = read_legend(tmp_path, "code,class\n1110,wheat\n1200,maize\n9999,Ignore\n")
    assert legend.class_for("9999") is None
    assert "ignore" not in {c.name.lower() for c in legend.classes}


def test_unknown_values_raise_lookup_error(tmp_path: Path) -> None:
    legend = read_legend(tmp_path, "code,class\n1110,wheat\n1200,maize\n")
    with pytest.raises(LookupError):
        legend.class_for("4242")


def test_ids_and_colours_come_from_their_columns(tmp_path: Path) -> None:
    legend = read_legend(tmp_path, "Code,Class,ID,Colour\n1110,wheat,7,#E6C229\n1200,maize,3,#f17105\n")
    assert legend.by_id()[7] == LegendClass(7, "wheat", "#e6c229", ("1110",))
    assert legend.by_id()[3].colour == "#f17105"


def test_without_colours_classes_take_the_palette_in_order(tmp_path: Path) -> None:
    legend = read_legend(tmp_path, "code,class\n1,a\n2,b\n3,c\n")
    assert [c.colour for c in legend.classes] == list(PALETTE[:3])


def test_semicolon_separated_files_are_read(tmp_path: Path) -> None:
    legend = read_legend(tmp_path, "code;class\n1110;wheat\n1200;maize\n")
    assert [c.name for c in legend.classes] == ["wheat", "maize"]


def test_colour_table_is_transparent_at_no_data() -> None:
    legend = Legend((LegendClass(1, "wheat", "#ff0000"), LegendClass(2, "maize", "#00ff00")))
    assert legend.colour_table() == {0: (0, 0, 0, 0), 1: (255, 0, 0, 255), 2: (0, 255, 0, 255)}


def test_records_round_trip() -> None:
    legend = Legend(
        (LegendClass(1, "wheat", "#ff0000", ("1110",)), LegendClass(4, "maize", "#00ff00", ("1200", "1201")))
    )
    assert Legend.from_records(legend.as_records()) == legend


def test_records_without_codes_stand_for_no_codes() -> None:
    legend = Legend.from_records([{"id": 1, "name": "wheat", "colour": "#ff0000"}], ignored=["9999"])
    assert legend.classes[0].codes == ()
    assert legend.class_for("9999") is None


def test_values_become_classes_in_natural_order() -> None:
    legend = Legend.from_values(["10", 2, "a10", "a9", "2.0", None, ""])
    assert [(c.id, c.name, c.codes) for c in legend.classes] == [
        (1, "2", ("2",)),
        (2, "10", ("10",)),
        (3, "a9", ("a9",)),
        (4, "a10", ("a10",)),
    ]


def test_synthetic_classes_form_a_legend() -> None:
    legend = Legend(classes=tuple(LegendClass(c.id, c.name, c.colour, (c.name,)) for c in CLASSES))
    assert legend.class_for("maize") == legend.by_id()[3]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("code,class,id\n1,a,1\n2,b,1\n", r"line 3: id 1 of 'b' is already the id of 'a' \(line 2\)"),
        ("code,class,id\n1,a,0\n", r"line 2: id '0' of 'a' is not a whole number from 1 to 255"),
        ("code,class,id\n1,a,256\n", r"id '256' of 'a' is not a whole number from 1 to 255"),
        ("code,class,id\n1,a,\n", r"line 2: class 'a' has no id"),
        ("code,class,id\n1,a,1\n2,a,2\n", r"line 3: class 'a' has id 2 here but 1 on line 2"),
        ("code,class\n1,a\n1.0,b\n", r"line 3: code '1' is mapped to two classes, 'a' and 'b' \(line 2\)"),
        ("code,class\n1,a\n1,ignore\n", r"line 3: code '1' is both ignored and mapped to 'a' \(line 2\)"),
        ("code,class,colour\n1,a,red\n", r"line 2: colour 'red' of 'a' is not #rrggbb"),
        ("code,class,colour\n1,a,#ff0000\n2,a,#00ff00\n", r"line 3: class 'a' has colour #00ff00 here but #ff0000"),
        ("code,class\n", r"maps no code to a class"),
        ("code,class\n9,ignore\n", r"maps no code to a class"),
        ("", r"lacks the column\(s\) code, class: found none"),
        ("crop,name\n1,a\n", r"lacks the column\(s\) code, class: found crop, name; expected code, class"),
        ("code,class\n,a\n", r"line 2: empty code"),
    ],
)
def test_faulty_legend_files_are_refused_naming_file_and_problem(tmp_path: Path, text: str, message: str) -> None:
    path = legend_file(tmp_path, text)
    with pytest.raises(InvalidInput, match=message) as raised:
        Legend.from_csv(path)
    assert str(path) in str(raised.value)


def test_more_than_255_classes_are_refused(tmp_path: Path) -> None:
    text = "code,class\n" + "".join(f"{i},class{i}\n" for i in range(256))
    with pytest.raises(InvalidInput, match="256 classes, more than 255"):
        read_legend(tmp_path, text)


def test_missing_legend_file_is_refused(tmp_path: Path) -> None:
    with pytest.raises(InvalidInput, match=r"cannot read legend file .*nope.csv"):
        Legend.from_csv(tmp_path / "nope.csv")


@pytest.mark.parametrize(
    ("classes", "message"),
    [
        ((), "no classes"),
        ((LegendClass(1, "a", "#000000"), LegendClass(1, "b", "#000000")), "'a' and 'b' share the id 1"),
        ((LegendClass(1, "a", "#000000"), LegendClass(2, "a", "#000000")), "share the name 'a'"),
        ((LegendClass(1, "a", "#000000", ("7",)), LegendClass(2, "b", "#000000", ("7.0",))), "code '7' is mapped to"),
    ],
)
def test_inconsistent_legends_are_refused(classes: tuple[LegendClass, ...], message: str) -> None:
    with pytest.raises(InvalidInput, match=message):
        Legend(classes)


def test_a_code_cannot_be_mapped_and_ignored() -> None:
    with pytest.raises(InvalidInput, match="'7' are both mapped to a class and ignored"):
        Legend((LegendClass(1, "a", "#000000", ("7",)),), frozenset({"7"}))


@pytest.mark.parametrize(("identifier", "colour"), [(0, "#000000"), (256, "#000000"), (1, "red"), (1, "#12345")])
def test_classes_need_an_id_in_range_and_a_colour(identifier: int, colour: str) -> None:
    with pytest.raises(InvalidInput, match="class 'a' has"):
        LegendClass(identifier, "a", colour)


def test_too_many_distinct_values_ask_for_a_legend_file() -> None:
    with pytest.raises(InvalidInput, match=r"300 distinct label values.*write a legend file"):
        Legend.from_values(str(i) for i in range(300))
