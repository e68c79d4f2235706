"""An OAI-PMH 2.0 data provider over the holdings (http://www.openarchives.org/OAI/openarchivesprotocol.html).

* Items: one per record, ``oai:<repository id>:<record id>``, disseminating its **newest** bag.
  Older versions stay reachable by GetRecord as ``oai:<repository id>:<record id>.v<N>`` (the bag's
  own name); they are not listed, and the newest record's ``oai_dc`` names them in ``dc:relation``.
* Formats: ``oai_dc`` (the bag's ``metadata/dc.xml``) and ``premis`` (its ``metadata/premis.xml``,
  the PREMIS 3 record of the ingest that made that version).
* Datestamps: when the newest version was registered in the ledger (else when it was published),
  UTC, seconds granularity.  A new version moves the record to the end of the lists.
* Sets: one per source organisation (``bag-info.txt`` Source-Organization), flat.
* Resumption tokens are self-describing: the query, the position (datestamp and identifier of the
  last item sent), the cursor and the issue time, with a fingerprint.  No server state, so they
  survive a restart; records added meanwhile are not skipped or repeated, since a list is ordered
  by (datestamp, identifier) and a token resumes after a key, not at an offset.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import hashlib
import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from lxml import etree

from pipeline.errors import MetadataError
from pipeline.premis import parse_xml
from pipeline.web.holdings import Holding, Holdings, Index, Version, stamp

OAI_NS = "http://www.openarchives.org/OAI/2.0/"
OAI_SCHEMA = "http://www.openarchives.org/OAI/2.0/OAI-PMH.xsd"
XSI_NS = "http://www.w3.org/2001/XMLSchema-instance"
DC_NS = "http://purl.org/dc/elements/1.1/"
UTC = dt.timezone.utc


@dataclass(frozen=True)
class MetadataFormat:
    """A format the provider disseminates, and the bag file it comes from."""

    prefix: str
    schema: str
    namespace: str
    root: str  # the record's root element, Clark notation
    file: str  # under the bag's metadata/


FORMATS: dict[str, MetadataFormat] = {f.prefix: f for f in (
    MetadataFormat("oai_dc", "http://www.openarchives.org/OAI/2.0/oai_dc.xsd",
                   "http://www.openarchives.org/OAI/2.0/oai_dc/", "{http://www.openarchives.org/OAI/2.0/oai_dc/}dc",
                   "dc.xml"),
    MetadataFormat("premis", "http://www.loc.gov/standards/premis/v3/premis.xsd", "http://www.loc.gov/premis/v3",
                   "{http://www.loc.gov/premis/v3}premis", "premis.xml"),
)}

#: verb -> (required arguments, optional arguments, takes a resumptionToken)
VERBS: dict[str, tuple[frozenset[str], frozenset[str], bool]] = {
    "Identify": (frozenset(), frozenset(), False),
    "ListMetadataFormats": (frozenset(), frozenset({"identifier"}), False),
    "ListSets": (frozenset(), frozenset(), True),
    "ListIdentifiers": (frozenset({"metadataPrefix"}), frozenset({"from", "until", "set"}), True),
    "ListRecords": (frozenset({"metadataPrefix"}), frozenset({"from", "until", "set"}), True),
    "GetRecord": (frozenset({"identifier", "metadataPrefix"}), frozenset(), False),
}
_DAY = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_SECOND = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z$")
#: Characters XML 1.0 cannot hold: an argument with one could not even be echoed in the response.
_NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")


@dataclass(frozen=True)
class ProviderConfig:
    """What Identify says, and how lists are paged."""

    repository_name: str
    base_url: str
    admin_email: str
    repository_id: str = "strongroom.local"
    page_size: int = 100
    token_seconds: int = 24 * 3600


class OaiError(Exception):
    """An OAI-PMH error condition: its code (``badVerb`` ...) and a message for people."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code, self.message = code, message


@dataclass(frozen=True)
class _Query:
    """A list request: what is asked for, and where the previous page ended."""

    verb: str
    prefix: str
    set_spec: str | None
    start: dt.datetime | None
    end: dt.datetime | None
    after: tuple[str, str] | None = None
    cursor: int = 0


