"""The unit every data source yields: one document of text with its domain."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class Document:
    """A document: its text, the domain it belongs to, and where it came from.

    `source` names the file (and line, for JSONL) or built-in corpus item, so errors and the
    manifest can point at it; `meta` holds optional labels such as an arithmetic skill.
    """

    text: str
    domain: str
    source: str
    meta: dict[str, str] = field(default_factory=dict)
