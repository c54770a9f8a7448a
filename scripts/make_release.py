"""Package this checkout's design docs as a release for ``/api/v1/upgrade``.

    python -m scripts.make_release 1.2.0 --dir /media/usb/builds      # a bundle folder
    python -m scripts.make_release 1.2.0 --couch http://admin:pw@mirror:5984/builds

A bundle is ``<dir>/<version>/ddocs/`` (this project's layout); in a builds
database it is the doc ``medic:medic:<version>`` with one attachment
``<db>/<ddoc>.json`` per design doc.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import sys
from pathlib import Path

from api.config import ROOT, split_credentials
from api.couch import Couch
from api.ddocs import DdocError, check, load_all
from api.upgrades import attachment_db


def to_dir(version: str, target: Path, source: Path) -> Path:
    dest = target / version / "ddocs"
    if dest.exists():
        shutil.rmtree(dest)
    shutil.copytree(source, dest)
    (target / version / "release.json").write_text(json.dumps({"version": version}))
    return dest.parent


async def to_couch(version: str, url: str, source: Path) -> None:
    base, user, password = split_credentials(url)
    server, _, db_name = base.rpartition("/")
    async with Couch(server, user, password) as couch:
        await couch.create_db(db_name)
        db = couch.db(db_name)
        doc_id = f"medic:medic:{version}"
        doc = await db.get_or_none(doc_id) or {"_id": doc_id}
        doc.update(type="release", version=version)
        await db.put(doc)
        for logical, docs in load_all(source).items():
            for ddoc in docs:
                name = f"{attachment_db(logical)}/{ddoc['_id'][len('_design/'):]}.json"
                result = await db.put_attachment(doc_id, name, json.dumps(ddoc).encode(), "application/json",
                                                 doc["_rev"])
                doc["_rev"] = result["rev"]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("version")
    where = parser.add_mutually_exclusive_group(required=True)
    where.add_argument("--dir", type=Path, help="a builds folder (e.g. on a USB stick)")
    where.add_argument("--couch", help="a builds database URL with credentials")
    parser.add_argument("--ddocs", type=Path, default=ROOT / "ddocs", help="the design docs to package")
    args = parser.parse_args(argv)
    problems = check([d for docs in load_all(args.ddocs).values() for d in docs])
    if problems:
        print("error: invalid design documents:\n  " + "\n  ".join(problems), file=sys.stderr)
        return 1
    try:
        if args.dir:
            print(f"release {args.version} written to {to_dir(args.version, args.dir, args.ddocs)}")
        else:
            asyncio.run(to_couch(args.version, args.couch, args.ddocs))
            print(f"release {args.version} stored in {args.couch.rsplit('@', 1)[-1]}")
    except DdocError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