class Provider:
    """Answers OAI-PMH requests from the holdings."""

    def __init__(self, holdings: Holdings, config: ProviderConfig) -> None:
        self.holdings = holdings
        self.config = config

    def respond(self, pairs: Sequence[tuple[str, str]], now: dt.datetime | None = None) -> bytes:
        """The XML response to a request given as (name, value) pairs, repeated names kept."""
        now = now or dt.datetime.now(UTC)
        root = etree.Element(f"{{{OAI_NS}}}OAI-PMH", nsmap={None: OAI_NS, "xsi": XSI_NS})
        root.set(f"{{{XSI_NS}}}schemaLocation", f"{OAI_NS} {OAI_SCHEMA}")
        etree.SubElement(root, f"{{{OAI_NS}}}responseDate").text = stamp(now)
        request = etree.SubElement(root, f"{{{OAI_NS}}}request")
        request.text = self.config.base_url
        try:
            verb, args = _check_arguments(pairs)
            for name, value in [("verb", verb), *sorted(args.items())]:
                request.set(name, value)  # only a request without badVerb/badArgument echoes them
            root.append(self._answer(verb, args, now))
        except OaiError as exc:
            if exc.code in ("badVerb", "badArgument"):
                request.attrib.clear()
            error = etree.SubElement(root, f"{{{OAI_NS}}}error", code=exc.code)
            error.text = exc.message
        return bytes(etree.tostring(root, xml_declaration=True, encoding="UTF-8", pretty_print=True))

    def _answer(self, verb: str, args: dict[str, str], now: dt.datetime) -> etree._Element:
        index = self.holdings.index()
        if verb == "Identify":
            return self._identify(index)
        if verb == "ListMetadataFormats":
            return self._formats(index, args.get("identifier"))
        if verb == "ListSets":
            if "resumptionToken" in args:
                raise OaiError("badResumptionToken", "this repository issues no resumption tokens for ListSets")
            return self._sets(index)
        if verb == "GetRecord":
            return self._get_record(index, args["identifier"], args["metadataPrefix"])
        query = self._token(verb, args["resumptionToken"], now) if "resumptionToken" in args else \
            _query(verb, args)
        return self._list(index, query, now)

    # -- verbs ------------------------------------------------------------------------------------

    def _identify(self, index: Index) -> etree._Element:
        c = self.config
        el = etree.Element(f"{{{OAI_NS}}}Identify")
        earliest = min((h.datestamp for h in index.holdings), default=dt.datetime(1970, 1, 1, tzinfo=UTC))
        for tag, text in (("repositoryName", c.repository_name), ("baseURL", c.base_url),
                          ("protocolVersion", "2.0"), ("adminEmail", c.admin_email),
                          ("earliestDatestamp", stamp(earliest)),
                          # Bags are never deleted: a record once listed stays.
                          ("deletedRecord", "no"), ("granularity", "YYYY-MM-DDThh:mm:ssZ")):
            etree.SubElement(el, f"{{{OAI_NS}}}{tag}").text = text
        return el

    def _formats(self, index: Index, identifier: str | None) -> etree._Element:
        formats = list(FORMATS.values())
        if identifier is not None:
            _, version = self._item(index, identifier)
            formats = [f for f in formats if self.holdings.bag_file(version, f"metadata/{f.file}")]
            if not formats:
                raise OaiError("noMetadataFormats", f"no metadata format is available for {identifier}")
        el = etree.Element(f"{{{OAI_NS}}}ListMetadataFormats")
        for f in formats:
            mf = etree.SubElement(el, f"{{{OAI_NS}}}metadataFormat")
            for tag, text in (("metadataPrefix", f.prefix), ("schema", f.schema), ("metadataNamespace", f.namespace)):
                etree.SubElement(mf, f"{{{OAI_NS}}}{tag}").text = text
        return el

    def _sets(self, index: Index) -> etree._Element:
        sets = index.sets()
        if not sets:
            raise OaiError("noSetHierarchy", "this repository holds no records, hence no sets")
        el = etree.Element(f"{{{OAI_NS}}}ListSets")
        for spec, names in sets.items():
            s = etree.SubElement(el, f"{{{OAI_NS}}}set")
            etree.SubElement(s, f"{{{OAI_NS}}}setSpec").text = spec
            etree.SubElement(s, f"{{{OAI_NS}}}setName").text = "Source organisation: " + "; ".join(names)
        return el

    def _get_record(self, index: Index, identifier: str, prefix: str) -> etree._Element:
        holding, version = self._item(index, identifier)
        fmt = _format(prefix)
        metadata = self._metadata(holding, version, fmt)
        if metadata is None:
            raise OaiError("cannotDisseminateFormat", f"{identifier} has no readable {fmt.file} for {prefix}")
        el = etree.Element(f"{{{OAI_NS}}}GetRecord")
        record = etree.SubElement(el, f"{{{OAI_NS}}}record")
        record.append(self._header(holding, version))
        etree.SubElement(record, f"{{{OAI_NS}}}metadata").append(metadata)
        return el

    def _list(self, index: Index, query: _Query, now: dt.datetime) -> etree._Element:
        if query.set_spec is not None and not index.sets():
            raise OaiError("noSetHierarchy", "this repository holds no records, hence no sets")
        fmt = _format(query.prefix)
        remaining = [h for h in index.holdings if fmt.file in h.metadata and _matches(h, query)
                     and (query.after is None or h.key > query.after)]
        if not remaining:
            if query.after is None:
                raise OaiError("noRecordsMatch", "no record matches the request")
            raise OaiError("badResumptionToken", "the list this token resumes has no further records")
        page = remaining[:self.config.page_size]
        el = etree.Element(f"{{{OAI_NS}}}{query.verb}")
        for h in page:
            header = self._header(h, h.newest)
            if query.verb == "ListIdentifiers":
                el.append(header)
                continue
            record = etree.SubElement(el, f"{{{OAI_NS}}}record")
            record.append(header)
            metadata = self._metadata(h, h.newest, fmt)
            if metadata is not None:  # an unreadable file: the header alone, rather than a broken list
                etree.SubElement(record, f"{{{OAI_NS}}}metadata").append(metadata)
        more = len(remaining) > len(page)
        if more or query.after is not None:  # a one-page list needs no token; the last page an empty one
            token = etree.SubElement(el, f"{{{OAI_NS}}}resumptionToken",
                                     completeListSize=str(query.cursor + len(remaining)), cursor=str(query.cursor))
            if more:
                token.set("expirationDate", stamp(now + dt.timedelta(seconds=self.config.token_seconds)))
                token.text = self._issue(query, page[-1].key, query.cursor + len(page), now)
        return el

    # -- records ----------------------------------------------------------------------------------

    def identifier(self, name: str) -> str:
        """The OAI identifier of a record id or a bag name."""
        return f"oai:{self.config.repository_id}:{name}"

    def _item(self, index: Index, identifier: str) -> tuple[Holding, Version]:
        prefix = f"oai:{self.config.repository_id}:"
        local = identifier[len(prefix):] if identifier.startswith(prefix) else None
        if local is not None and local in index.by_id:  # a record id wins over a version's bag name
            holding = index.by_id[local]
            return holding, holding.newest
        if local is not None and local in index.by_bag:
            return index.by_bag[local]
        raise OaiError("idDoesNotExist", f"{identifier} is not an identifier of this repository")

    def _header(self, holding: Holding, version: Version) -> etree._Element:
        header = etree.Element(f"{{{OAI_NS}}}header")
        newest = version is holding.newest
        etree.SubElement(header, f"{{{OAI_NS}}}identifier").text = self.identifier(
            holding.record_id if newest else version.name)
        etree.SubElement(header, f"{{{OAI_NS}}}datestamp").text = stamp(version.datestamp)
        if holding.set_spec:
            etree.SubElement(header, f"{{{OAI_NS}}}setSpec").text = holding.set_spec
        return header

    def _metadata(self, holding: Holding, version: Version, fmt: MetadataFormat) -> etree._Element | None:
        """The format's record from the bag (parsed without entities, never trusted), or None."""
        data = self.holdings.read_metadata(version, fmt.file)
        if data is None:
            return None
        try:
            root = parse_xml(data, f"{version.name}/metadata/{fmt.file}")
        except MetadataError:
            return None
        if root.tag != fmt.root:
            return None
        if fmt.prefix == "oai_dc":
            self._relate_versions(root, holding, version)
        return root

    def _relate_versions(self, dc: etree._Element, holding: Holding, version: Version) -> None:
        """Name the record's other versions in dc:relation, so that a harvester can reach them."""
        if version is holding.newest:
            for older in holding.versions[:-1]:
                etree.SubElement(dc, f"{{{DC_NS}}}relation").text = \
                    f"Has version: {self.identifier(older.name)} (version {older.number})"
        else:
            etree.SubElement(dc, f"{{{DC_NS}}}relation").text = \
                f"Is version of: {self.identifier(holding.record_id)} (version {version.number} of " \
                f"{holding.newest.number})"

    # -- resumption tokens ------------------------------------------------------------------------

    def _issue(self, query: _Query, after: tuple[str, str], cursor: int, now: dt.datetime) -> str:
        body = {"v": 1, "verb": query.verb, "p": query.prefix, "s": query.set_spec,
                "f": stamp(query.start) if query.start else None, "u": stamp(query.end) if query.end else None,
                "k": list(after), "c": cursor, "t": int(now.timestamp())}
        raw = json.dumps(body, separators=(",", ":"), sort_keys=True).encode()
        text = base64.urlsafe_b64encode(raw).decode().rstrip("=")
        return f"{text}.{self._fingerprint(text)}"

    def _fingerprint(self, text: str) -> str:
        # Catches a token cut short or mangled, or one issued by another repository; the content is
        # still checked field by field, since anyone can make a token (a token grants nothing).
        return hashlib.sha256(f"{self.config.repository_id}\n{text}".encode()).hexdigest()[:16]

    def _token(self, verb: str, token: str, now: dt.datetime) -> _Query:
        bad = OaiError("badResumptionToken", "the resumption token is invalid")
        text, _, fingerprint = token.partition(".")
        if not text or fingerprint != self._fingerprint(text):
            raise bad
        try:
            body = json.loads(base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)))
            if not isinstance(body, dict) or body.get("v") != 1:
                raise bad
            if body["verb"] != verb:
                raise OaiError("badResumptionToken", f"the resumption token belongs to {body['verb']}, not {verb}")
            issued = dt.datetime.fromtimestamp(int(body["t"]), UTC)
            if now - issued > dt.timedelta(seconds=self.config.token_seconds) or issued > now + dt.timedelta(
                    minutes=5):
                raise OaiError("badResumptionToken", "the resumption token has expired; start the list again")
            key = body["k"]
            if not (isinstance(key, list) and len(key) == 2 and all(isinstance(k, str) for k in key)):
                raise bad
            cursor = int(body["c"])
            if cursor < 0:
                raise bad
            args = {"metadataPrefix": str(body["p"])}
            args |= {name: str(body[k]) for name, k in (("set", "s"), ("from", "f"), ("until", "u")) if body[k]}
            query = _query(verb, args)
        except OaiError as exc:
            if exc.code == "badResumptionToken":
                raise
            raise bad from None
        except (ValueError, KeyError, TypeError, binascii.Error, OverflowError, OSError):
            raise bad from None
        return _Query(verb, query.prefix, query.set_spec, query.start, query.end, (key[0], key[1]), cursor)


