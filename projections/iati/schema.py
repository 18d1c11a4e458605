"""Validation against the official IATI 2.03 activity schema, offline and streaming.

The schema files ship inside the package (`xsd/`); the activity schema includes
`iati-common.xsd` and imports `xml.xsd` by relative path, so it is parsed from its own
path, with the network forbidden. A file is validated while it is parsed (libxml2's
validator on the parse events), and each finished element is dropped, so memory stays
flat whatever the file's size.
"""

from __future__ import annotations

from functools import lru_cache
from importlib.resources import as_file, files
from pathlib import Path

from lxml import etree

SCHEMA_FILE = "iati-activities-schema.xsd"
MAX_ERRORS = 5


def schema_dir() -> Path:
    """The packaged copy of the schema (a real folder for an installed package)."""
    with as_file(files("homeledger.projections.iati").joinpath("xsd")) as folder:
        return Path(folder)


@lru_cache(maxsize=4)
def load_schema(folder: Path | None = None) -> etree.XMLSchema:
    path = (folder or schema_dir()) / SCHEMA_FILE
    parser = etree.XMLParser(no_network=True, resolve_entities=False, load_dtd=False)
    return etree.XMLSchema(etree.parse(str(path), parser))


def schema_errors(path: Path, schema: etree.XMLSchema | None = None) -> list[str]:
    """What makes the file invalid against the schema (empty: valid)."""
    depth = 0
    try:
        for event, element in etree.iterparse(
            str(path), events=("start", "end"), schema=schema or load_schema(),
            no_network=True, resolve_entities=False, huge_tree=True,
        ):  # fmt: skip
            if event == "start":
                depth += 1
                continue
            depth -= 1
            if depth in (1, 2):  # an activity, or a child of one: done with it
                element.clear()
                parent = element.getparent()
                while element.getprevious() is not None:
                    del parent[0]
    except etree.XMLSyntaxError as exc:
        errors = [f"line {e.line}: {e.message}" for e in list(exc.error_log)[:MAX_ERRORS]]
        return errors or [str(exc)]
    return []
