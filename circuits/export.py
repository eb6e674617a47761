"""A discovered circuit as JSON, Graphviz dot or GraphML (for Gephi, yEd, networkx)."""

from __future__ import annotations

import json
from typing import Any
from xml.etree import ElementTree as ET

from circuits.graph import Edge
from workbench.errors import InputError

FORMATS = ("json", "dot", "graphml")


def export_circuit(result: dict[str, Any], format: str) -> str:
    """`result`: a circuit as the job store holds it (method, edges, scores, ...)."""
    if format not in FORMATS:
        raise InputError(f"unknown export format {format!r}; choose one of: {', '.join(FORMATS)}")
    edges = [Edge.parse(e) for e in result["edges"]]
    scores = result.get("scores", {})
    if format == "json":
        return json.dumps(result, indent=1)
    nodes = sorted({n for e in edges for n in (e.sender, e.receiver)})
    if format == "dot":
        lines = [f"digraph {json.dumps(result.get('method', 'circuit'))} {{"]
        lines += [f"  {json.dumps(n)};" for n in nodes]
        for e in edges:
            label = f' [label="{scores[e.name]:.3g}"]' if e.name in scores else ""
            lines.append(f"  {json.dumps(e.sender)} -> {json.dumps(e.receiver)}{label};")
        return "\n".join([*lines, "}"]) + "\n"
    root = ET.Element("graphml", xmlns="http://graphml.graphdrawing.org/xmlns")
    ET.SubElement(
        root, "key", id="score", attrib={"for": "edge", "attr.name": "score", "attr.type": "double"}
    )
    graph = ET.SubElement(root, "graph", id="circuit", edgedefault="directed")
    for n in nodes:
        ET.SubElement(graph, "node", id=n)
    for e in edges:
        element = ET.SubElement(graph, "edge", source=e.sender, target=e.receiver)
        if e.name in scores:
            ET.SubElement(element, "data", key="score").text = repr(float(scores[e.name]))
    return ET.tostring(root, encoding="unicode", xml_declaration=True) + "\n"