def _check_arguments(pairs: Sequence[tuple[str, str]]) -> tuple[str, dict[str, str]]:
    """The verb and its arguments, or badVerb / badArgument as the protocol defines them."""
    verbs = [v for k, v in pairs if k == "verb"]
    if len(verbs) > 1:
        raise OaiError("badVerb", "the verb argument is repeated")
    if not verbs or verbs[0] not in VERBS:
        raise OaiError("badVerb", "missing verb" if not verbs else "illegal verb")
    verb = verbs[0]
    if any(_NOT_XML.search(text) for pair in pairs for text in pair):
        raise OaiError("badArgument", "an argument holds characters that XML cannot carry")
    args: dict[str, str] = {}
    for name, value in pairs:
        if name == "verb":
            continue
        if name in args:
            raise OaiError("badArgument", f"the argument {name!r} is repeated")
        args[name] = value
    required, optional, resumable = VERBS[verb]
    if "resumptionToken" in args:
        if not resumable:
            raise OaiError("badArgument", f"{verb} takes no resumptionToken")
        if len(args) > 1:
            raise OaiError("badArgument", "resumptionToken is an exclusive argument")
        return verb, args
    illegal = sorted(set(args) - required - optional)
    if illegal:
        raise OaiError("badArgument", f"illegal argument(s) for {verb}: {', '.join(illegal)}")
    missing = sorted(required - set(args))
    if missing:
        raise OaiError("badArgument", f"{verb} requires {', '.join(missing)}")
    return verb, args


