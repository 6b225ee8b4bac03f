"""A model's legend: the classes it maps, their pixel values and colours, and which label
values of the user's parcels (national crop codes, crop names) each class stands for.

A legend file is a CSV with a header row; the delimiter is a comma (a semicolon or a tab is
recognised from the header). Columns, in any order, header names matched case-insensitively:

``code`` (required)
    One label value of the parcels, compared as text with surrounding whitespace stripped;
    whole numbers are compared by value ("1110", "1110.0" and the integer 1110 are one code).
``class`` (required)
    The class that code belongs to. Rows with the same class name merge their codes into one
    class. A class named ``ignore`` (any case) leaves the parcels with that code out: never a
    class, never training data.
``id`` (optional)
    The class's pixel value, 1..255 (0 is no data). Without the column classes get 1, 2, ...
    in order of first appearance; with it every row that is not ``ignore`` gives one, and the
    rows of one class agree.
``colour`` (optional)
    ``#rrggbb``; without it colours come from a fixed palette in class order. The rows of one
    class agree.

Example::

    code,class
    1110,winter_wheat
    1500,barley
    1510,barley
    9999,ignore
"""

from __future__ import annotations

import csv
import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar
from xml.etree import ElementTree
from xml.sax.saxutils import quoteattr

import numpy as np

from cropai.errors import InvalidInput

MAX_CLASSES = 255  # class ids are uint8 pixel values and 0 is no data
IGNORE = "ignore"
OTHER_COLOUR = "#9e9e9e"
# Distinguishable on a map and from one another (after Sasha Trubetskoy's "20 simple distinct
# colours"); grey and white are left out: grey is "other", white vanishes on a light basemap.
PALETTE: tuple[str, ...] = (
    "#e6194b",
    "#3cb44b",
    "#ffe119",
    "#4363d8",
    "#f58231",
    "#911eb4",
    "#42d4f4",
    "#f032e6",
    "#bfef45",
    "#fabed4",
    "#469990",
    "#dcbeff",
    "#9a6324",
    "#fffac8",
    "#800000",
    "#aaffc3",
    "#808000",
    "#ffd8b1",
    "#000075",
    "#2f4f4f",
)
REQUIRED_COLUMNS = ("code", "class")
OPTIONAL_COLUMNS = ("id", "colour")
_COLOUR = re.compile(r"#[0-9a-fA-F]{6}")
_WHOLE_NUMBER = re.compile(r"[+-]?\d+(?:\.0*)?")
_DIGITS = re.compile(r"(\d+)")


def normalise_code(value: object) -> str:
    """A label value as the text legends compare: stripped, whole numbers as integer text
    (1110, 1110.0, "1110.0" and " 1110 " all give "1110"); None, NaN and blanks give ""."""
    if value is None:
        return ""
    if isinstance(value, bool | np.bool_):
        return str(bool(value)).lower()
    if isinstance(value, int | np.integer):
        return str(int(value))
    if isinstance(value, float | np.floating):
        number = float(value)
        if math.isnan(number):
            return ""
        return str(int(number)) if number.is_integer() else repr(number)
    text = str(value).strip()
    if _WHOLE_NUMBER.fullmatch(text):
        # int() of the text, not of a float: codes longer than 15 digits stay exact.
        return str(int(text.split(".")[0]))
    return text


def palette_colour(index: int) -> str:
    """The palette's colour for the class at ``index`` (0-based), cycling past its end."""
    return PALETTE[index % len(PALETTE)]


