"""The provenance chain of a record drawn as a picture: inline SVG made on the server.

The chain is the record's ``related`` resources (kept in the bag as ``metadata/record.yaml``):
a resource's ``links`` say what it came from (the translation's ``source`` is the original), and
every resource precedes the archived item itself, shown by its publisher.  The nodes are laid out
left to right in that order (earliest source first); an arrow is drawn for each relation that no
longer path already implies, so the seed reads *Comunismo* No. 22 → *Communism* No. 6 → libcom.org.
The SVG is built with lxml, so every label is escaped as XML text.
"""

from __future__ import annotations

from dataclasses import dataclass

from lxml import etree

from pipeline.dublin_core import describe_date
from pipeline.models import Record, RelatedResource

SVG_NS = "http://www.w3.org/2000/svg"
_W, _H, _GAP, _PAD = 210, 74, 56, 12


@dataclass(frozen=True)
class ChainNode:
    """One link of the chain: its name, its date and language, and what it is."""

    key: str
    label: str
    detail: str
    role: str


def chain(record: Record) -> tuple[list[ChainNode], list[tuple[int, int]]]:
    """The nodes in drawing order and the arrows (from, to) between them, implied ones left out."""
    nodes = [_resource_node(res) for res in record.related]
    item_date = record.issued.date if record.issued and record.issued.date else \
        next((d for d in record.dc.date), "date not given")
    publisher = record.dc.publisher[0].value if record.dc.publisher else record.source_organization
    nodes.append(ChainNode("item", publisher, f"{item_date} · this item", "the archived item"))
    index = {res.id: i for i, res in enumerate(record.related)}
    item = len(nodes) - 1
    edges = {(index[link.target], index[res.id]) for res in record.related for link in res.links
             if link.target in index}
    edges |= {(i, item) for i in range(len(record.related))}
    order = _topological(len(nodes), edges)
    where = {n: pos for pos, n in enumerate(order)}
    kept = _reduce(edges)
    return [nodes[n] for n in order], sorted((where[a], where[b]) for a, b in kept)


def _resource_node(res: RelatedResource) -> ChainNode:
    label = res.part_of.label() if res.part_of else (res.title[0].value if res.title else res.label)
    detail = describe_date(res.issued)
    if res.language:
        detail += " · " + ", ".join(res.language)
    return ChainNode(res.id, label, detail, res.label)


def _topological(count: int, edges: set[tuple[int, int]]) -> list[int]:
    """Kahn's order, ties by record order; a cycle (a hand-edited record) keeps record order."""
    incoming = {n: {a for a, b in edges if b == n} for n in range(count)}
    order: list[int] = []
    while len(order) < count:
        ready = [n for n in range(count) if n not in order and not (incoming[n] - set(order))]
        order.append(ready[0] if ready else next(n for n in range(count) if n not in order))
    return order


def _reduce(edges: set[tuple[int, int]]) -> set[tuple[int, int]]:
    """The edges no longer path implies (a transitive reduction of a small graph)."""
    def reachable(start: int, without: tuple[int, int]) -> set[int]:
        seen, todo = set(), [start]
        while todo:
            n = todo.pop()
            for a, b in edges:
                if a == n and (a, b) != without and b not in seen:
                    seen.add(b)
                    todo.append(b)
        return seen

    return {e for e in edges if e[1] not in reachable(e[0], e)}


def chain_svg(record: Record) -> str:
    """The chain as an ``<svg>`` element (text), for inlining in the item page."""
    nodes, edges = chain(record)
    width = _PAD * 2 + len(nodes) * _W + (len(nodes) - 1) * _GAP
    arcs = any(b - a > 1 for a, b in edges)
    top = 40 if arcs else 0
    svg = etree.Element(f"{{{SVG_NS}}}svg", nsmap={None: SVG_NS}, width=str(width), height=str(_H + 2 * _PAD + top),
                        viewBox=f"0 0 {width} {_H + 2 * _PAD + top}", role="img", id="provenance-chain")
    etree.SubElement(svg, f"{{{SVG_NS}}}title").text = "Provenance chain: " + " → ".join(n.label for n in nodes)
    marker = etree.SubElement(etree.SubElement(svg, f"{{{SVG_NS}}}defs"), f"{{{SVG_NS}}}marker", id="arrow",
                              viewBox="0 0 10 10", refX="10", refY="5", markerWidth="8", markerHeight="8",
                              orient="auto-start-reverse")
    etree.SubElement(marker, f"{{{SVG_NS}}}path", d="M 0 0 L 10 5 L 0 10 z", fill="#444")
    for a, b in edges:
        x1, x2 = float(_PAD + a * (_W + _GAP) + _W), float(_PAD + b * (_W + _GAP))
        y = top + _PAD + _H / 2
        if b - a == 1:
            d = f"M {x1} {y} L {x2} {y}"
        else:  # a relation that skips nodes goes over them
            x1, x2 = x1 - _W / 2, x2 + _W / 2
            d = f"M {x1} {top + _PAD} C {x1} {_PAD / 2} {x2} {_PAD / 2} {x2} {top + _PAD}"
        etree.SubElement(svg, f"{{{SVG_NS}}}path", d=d, fill="none", stroke="#444", **{"stroke-width": "1.5",
                         "marker-end": "url(#arrow)"})
    for i, node in enumerate(nodes):
        group = etree.SubElement(svg, f"{{{SVG_NS}}}g", **{"class": "chain-node", "data-key": node.key})
        etree.SubElement(group, f"{{{SVG_NS}}}title").text = node.role
        x, y = _PAD + i * (_W + _GAP), top + _PAD
        etree.SubElement(group, f"{{{SVG_NS}}}rect", x=str(x), y=str(y), width=str(_W), height=str(_H), rx="8",
                         fill="#fffbe8" if node.key == "item" else "#eef3fb", stroke="#335")
        for dy, text, size, weight in ((28, node.label, "15", "bold"), (50, node.detail, "12", "normal")):
            etree.SubElement(group, f"{{{SVG_NS}}}text", x=str(x + _W / 2), y=str(y + dy), **{
                "text-anchor": "middle", "font-size": size, "font-weight": weight,
                "font-family": "sans-serif"}).text = _fit(text)
    return str(etree.tostring(svg, encoding="unicode"))


def _fit(text: str, limit: int = 28) -> str:
    """A label short enough for its box (the full text is in the page's list below the picture)."""
    return text if len(text) <= limit else text[:limit - 1] + "…"
