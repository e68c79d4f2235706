"""Record files: YAML on disk <-> :class:`pipeline.models.Record`.

Records are read with a SafeLoader subclass that is *stricter* than ``yaml.safe_load``: every
plain scalar stays a string (``2006-01-12`` is not turned into a date, ``22`` not into an int,
``no`` not into ``False``), duplicate keys and aliases are refused, and a file must hold exactly one
mapping.  Problems come back as :class:`RecordError` with one ``field.path: message`` line each,
and the YAML line where one is known.
"""

from __future__ import annotations

import codecs
import os
import re
import stat
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError
from yaml.composer import ComposerError
from yaml.constructor import ConstructorError
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from pipeline.errors import PayloadError, RecordError, UsageError
from pipeline.models import Record

#: A record is metadata, never a payload: anything bigger is a mistake, not a record.
MAX_RECORD_BYTES = 4 << 20
RECORD_NAME = "record.yaml"
RECORD_SUFFIX = ".record.yaml"
_NULL = "tag:yaml.org,2002:null"


class _RecordLoader(yaml.SafeLoader):
    """Safe loading with strings for all plain scalars, no duplicate keys and no aliases."""

    # Aliases let a small file expand into a huge structure ("billion laughs" for YAML);
    # records never need them.
    def compose_node(self, parent: Node | None, index: int) -> Node | None:
        if self.check_event(yaml.AliasEvent):
            event = self.peek_event()  # type: ignore[no-untyped-call]
            raise ComposerError(None, None, "aliases (*name) are not allowed in records",
                                event.start_mark)
        return super().compose_node(parent, index)

    def construct_mapping(self, node: MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: dict[object, int] = {}
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            try:
                first = seen.get(key)
            except TypeError:
                raise ConstructorError(None, None, "mapping keys must be plain strings",
                                       key_node.start_mark) from None
            if first is not None:
                raise ConstructorError(None, None, f"duplicate key '{key}' (first on line {first})",
                                       key_node.start_mark)
            seen[key] = key_node.start_mark.line + 1
        return super().construct_mapping(node, deep=deep)


# Keep only the null resolver: every other plain scalar is a string, as metadata should be.
_RecordLoader.yaml_implicit_resolvers = {
    first: [(tag, rx) for tag, rx in resolvers if tag == _NULL]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}


@dataclass(frozen=True)
class LoadedRecord:
    """A record as read from disk: the file, the validated model and the exact bytes read."""

    path: Path
    record: Record
    raw: bytes

    @property
    def root(self) -> Path:
        """The record file's directory: payload paths are relative to it and may not leave it."""
        return self.path.parent


def load_record(path: Path) -> LoadedRecord:
    """Read and validate one record file, or raise :class:`RecordError` naming every problem."""
    raw = _read(path)
    node, data = _parse(path, raw)
    try:
        record = Record.model_validate(data)
    except ValidationError as exc:
        raise RecordError(path, _problems(exc, node)) from None
    return LoadedRecord(path=path, record=record, raw=raw)


def parse_record(text: str, *, path: Path = Path("<record>")) -> Record:
    """Validate a record given as YAML text (``path`` only names it in errors)."""
    node, data = _parse(path, text.encode("utf-8"))
    try:
        return Record.model_validate(data)
    except ValidationError as exc:
        raise RecordError(path, _problems(exc, node)) from None


class _RecordDumper(yaml.SafeDumper):
    """SafeDumper that double-quotes (and so escapes) strings a plain style would alter."""


# NEL, LS, PS and CR are YAML line breaks and control characters are not printable: written
# raw they are folded or refused on reading, so such strings are escaped in double quotes.
_NEEDS_ESCAPES = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u2028\u2029\ufeff\r]")


def _represent_str(dumper: yaml.SafeDumper, data: str) -> yaml.ScalarNode:
    style = '"' if _NEEDS_ESCAPES.search(data) else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", data, style=style)


_RecordDumper.add_representer(str, _represent_str)