@dataclass(frozen=True)
class LegendClass:
    """One class: ``id`` its pixel value in label rasters and crop maps (1..255; 0 is no data),
    ``colour`` as ``#rrggbb``, ``codes`` the label values it stands for."""

    id: int
    name: str
    colour: str
    codes: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if not self.name.strip():
            raise InvalidInput(f"class {self.id} has an empty name: give every class a name")
        if isinstance(self.id, bool) or not isinstance(self.id, int | np.integer) or not 1 <= self.id <= MAX_CLASSES:
            raise InvalidInput(
                f"class {self.name!r} has id {self.id!r}: ids are whole numbers from 1 to {MAX_CLASSES} (0 is no data)"
            )
        if not isinstance(self.colour, str) or not _COLOUR.fullmatch(self.colour):
            raise InvalidInput(
                f"class {self.name!r} has colour {self.colour!r}: write colours as #rrggbb, e.g. #e6194b"
            )

    @property
    def rgb(self) -> tuple[int, int, int]:
        return int(self.colour[1:3], 16), int(self.colour[3:5], 16), int(self.colour[5:7], 16)


@dataclass(frozen=True)
class Legend:
    """A model's classes, and the label values (normalised, see ``normalise_code``) that are
    ``ignored``: never a class, never training data."""

    classes: tuple[LegendClass, ...]
    ignored: frozenset[str] = frozenset()
    OTHER: ClassVar[str] = "other"  # the class that rare classes are merged into
    _by_code: dict[str, LegendClass] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "classes", tuple(self.classes))
        object.__setattr__(self, "ignored", frozenset(normalise_code(v) for v in self.ignored) - {""})
        check_class_list(self.classes)
        by_code: dict[str, LegendClass] = {}
        for cls in self.classes:
            for code in map(normalise_code, cls.codes):
                other = by_code.setdefault(code, cls)
                if other is not cls:
                    raise InvalidInput(
                        f"code {code!r} is mapped to two classes, {other.name!r} and {cls.name!r}: map it to one"
                    )
        both = sorted(self.ignored & by_code.keys())
        if both:
            raise InvalidInput(
                f"codes {', '.join(map(repr, both))} are both mapped to a class and ignored: keep one of the two"
            )
        object.__setattr__(self, "_by_code", by_code)

    def by_id(self) -> dict[int, LegendClass]:
        return {c.id: c for c in self.classes}

    def by_name(self) -> dict[str, LegendClass]:
        return {c.name: c for c in self.classes}

    def colour_of(self, class_id: int) -> str:
        """A class id's colour; black for an id the legend does not have (a map older than its legend)."""
        found = self.by_id().get(class_id)
        return found.colour if found else "#000000"

    def class_for(self, value: object) -> LegendClass | None:
        """The class a label value stands for, or None when the legend ignores it.

        Raises LookupError for a value the legend does not know (callers collect them, to
        name them all in one message)."""
        code = normalise_code(value)
        if code in self.ignored:
            return None
        try:
            return self._by_code[code]
        except KeyError:
            raise LookupError(code) from None

    def colour_table(self) -> dict[int, tuple[int, int, int, int]]:
        """A GDAL colour table (pixel value -> RGBA): 0 transparent, each class opaque."""
        table = {0: (0, 0, 0, 0)}
        table.update({c.id: (*c.rgb, 255) for c in self.classes})
        return table

    def qgis_style(self) -> str:
        """A QGIS layer style (``.qml``) for a crop map's class band: a paletted renderer whose
        entries give each class id its colour and name, 0 left transparent. QGIS applies it by
        itself to a raster of the same name beside it (``cropmap.qml`` beside ``cropmap.tif``)."""
        entries = "\n".join(
            f'        <paletteEntry value="{c.id}" color="{c.colour}" alpha="255" label={quoteattr(c.name)}/>'
            for c in self.classes
        )
        return (
            "<!DOCTYPE qgis PUBLIC 'http://mrcc.com/qgis.dtd' 'SYSTEM'>\n"
            '<qgis version="3.28" styleCategories="Symbology">\n'
            "  <pipe>\n"
            '    <rasterrenderer type="paletted" band="1" opacity="1" alphaBand="-1" nodataColor="">\n'
            "      <rasterTransparency/>\n"
            "      <colorPalette>\n"
            f"{entries}\n"
            "      </colorPalette>\n"
            "    </rasterrenderer>\n"
            "  </pipe>\n"
            "</qgis>\n"
        )

    def gdal_categories(self) -> str:
        """GDAL's sidecar of a crop map (``cropmap.tif.aux.xml``): band 1's category names (one
        per pixel value, "" for values no class has) and a thematic raster attribute table of
        value, class name and colour. A GeoTIFF cannot hold either (GDAL keeps them beside it);
        GDAL and QGIS read it by themselves beside a raster of the same name."""
        names = [""] * (max((c.id for c in self.classes), default=0) + 1)
        names[0] = "no data"
        for c in self.classes:
            names[c.id] = c.name
        band = ElementTree.Element("PAMRasterBand", band="1")
        categories = ElementTree.SubElement(band, "CategoryNames")
        for name in names:
            ElementTree.SubElement(categories, "Category").text = name
        table = ElementTree.SubElement(band, "GDALRasterAttributeTable", tableType="thematic")
        # GDAL's field types (0 integer, 2 string) and usages (5 value, 2 name, 6-9 red to alpha).
        for index, (name, kind, usage) in enumerate(
            (("Value", 0, 5), ("Class", 2, 2), ("Red", 0, 6), ("Green", 0, 7), ("Blue", 0, 8), ("Alpha", 0, 9))
        ):
            field = ElementTree.SubElement(table, "FieldDefn", index=str(index))
            for tag, text in (("Name", name), ("Type", kind), ("Usage", usage)):
                ElementTree.SubElement(field, tag).text = str(text)
        for row, c in enumerate(self.classes):
            entry = ElementTree.SubElement(table, "Row", index=str(row))
            for value in (c.id, c.name, *c.rgb, 255):
                ElementTree.SubElement(entry, "F").text = str(value)
        document = ElementTree.Element("PAMDataset")
        document.append(band)
        ElementTree.indent(document)
        return ElementTree.tostring(document, encoding="unicode") + "\n"

    def as_records(self) -> list[dict[str, object]]:
        """The classes as JSON-ready records ``{"id", "name", "colour", "codes"}``."""
        return [{"id": int(c.id), "name": c.name, "colour": c.colour, "codes": list(c.codes)} for c in self.classes]

    @classmethod
    def of_contract(cls, contract: Mapping[str, Any]) -> Legend:
        """A stored model contract's legend (its ``classes`` records)."""
        return cls.from_records(contract["classes"])

    @classmethod
    def from_records(cls, records: Iterable[Mapping[str, object]], ignored: Iterable[str] = ()) -> Legend:
        """The inverse of ``as_records``; a record without ``codes`` stands for no codes."""
        classes = []
        for number, record in enumerate(records):
            missing = [key for key in ("id", "name", "colour") if key not in record]
            if missing:
                raise InvalidInput(
                    f"legend record {number} lacks {', '.join(missing)}: each record needs id, name and colour"
                )
            identifier, codes = record["id"], record.get("codes") or ()
            if not isinstance(identifier, int) or not isinstance(codes, Sequence) or isinstance(codes, str):
                raise InvalidInput(
                    f"legend record {number} ({record['name']!r}): id must be a whole number and codes a list"
                )
            classes.append(LegendClass(identifier, str(record["name"]), str(record["colour"]), tuple(map(str, codes))))
        return cls(tuple(classes), frozenset(ignored))

    @classmethod
    def from_csv(cls, path: Path) -> Legend:
        """Read a legend file (the format is in this module's docstring)."""
        try:
            text = Path(path).read_text(encoding="utf-8-sig")  # Excel writes a byte-order mark
        except OSError as exc:
            raise InvalidInput(f"cannot read legend file {path}: {exc.strerror or exc}") from None
        except UnicodeDecodeError:
            raise InvalidInput(f"legend file {path} is not UTF-8 text: save it as UTF-8 CSV") from None
        try:
            return _LegendRows(str(path)).read(text)
        except InvalidInput as exc:
            message = str(exc)
            raise InvalidInput(message if message.startswith(f"legend file {path}") else f"{path}: {message}") from None

    @classmethod
    def from_rows(cls, rows: Sequence[Mapping[str, object]]) -> Legend:
        """A legend from rows shaped as a legend file's (``code``, ``class``, optional ``id`` and
        ``colour``; same rules), e.g. a JSON request's; errors name the row, counted from 1."""
        names = (*REQUIRED_COLUMNS, *OPTIONAL_COLUMNS)
        columns = {name: i for i, name in enumerate(names) if name in REQUIRED_COLUMNS or any(name in r for r in rows)}
        collected = _LegendRows("given")
        try:
            for number, row in enumerate(rows, start=1):
                cells = {name: "" if row.get(name) is None else str(row[name]).strip() for name in columns}
                collected.add(cells, number)
            return collected.legend(columns)
        except InvalidInput as exc:
            message = re.sub(r"\bline (\d+)", r"legend row \1", str(exc)).replace("legend file given", "the legend")
            raise InvalidInput(message) from None

    @classmethod
    def from_values(cls, values: Iterable[object]) -> Legend:
        """A legend with one class per distinct label value, for parcels without a legend file:
        natural order (numeric codes by value), ids 1.., the value as name and code."""
        distinct = sorted({normalise_code(v) for v in values} - {""}, key=natural_key)
        if not distinct:
            raise InvalidInput("the parcels have no label values: check the label column")
        if len(distinct) > MAX_CLASSES:
            raise InvalidInput(
                f"the parcels have {len(distinct)} distinct label values, more than {MAX_CLASSES} classes: "
                "write a legend file that groups them into classes"
            )
        return cls(tuple(LegendClass(i + 1, v, palette_colour(i), (v,)) for i, v in enumerate(distinct)))


