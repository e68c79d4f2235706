"""The metadata record: one YAML file per archived item, defined by these pydantic models.

A record names the item (``id``, which also names its bag), describes it in Dublin Core (``dc``),
carries its **provenance chain** as related resources (``related``: the versions and publications
it came from, each with its own date as written and normalised), a provenance statement, a
citation, rights, the organisation that supplied it, and its payload files.

Every model is frozen and forbids unknown fields, so a typo (``titel``) is an error, not silently
lost metadata.  Repeatable values may be written as a single value or a list; text may be a plain
string or ``{value, lang}``.  ``python -m pipeline.models`` writes ``schemas/record.schema.json``.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import re
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError

from pipeline.bag.names import unsafe_reason
from pipeline.fixity import SUPPORTED_ALGORITHMS

#: Names a record and its bag (``<id>.v<N>``): safe as a file name everywhere, never hidden.
ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$"
SCHEMA_ID = "urn:strongroom:schema:record:1"
SCHEMA_PATH = Path(__file__).resolve().parents[1] / "schemas" / "record.schema.json"

#: DCMI relation refinements usable in the provenance chain (http://purl.org/dc/terms/).
Relation = Literal[
    "source", "relation", "isVersionOf", "hasVersion", "isPartOf", "hasPart",
    "references", "isReferencedBy", "isFormatOf", "hasFormat", "replaces", "isReplacedBy",
    "requires", "isRequiredBy", "conformsTo",
]

_LANG = re.compile(r"^[A-Za-z]{2,3}(-[A-Za-z0-9]{1,8})*$")
_W3CDTF = re.compile(
    r"^\d{4}(-(?P<month>\d{2})(-\d{2}(T\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}:\d{2}))?)?)?$"
)
_FULL_DATE = re.compile(r"(?<![\dX])(\d{4})-(\d{2})-(\d{2})(?![\dX])")
_URI = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*:\S+$")
_MEDIA_TYPE = re.compile(r"^[A-Za-z0-9][\w.+-]*/[A-Za-z0-9][\w.+-]*(\s*;.*)?$")


# -- value checks -------------------------------------------------------------------------------


def check_date(value: str) -> str:
    """Return ``value`` if it is a W3CDTF date or an EDTF level 0/1 expression, else raise.

    W3CDTF (``1986``, ``1986-06``, ``2006-01-12``, ``...T10:20Z``) is tried first because EDTF
    requires seconds in times; then EDTF levels 0 and 1 (``1986-06~``, ``198X``,
    ``1985/1986``).  Calendar days are checked too: ``2006-02-29`` is not a date.
    """
    ok = _w3cdtf_ok(value) or (_edtf_level1(value) and _calendar_ok(value))
    if not ok:
        raise PydanticCustomError("date", "invalid date '{value}'", {"value": value})
    return value


def _w3cdtf_ok(value: str) -> bool:
    match = _W3CDTF.match(value)
    if match is None:
        return False
    month = match.group("month")
    return (month is None or 1 <= int(month) <= 12) and _calendar_ok(value) and _time_ok(value)


def _calendar_ok(value: str) -> bool:
    for year, month, day in _FULL_DATE.findall(value):
        try:
            dt.date(int(year), int(month), int(day))
        except ValueError:
            return False
    return True


def _time_ok(value: str) -> bool:
    if "T" not in value:
        return True
    try:
        dt.datetime.fromisoformat(value)
    except ValueError:
        return False
    return True


def _edtf_level1(value: str) -> bool:
    # Imported here: the grammar is built at import and only records with dates need it.
    from edtf.parser.grammar import level0Expression, level1Expression
    from pyparsing import ParseBaseException

    for grammar in (level0Expression, level1Expression):
        try:
            grammar.parse_string(value, parse_all=True)
            return True
        except ParseBaseException:
            continue
    return False


#: A value still to be written: ``strongroom records new`` puts ``<TODO: what>`` where a required
#: field has no value yet, and validation rejects it naming the field, so ``records check`` lists
#: exactly what is left to fill in (and ``ingest`` refuses the record until then).
TODO_MARKER = "<TODO"


def _not_todo(value: str) -> None:
    if value.lstrip().startswith(TODO_MARKER):
        raise PydanticCustomError("todo", "still to fill in (replace '{value}')", {"value": value})


def _check_text(value: str) -> str:
    _not_todo(value)
    if not value.strip():
        raise PydanticCustomError("blank", "must not be empty or blank")
    return value


def _matching(pattern: re.Pattern[str], kind: str, message: str) -> Callable[[str], str]:
    """A field check: the value must match ``pattern``, else error ``kind`` with ``message``."""
    def check(value: str) -> str:
        _not_todo(value)
        if not pattern.match(value):
            raise PydanticCustomError(kind, message, {"value": value})
        return value

    return check


_check_identifier = _matching(
    re.compile(ID_PATTERN), "identifier",
    "invalid identifier '{value}': use 1-100 letters, digits, '.', '_' or '-', starting with a letter or digit")
_check_language = _matching(_LANG, "language", "invalid language tag '{value}' (use BCP 47, e.g. 'en' or 'es')")
_check_uri = _matching(_URI, "uri", "not an absolute URI: '{value}'")
_check_media_type = _matching(_MEDIA_TYPE, "media_type",
                              "not a media type: '{value}' (e.g. 'text/plain; charset=utf-8')")


def _check_payload_path(value: str) -> str:
    reason = unsafe_reason(value)
    if reason is not None:
        raise PydanticCustomError(
            "payload_path", "unsafe payload path '{value}': {reason}",
            {"value": value, "reason": reason})
    return value


def _one_or_many(value: object) -> object:
    """A single value where a list is expected becomes a one-item list (``title: X``)."""
    if isinstance(value, (str, dict, BaseModel)):
        return [value]
    return value


def _non_empty(value: tuple[Any, ...]) -> tuple[Any, ...]:
    if not value:
        raise PydanticCustomError("empty", "at least one value is required")
    return value


def _text_to_lang(value: object) -> object:
    """A plain string is a text without a language: ``X`` means ``{value: X}``."""
    return {"value": value} if isinstance(value, str) else value


# -- field types --------------------------------------------------------------------------------

Text = Annotated[str, AfterValidator(_check_text),
                Field(json_schema_extra={"minLength": 1, "pattern": "\\S"})]
LanguageTag = Annotated[str, AfterValidator(_check_language)]
DateValue = Annotated[str, AfterValidator(check_date)]
Uri = Annotated[str, AfterValidator(_check_uri)]
MediaType = Annotated[str, AfterValidator(_check_media_type)]
PayloadPath = Annotated[str, AfterValidator(_check_payload_path)]
Identifier = Annotated[str, AfterValidator(_check_identifier),
                      Field(json_schema_extra={"pattern": ID_PATTERN})]


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class LangString(_Frozen):
    """A text with an optional language tag (``xml:lang`` in XML, ``@language`` in JSON-LD)."""

    value: Text
    lang: LanguageTag | None = None


LangText = Annotated[
    LangString, BeforeValidator(_text_to_lang, json_schema_input_type=str | LangString)
]
LangTexts = Annotated[
    tuple[LangText, ...],
    BeforeValidator(_one_or_many, json_schema_input_type=str | LangString | list[str | LangString]),
]
Texts = Annotated[
    tuple[Text, ...], BeforeValidator(_one_or_many, json_schema_input_type=str | list[str])
]
Languages = Annotated[
    tuple[LanguageTag, ...], BeforeValidator(_one_or_many, json_schema_input_type=str | list[str])
]
Dates = Annotated[
    tuple[DateValue, ...], BeforeValidator(_one_or_many, json_schema_input_type=str | list[str])
]
RequiredLangTexts = Annotated[
    tuple[LangText, ...],
    AfterValidator(_non_empty),
    BeforeValidator(
        _one_or_many,
        json_schema_input_type=str | LangString
        | Annotated[list[str | LangString], Field(min_length=1)],
    ),
]
Relations = Annotated[
    tuple[Relation, ...],
    BeforeValidator(_one_or_many, json_schema_input_type=Relation | list[Relation]),
]


# -- the record ---------------------------------------------------------------------------------


class DublinCore(_Frozen):
    """The item described with the 15 Dublin Core elements; all repeatable, only ``title`` required.

    Qualified relations (source, isVersionOf, ...) belong in ``Record.related``; ``source`` and
    ``relation`` here are for free-text references that are not part of the provenance chain.
    """

    title: RequiredLangTexts
    creator: LangTexts = ()
    subject: LangTexts = ()
    description: LangTexts = ()
    publisher: LangTexts = ()
    contributor: LangTexts = ()
    date: Dates = ()
    type: Texts = ()
    format: Texts = ()
    identifier: Texts = ()
    source: LangTexts = ()
    language: Languages = ()
    relation: LangTexts = ()
    coverage: LangTexts = ()
    rights: LangTexts = ()

    @field_validator("*")
    @classmethod
    def _bounded(cls, values: tuple[Any, ...], info: ValidationInfo) -> tuple[Any, ...]:
        """Each value at most its field's length: a title goes into bag-info.txt and every catalogue."""
        limit = DC_MAX_CHARS.get(info.field_name or "", DC_DEFAULT_MAX_CHARS)
        for value in values:
            text = value.value if isinstance(value, LangString) else str(value)
            if len(text) > limit:
                raise PydanticCustomError(
                    "too_long", "{length} characters: at most {limit} are allowed in this field",
                    {"length": f"{len(text):,}", "limit": f"{limit:,}"})
        return values


