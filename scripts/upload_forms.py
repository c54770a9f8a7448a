"""Install forms from files, as cht-conf lays them out.

    python -m scripts.upload_forms forms/app/ forms/contact/person-create.xml --prefix contact:

For each ``<name>.xml`` XForm: the doc ``form:<prefix><name>`` (``-`` in the name
becomes ``:``, as cht-conf does) with the XForm as the ``xml`` attachment, the
files of ``<name>-media/`` as attachments beside it, and the keys of
``<name>.properties.json`` (``context``, ``icon``, ``title``...). Each doc is
written in one request, and only when something changed. ``*.json`` files are
JSON forms for SMS, merged into settings ``forms`` under their ``meta.code``.
Exits 1 naming the file when a form is invalid (nothing of that form is written).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import mimetypes
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable

from api.cht.messaging import forms
from api.config import Config
from api.couch import Couch
from api.errors import BadRequest, ServiceUnavailable
from api.settings import SettingsStore

from .admin import admin_config


def form_files(paths: Iterable[Path]) -> tuple[list[Path], list[Path]]:
    """(XForms, JSON forms) named by the paths (folders are searched one level deep)."""
    xml, json_files = [], []
    for path in paths:
        if not path.exists():
            raise BadRequest(f"{path}: no such file or folder", field=str(path))
        candidates = sorted(path.iterdir()) if path.is_dir() else [path]
        for file in candidates:
            if file.suffix == ".xml" and file.is_file():
                xml.append(file)
            elif file.suffix == ".json" and file.is_file() and not file.name.endswith(".properties.json"):
                json_files.append(file)
            elif not path.is_dir():
                raise BadRequest(f"{file}: not an .xml or .json form", field=str(file))
    return xml, json_files


def media_of(xform: Path) -> dict[str, tuple[bytes, str]]:
    folder = xform.with_name(xform.stem + "-media")
    if not folder.is_dir():
        return {}
    return {f.relative_to(folder).as_posix(): (f.read_bytes(), mimetypes.guess_type(f.name)[0]
                                               or "application/octet-stream")
            for f in sorted(folder.rglob("*")) if f.is_file()}


def properties_of(xform: Path) -> dict | None:
    path = xform.with_name(xform.stem + ".properties.json")
    if not path.exists():
        return None
    try:
        return json.loads(path.read_text())
    except ValueError as exc:
        raise BadRequest(f"{path}: not valid JSON: {exc}", field=str(path)) from None


@dataclass
class Prepared:
    xforms: list[tuple[str, Path, bytes, dict[str, tuple[bytes, str]], dict | None]]
    json_forms: dict


def prepare(paths: Iterable[Path], prefix: str = "") -> Prepared:
    """Read and check every form first, so one bad file means nothing is written."""
    xml_files, json_files = form_files([Path(p) for p in paths])
    xforms = []
    for file in xml_files:
        xml = file.read_bytes()
        try:
            forms.parse_xform(xml)
        except forms.XFormError as exc:
            raise BadRequest(f"{file}: {exc}", field=str(file)) from None
        xforms.append((prefix + file.stem.replace("-", ":"), file, xml, media_of(file), properties_of(file)))
    found = forms.load_json_forms((f.name, f.read_text()) for f in json_files)
    return Prepared(xforms, found)


async def install(config: Config, prepared: Prepared, progress: Callable[[str], None] = print) -> int:
    """Install prepared forms; returns how many XForms and JSON forms changed."""
    changed = 0
    async with Couch.from_config(config) as couch:
        db = couch.db(config.db_medic)
        for name, file, xml, media, properties in prepared.xforms:
            if await forms.install_xform(db, name, xml, media, properties):
                progress(f"installed form:{name} from {file}")
                changed += 1
            else:
                progress(f"form:{name} is up to date")
        if prepared.json_forms:
            if await SettingsStore(db).update({"forms": prepared.json_forms}):
                progress(f"stored JSON forms {', '.join(sorted(prepared.json_forms))} in the settings")
                changed += len(prepared.json_forms)
            else:
                progress("JSON forms are up to date")
    return changed


async def upload(config: Config, paths: Iterable[Path], prefix: str = "",
                 progress: Callable[[str], None] = print) -> int:
    return await install(config, prepare(paths, prefix), progress)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Install XForms and JSON forms from files")
    parser.add_argument("paths", nargs="+", type=Path, help="form files, or folders of them")
    parser.add_argument("--prefix", default="", help="put before each XForm's name (cht-conf: contact:)")
    args = parser.parse_args(argv)
    try:
        prepared = prepare(args.paths, args.prefix)
    except (BadRequest, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    config = admin_config()
    if config is None:
        return 2
    try:
        asyncio.run(install(config, prepared))
    except (BadRequest, ServiceUnavailable, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