def natural_key(text: str) -> tuple[tuple[int, int | str], ...]:
    """Sorts "2" before "10" and "a9" before "a10": digit runs compare as numbers."""
    return tuple((0, int(part)) if part.isdigit() else (1, part.casefold()) for part in _DIGITS.split(text) if part)


def check_class_list(classes: tuple[LegendClass, ...]) -> None:
    """Refuse an empty legend, too many classes, repeated ids or names, and a class named ignore."""
    if not classes:
        raise InvalidInput("the legend has no classes: map at least two label values to classes")
    if len(classes) > MAX_CLASSES:
        raise InvalidInput(f"the legend has {len(classes)} classes, more than {MAX_CLASSES}: group them")
    for attribute in ("id", "name"):
        seen: dict[object, LegendClass] = {}
        for cls in classes:
            other = seen.setdefault(getattr(cls, attribute), cls)
            if other is not cls:
                raise InvalidInput(
                    f"classes {other.name!r} and {cls.name!r} share the {attribute} {getattr(cls, attribute)!r}: "
                    f"give each class its own {attribute}"
                )
    reserved = [c.name for c in classes if c.name.strip().casefold() == IGNORE]
    if reserved:
        raise InvalidInput(f"a class may not be named {reserved[0]!r}: that name marks ignored codes")


