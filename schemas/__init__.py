"""The project's Avro schemas, shipped inside the package so default paths resolve in a wheel or a
container image as well as in a checkout."""

from __future__ import annotations

import json
from importlib import resources
from pathlib import Path
from typing import Any

TRACKING_EVENT = "schemas/tracking_event.avsc"
DEAD_LETTER = "schemas/dead_letter.avsc"


def schema_path(configured: str | Path) -> Path:
    """The file a configured schema path names.

    The path as given (relative to the working directory) when it exists; otherwise, for a bare
    name or a `schemas/<name>` path such as the default, the file of that name shipped in this
    package. Raises `FileNotFoundError` when neither exists: a missing custom schema is never
    silently replaced by the shipped one.
    """
    path = Path(configured)
    if path.is_file():
        return path
    if not path.is_absolute() and path.parent in (Path(), Path("schemas")):
        shipped = resources.files(__name__).joinpath(path.name)
        if shipped.is_file():
            return Path(str(shipped))
    raise FileNotFoundError(f"no such schema file: {configured}")


def load_schema(configured: str | Path) -> dict[str, Any]:
    """The schema at `configured` (see `schema_path`) as parsed JSON."""
    loaded = json.loads(schema_path(configured).read_text(encoding="utf-8"))
    if not isinstance(loaded, dict):
        raise ValueError(f"{configured}: an Avro schema file must hold a JSON object")
    return loaded