def dump_record(record: Record) -> str:
    """The record as YAML text that :func:`load_record` reads back to an equal record."""
    data = _simplify(record.model_dump(mode="json", exclude_defaults=True))
    return yaml.dump(data, Dumper=_RecordDumper, sort_keys=False, allow_unicode=True, width=100)


class _IndentedDumper(_RecordDumper):
    """Lists indented under their key, as people write records (``records/`` does)."""

    def increase_indent(self, flow: bool = False, indentless: bool = False) -> None:
        super().increase_indent(flow, False)


def dump_yaml(data: dict[str, Any]) -> str:
    """Plain record data (also one not yet valid, e.g. with ``<TODO>`` values) as readable YAML.

    Strings are escaped as :func:`dump_record` escapes them, so :func:`load_record` reads back
    exactly these values.
    """
    return yaml.dump(data, Dumper=_IndentedDumper, sort_keys=False, allow_unicode=True, width=100)


def _simplify(value: Any) -> Any:
    """``{value: X}`` without a language is written as plain ``X``, as a person would."""
    if isinstance(value, dict):
        if set(value) == {"value"}:
            return value["value"]
        return {k: _simplify(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_simplify(v) for v in value]
    return value


def _read(path: Path) -> bytes:
    # A FIFO or device named record.yaml would block the open (or never end): refuse it unopened.
    if path.exists() and not path.is_file():
        raise RecordError(path, ["not a regular file"])
    try:
        with open(path, "rb") as fh:
            raw = fh.read(MAX_RECORD_BYTES + 1)
    except OSError as exc:
        raise RecordError(path, [f"cannot read the record: {exc.strerror or exc}"]) from None
    if len(raw) > MAX_RECORD_BYTES:
        raise RecordError(path, [f"larger than {MAX_RECORD_BYTES >> 20} MiB: not a record"])
    return raw


def _parse(path: Path, raw: bytes) -> tuple[Node, dict[str, Any]]:
    """The YAML node tree (for line numbers) and the data of a one-mapping document."""
    bom = len(codecs.BOM_UTF8) if raw.startswith(codecs.BOM_UTF8) else 0
    try:
        text = raw[bom:].decode("utf-8")
    except UnicodeDecodeError as exc:
        offset = bom + exc.start  # in the file, the BOM included
        line = raw[:offset].count(b"\n") + 1
        raise RecordError(path, [f"not UTF-8 (byte {offset})"], line=line) from None
    loader = _RecordLoader(text)
    try:
        node = loader.get_single_node()
        data = loader.construct_document(node) if node is not None else None
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        at = mark.line + 1 if mark is not None else None
        what = "; ".join(x for x in (exc.context, exc.problem) if x) or "invalid YAML"
        raise RecordError(path, [f"YAML syntax error: {what}"], line=at) from None
    except yaml.YAMLError as exc:
        raise RecordError(path, [f"YAML error: {exc}"]) from None
    finally:
        loader.dispose()
    if node is None or data is None:
        raise RecordError(path, ["the record is empty"])
    if not isinstance(data, dict):
        kind = "list" if isinstance(data, list) else "single value"
        raise RecordError(path, [f"a record must be a YAML mapping, not a {kind}"],
                          line=node.start_mark.line + 1)
    return node, data


# -- validation problems ------------------------------------------------------------------------


def _problems(exc: ValidationError, root: Node) -> list[str]:
    lines: list[str] = []
    for err in exc.errors(include_url=False):
        loc, kind, msg = tuple(err["loc"]), err["type"], err["msg"]
        if kind == "consistency":
            # Cross-field problems name their own fields, one per line.
            lines.extend(str(err["ctx"]["problems"]).splitlines())
            continue
        if kind == "missing":
            loc, msg = loc[:-1], f"'{err['loc'][-1]}' is required"
        elif kind == "extra_forbidden":
            loc, msg = loc[:-1], f"unknown field '{err['loc'][-1]}'"
        line = _line_of(root, loc if kind != "extra_forbidden" else tuple(err["loc"]))
        where = field_path(loc)
        at = f" (line {line})" if line is not None else ""
        lines.append(f"{where}: {msg}{at}" if where else f"{msg}{at}")
    return lines


def field_path(loc: Iterable[int | str]) -> str:
    """``('dc', 'date', 0)`` -> ``dc.date[0]``."""
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def _line_of(node: Node, loc: tuple[int | str, ...]) -> int | None:
    """The 1-based YAML line of the value at ``loc`` (or of the nearest parent that exists)."""
    for part in loc:
        child = _child(node, part)
        if child is None:
            break
        node = child
    return int(node.start_mark.line) + 1


def _child(node: Node, part: int | str) -> Node | None:
    if isinstance(node, MappingNode):
        for key, value in node.value:
            if isinstance(key, ScalarNode) and key.value == part:
                return value if isinstance(value, Node) else None
    elif isinstance(node, SequenceNode) and isinstance(part, int) and part < len(node.value):
        child = node.value[part]
        return child if isinstance(child, Node) else None
    elif isinstance(part, int) and part == 0:
        return node  # a single value written where a list is allowed
    return None


# -- many records -------------------------------------------------------------------------------


def is_record_file(name: str) -> bool:
    """``record.yaml`` or ``<anything>.record.yaml``."""
    return name == RECORD_NAME or (name.endswith(RECORD_SUFFIX) and not name.startswith("."))


def discover_records(directory: Path) -> list[Path]:
    """Every record file below ``directory``, sorted; dot-directories (staging, .git) are skipped."""
    if not directory.is_dir():
        raise UsageError(f"{directory}: not a directory")
    found: list[Path] = []
    for top, dirs, files in os.walk(directory):
        dirs[:] = [d for d in dirs if not d.startswith(".")]
        found.extend(Path(top) / name for name in files if is_record_file(name))
    return sorted(found)


def payload_problem(root: Path, relative: str) -> str | None:
    """Why the payload ``relative`` cannot be bagged from ``root``, or None; the file is not read.

    Refuses missing files, symlinks (at any level below ``root``), anything not a regular file,
    and paths that resolve outside ``root``.
    """
    current = root
    for part in relative.split("/"):
        current = current / part
        try:
            mode = current.lstat().st_mode
        except FileNotFoundError:
            return "not found"
        except OSError as exc:
            return f"cannot be read ({exc.strerror or exc})"
        if stat.S_ISLNK(mode):
            return "is a symlink (refused: the archive stores files, not links)"
    if not stat.S_ISREG(mode):
        return "is not a regular file"
    if not current.resolve().is_relative_to(root.resolve()):
        return "escapes the record's directory"
    return None


def check_records(paths: Iterable[Path]) -> list[str]:
    """Every problem of these record files, one line each, file first; empty when all are good.

    Checks each record's syntax and fields, that its payload files exist (without reading them)
    and that no two records share an id.
    """
    problems: list[str] = []
    owners: dict[str, Path] = {}
    for path in paths:
        try:
            loaded = load_record(path)
        except RecordError as exc:
            problems.extend(error_lines(exc))
            continue
        rid = loaded.record.id
        if rid in owners:
            problems.append(f"{path}: duplicate id '{rid}' (also used by {owners[rid]})")
        else:
            owners[rid] = path
        problems.extend(_payload_lines(loaded))
    return problems


def _payload_lines(loaded: LoadedRecord) -> Iterator[str]:
    for item in loaded.record.payload:
        problem = payload_problem(loaded.root, item.path)
        if problem is not None:
            yield str(PayloadError(loaded.path, item.path, problem))


def error_lines(exc: RecordError) -> list[str]:
    """A RecordError as one line per problem, each starting with the file (and YAML line)."""
    where = f"{exc.path}:{exc.line}" if exc.line is not None else str(exc.path)
    return [f"{where}: {problem}" for problem in exc.problems]