class _LegendRows:
    """Collects a legend file's rows into classes, naming the file's line in every error."""

    def __init__(self, source: str) -> None:
        self.source = source
        self.order: list[str] = []  # class names in order of first appearance
        self.codes: dict[str, list[str]] = {}
        self.ids: dict[str, tuple[str, int]] = {}  # class -> (id, line that first gave it)
        self.id_owners: dict[str, tuple[str, int]] = {}  # id -> (class, line)
        self.colours: dict[str, tuple[str, int]] = {}
        self.code_lines: dict[str, tuple[str, int]] = {}  # code -> (class or "ignore", line)

    def read(self, text: str) -> Legend:
        lines = text.splitlines()
        header = lines[0] if lines else ""
        delimiter = max(",;\t", key=header.count)
        reader = csv.reader(lines, delimiter=delimiter)
        columns = self.columns(next(reader, []))
        for row in reader:
            if not any(cell.strip() for cell in row):
                continue
            cells = {name: row[i].strip() if i < len(row) else "" for name, i in columns.items()}
            self.add(cells, reader.line_num)
        return self.legend(columns)

    def columns(self, header: list[str]) -> dict[str, int]:
        names = [h.strip().casefold() for h in header]
        missing = [c for c in REQUIRED_COLUMNS if c not in names]
        if missing:
            found = ", ".join(h.strip() for h in header if h.strip()) or "none"
            raise InvalidInput(
                f"legend file {self.source} lacks the column(s) {', '.join(missing)}: found {found}; "
                f"expected {', '.join(REQUIRED_COLUMNS)} and optionally {', '.join(OPTIONAL_COLUMNS)}, "
                "in a header row"
            )
        return {name: names.index(name) for name in (*REQUIRED_COLUMNS, *OPTIONAL_COLUMNS) if name in names}

    def add(self, cells: dict[str, str], line: int) -> None:
        code, name = normalise_code(cells["code"]), cells["class"]
        if not code or not name:
            raise InvalidInput(f"line {line}: empty {'code' if not code else 'class'}; every row needs both")
        target = IGNORE if name.casefold() == IGNORE else name
        earlier = self.code_lines.setdefault(code, (target, line))
        if earlier[0] != target:
            what = "both ignored and mapped to" if IGNORE in (earlier[0], target) else "mapped to two classes,"
            classes = " and ".join(repr(c) for c in sorted({earlier[0], target}) if c != IGNORE)
            raise InvalidInput(
                f"line {line}: code {code!r} is {what} {classes} (line {earlier[1]}): keep one of the two rows"
            )
        if target == IGNORE:
            return
        if name not in self.codes:
            self.order.append(name)
            self.codes[name] = []
        if code not in self.codes[name]:
            self.codes[name].append(code)
        if "id" in cells:
            self.agree(self.ids, name, self.class_id(cells["id"], name, line), line, "id")
        if cells.get("colour"):
            colour = cells["colour"].lower()
            if not _COLOUR.fullmatch(colour):
                raise InvalidInput(f"line {line}: colour {colour!r} of {name!r} is not #rrggbb (e.g. #e6194b)")
            self.agree(self.colours, name, colour, line, "colour")

    def class_id(self, text: str, name: str, line: int) -> str:
        value = normalise_code(text)
        if not value:
            raise InvalidInput(
                f"line {line}: class {name!r} has no id; with an id column every row but ignore ones gives one"
            )
        if not value.lstrip("+-").isdigit() or not 1 <= int(value) <= MAX_CLASSES:
            raise InvalidInput(f"line {line}: id {text!r} of {name!r} is not a whole number from 1 to {MAX_CLASSES}")
        owner = self.id_owners.setdefault(value, (name, line))
        if owner[0] != name:
            raise InvalidInput(
                f"line {line}: id {value} of {name!r} is already the id of {owner[0]!r} (line {owner[1]}): "
                "give each class its own id"
            )
        return value

    @staticmethod
    def agree(given: dict[str, tuple[str, int]], name: str, value: str, line: int, what: str) -> None:
        earlier = given.setdefault(name, (value, line))
        if earlier[0] != value:
            raise InvalidInput(
                f"line {line}: class {name!r} has {what} {value} here but {earlier[0]} on line {earlier[1]}: "
                f"give the rows of one class the same {what}"
            )

    def legend(self, columns: dict[str, int]) -> Legend:
        if not self.order:
            raise InvalidInput(f"legend file {self.source} maps no code to a class: add rows 'code,class'")
        if len(self.order) > MAX_CLASSES:
            raise InvalidInput(
                f"legend file {self.source} has {len(self.order)} classes, more than {MAX_CLASSES}: group codes into "
                "fewer classes"
            )
        ignored = frozenset(code for code, (target, _) in self.code_lines.items() if target == IGNORE)
        classes = tuple(
            LegendClass(
                int(self.ids[name][0]) if "id" in columns else number + 1,
                name,
                self.colours[name][0] if name in self.colours else palette_colour(number),
                tuple(self.codes[name]),
            )
            for number, name in enumerate(self.order)
        )
        return Legend(classes, ignored)