#: The longest value, in characters, of a Dublin Core field; the others: DC_DEFAULT_MAX_CHARS.
#: A title or name is a line in bag-info.txt; a description or rights statement may be long prose.
DC_MAX_CHARS = {"title": 2_000, "creator": 2_000, "contributor": 2_000, "publisher": 2_000,
                "description": 100_000, "rights": 20_000}
DC_DEFAULT_MAX_CHARS = 10_000


class DateStatement(_Frozen):
    """A date as the source writes it (``June 86``) beside its normalised form (``1986-06``).

    Either may be missing - a source may give a date nobody can normalise, or none at all (then
    leave the whole statement out: never invent a date).
    """

    as_written: Text | None = None
    date: DateValue | None = None

    @model_validator(mode="after")
    def _not_empty(self) -> DateStatement:
        if self.as_written is None and self.date is None:
            raise PydanticCustomError("date_statement", "give 'date', 'as_written' or both")
        return self


class PartOf(_Frozen):
    """The publication a resource appeared in: a serial and its issue (``Comunismo``, ``No. 22``)."""

    title: LangText
    issue: Text | None = None

    def label(self) -> str:
        """``Comunismo No. 22``."""
        return f"{self.title.value} {self.issue}" if self.issue else self.title.value


class Link(_Frozen):
    """A relation from one related resource to another (the translation's ``source``)."""

    relation: Relation
    target: Identifier