def _query(verb: str, args: dict[str, str]) -> _Query:
    start = _date(args["from"], end=False) if "from" in args else None
    end = _date(args["until"], end=True) if "until" in args else None
    if start and end:
        if len(args["from"]) != len(args["until"]):
            raise OaiError("badArgument", "from and until must have the same granularity")
        if start > end:
            raise OaiError("badArgument", "from is later than until")
    _format(args["metadataPrefix"])
    return _Query(verb, args["metadataPrefix"], args.get("set"), start, end)


def _date(value: str, *, end: bool) -> dt.datetime:
    """A from/until value at day or seconds granularity (a day's until means its last second)."""
    try:
        if _DAY.match(value):
            day = dt.datetime.strptime(value, "%Y-%m-%d").replace(tzinfo=UTC)
            return day + dt.timedelta(hours=23, minutes=59, seconds=59) if end else day
        if _SECOND.match(value):
            return dt.datetime.strptime(value, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
    except ValueError:
        pass
    raise OaiError("badArgument", f"{value!r} is not a date of this repository's granularity "
                                  "(YYYY-MM-DD or YYYY-MM-DDThh:mm:ssZ)")


def _format(prefix: str) -> MetadataFormat:
    if prefix not in FORMATS:
        raise OaiError("cannotDisseminateFormat", f"this repository does not disseminate {prefix!r}")
    return FORMATS[prefix]


def _matches(holding: Holding, query: _Query) -> bool:
    if query.set_spec is not None and holding.set_spec != query.set_spec:
        return False
    if query.start is not None and holding.datestamp < query.start:
        return False
    return query.end is None or holding.datestamp <= query.end