class RelatedResource(_Frozen):
    """One link of the provenance chain: a version, original or publication of the item.

    ``relation`` is how the *item* relates to this resource (item ``isVersionOf`` resource);
    ``links`` relate this resource to others in the chain.  ``cited_as`` keeps the source text's
    own words for it (``From Communism #6``).
    """

    id: Identifier
    label: Text
    title: LangTexts = ()
    creator: LangTexts = ()
    contributor: LangTexts = ()
    publisher: LangTexts = ()
    language: Languages = ()
    issued: DateStatement | None = None
    part_of: PartOf | None = None
    identifier: Texts = ()
    cited_as: Texts = ()
    description: LangTexts = ()
    relation: Relations = ()
    links: tuple[Link, ...] = ()


class Rights(_Frozen):
    """The rights statement: words for people and a URI (e.g. rightsstatements.org) for machines."""

    statement: RequiredLangTexts
    uri: Uri


class PayloadFile(_Frozen):
    """A file of the item, relative to the record's directory, with optional expected digests."""

    path: PayloadPath
    checksums: dict[str, str] = Field(
        default_factory=dict,
        description="Expected digests {algorithm: hex}; the bag writer refuses a file that differs.",
        json_schema_extra={
            "propertyNames": {"enum": list(SUPPORTED_ALGORITHMS)},
            "additionalProperties": {"type": "string", "pattern": "^[0-9A-Fa-f]+$"},
        },
    )
    format: MediaType | None = None

    @field_validator("checksums")
    @classmethod
    def _check_checksums(cls, value: dict[str, str]) -> dict[str, str]:
        problems: list[str] = []
        for alg, hexdigest in value.items():
            if alg not in SUPPORTED_ALGORITHMS:
                problems.append(f"unsupported algorithm '{alg}' (use one of "
                                f"{', '.join(SUPPORTED_ALGORITHMS)})")
                continue
            want = hashlib.new(alg).digest_size * 2
            if len(hexdigest) != want or not re.fullmatch(r"[0-9A-Fa-f]+", hexdigest):
                problems.append(f"{alg} must be {want} hex digits, got '{hexdigest}'")
        if problems:
            raise PydanticCustomError("checksum", "{problems}", {"problems": "; ".join(problems)})
        # Lowercase so digests compare equal to what hashlib and the manifests say.
        return {alg: hexdigest.lower() for alg, hexdigest in value.items()}


class Record(_Frozen):
    """One archived item: what it is, where it came from, who may use it, and its files."""

    id: Identifier
    dc: DublinCore
    issued: DateStatement | None = None
    related: tuple[RelatedResource, ...] = ()
    provenance: LangTexts = ()
    bibliographic_citation: LangTexts = ()
    rights: Rights
    source_organization: Text
    payload: Annotated[tuple[PayloadFile, ...], AfterValidator(_non_empty),
                       Field(json_schema_extra={"minItems": 1})]

    @model_validator(mode="after")
    def _consistent(self) -> Record:
        problems = consistency_problems(self)
        if problems:
            raise PydanticCustomError("consistency", "{problems}",
                                      {"problems": "\n".join(problems)})
        return self

    def resource(self, resource_id: str) -> RelatedResource:
        """The related resource with this id (KeyError if none)."""
        for res in self.related:
            if res.id == resource_id:
                return res
        raise KeyError(resource_id)


def consistency_problems(record: Record) -> list[str]:
    """Cross-field problems, one ``field.path: message`` line each (ids unique, links resolve)."""
    problems: list[str] = []
    seen: dict[str, int] = {}
    for i, res in enumerate(record.related):
        if res.id in seen:
            problems.append(f"related[{i}].id: duplicate resource id '{res.id}' "
                            f"(also related[{seen[res.id]}])")
        seen.setdefault(res.id, i)
        if not res.relation and not res.links:
            problems.append(f"related[{i}]: give 'relation' (to the item) or 'links' "
                            "(to other resources)")
        for j, link in enumerate(res.links):
            if link.target not in seen and link.target not in {r.id for r in record.related}:
                problems.append(f"related[{i}].links[{j}].target: unknown resource "
                                f"'{link.target}'")
            elif link.target == res.id:
                problems.append(f"related[{i}].links[{j}].target: a resource cannot link to itself")
    paths: dict[str, int] = {}
    for i, item in enumerate(record.payload):
        if item.path in paths:
            problems.append(f"payload[{i}].path: duplicate payload path '{item.path}' "
                            f"(also payload[{paths[item.path]}])")
        paths.setdefault(item.path, i)
    return problems


# -- JSON Schema --------------------------------------------------------------------------------


def record_json_schema() -> dict[str, Any]:
    """The JSON Schema (2020-12) of a record, generated from the models."""
    schema = Record.model_json_schema(mode="validation")
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": SCHEMA_ID,
        **schema,
        "title": "Strongroom record",
    }


def schema_text() -> str:
    """The schema as committed in ``schemas/record.schema.json`` (stable key order, final newline)."""
    return json.dumps(record_json_schema(), indent=2, ensure_ascii=False) + "\n"


def main(argv: list[str] | None = None) -> int:
    """``python -m pipeline.models [PATH]``: write the record schema (default: schemas/)."""
    args = sys.argv[1:] if argv is None else argv
    target = Path(args[0]) if args else SCHEMA_PATH
    target.write_text(schema_text(), encoding="utf-8")
    print(f"wrote {target}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
