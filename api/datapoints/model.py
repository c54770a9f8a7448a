"""The datapoints resources: their fields, how records are stored, and how they are shown.

Every record is a CouchDB document in the datapoints database with
``_id = "<resource>:<id>"``, ``kind = <resource>`` and an integer ``id``; the
user resource is the exception (``_id = "username:<name>"``, see ``store``).
A deleted record leaves a *reservation* ``{"reserves": <resource>, "id": n}``
under the same ``_id``, so its id is never given out again.
"""

from __future__ import annotations

import datetime as dt
import json
import math
import re
import unicodedata
from dataclasses import dataclass, field
from typing import Any, Mapping

from api.errors import BadRequest
from api.spreadsheet import neutralise

INT, NUMBER, STRING, BOOL, DATE, DATETIME, JSON = "int", "number", "string", "bool", "date", "datetime", "json"
ORDERED_TYPES = frozenset({INT, NUMBER, STRING, DATE, DATETIME})

# Who may write a resource (besides admins): holders of ``manage:datapoints``,
# or of ``write:datapoints`` for records they own.
MANAGE, WRITE = "manage", "write"


@dataclass(frozen=True)
class Field:
    name: str
    type: str
    ref: str | None = None  # the resource an ``*_id`` field points to
    stored: bool = True  # False: computed when the record is shown
    writable: bool = True  # False: set by the server (ids, owners, timestamps)

    @property
    def filterable(self) -> bool:
        return self.stored and self.type != JSON


@dataclass(frozen=True)
class Resource:
    name: str
    fields: tuple[Field, ...]
    write: str = MANAGE
    owner_field: str | None = None  # set to the caller on insert
    owner_only: bool = False  # only the owner (or a manager) may change or delete a record
    params: frozenset[str] = frozenset()  # query parameters besides the filters
    references: Mapping[str, str] = field(default_factory=dict)  # shown name -> stored ``*_id`` field
    slug_from: str | None = None  # ``slug`` is made from this field when not given

    @property
    def by_name(self) -> dict[str, Field]:
        return {f.name: f for f in self.fields}

    @property
    def stored_fields(self) -> list[Field]:
        return [f for f in self.fields if f.stored]

    @property
    def writable_fields(self) -> list[Field]:
        return [f for f in self.fields if f.stored and f.writable]

    def schema_name(self) -> str:
        return f"datapoints/{self.name}"


def _f(name: str, type_: str, **kw: Any) -> Field:
    return Field(name, type_, **kw)


ID = _f("id", INT, writable=False)
CREATED_AT = _f("created_at", DATETIME, writable=False)
RESOURCE_URI = _f("resource_uri", STRING, stored=False, writable=False)


def _base(*fields: Field) -> tuple[Field, ...]:
    return (ID, *fields, CREATED_AT, RESOURCE_URI)


def _map(master: str) -> Resource:
    return Resource(f"{master}_map", _base(
        _f("master_object_id", INT, ref=master),
        _f("source_object_id", INT),
        _f("mapped_by_id", INT, ref="user", writable=False),
    ), owner_field="mapped_by_id")


RESOURCES: dict[str, Resource] = {r.name: r for r in (
    Resource("office", _base(_f("name", STRING))),
    Resource("campaign_type", _base(_f("name", STRING))),
    Resource("region_type", _base(_f("name", STRING))),
    Resource("indicator_tag", _base(_f("tag_name", STRING), _f("parent_tag_id", INT, ref="indicator_tag"))),
    Resource("region", _base(
        _f("name", STRING), _f("slug", STRING), _f("region_code", STRING),
        _f("region_type_id", INT, ref="region_type"), _f("region_type", STRING, stored=False),
        _f("office_id", INT, ref="office"), _f("office", JSON, stored=False),
        _f("parent_region_id", INT, ref="region"), _f("parent_region", JSON, stored=False),
        _f("latitude", NUMBER), _f("longitude", NUMBER), _f("shape_file_path", STRING),
        _f("source_id", INT), _f("depth", INT, writable=False),
    ), params=frozenset({"read_write", "depth_level"}),
        references={"office": "office_id", "parent_region": "parent_region_id"}, slug_from="name"),
    Resource("indicator", _base(
        _f("name", STRING), _f("short_name", STRING), _f("slug", STRING), _f("description", STRING),
        _f("is_reported", BOOL), _f("source_id", INT), _f("source_name", STRING),
        _f("bound_json", JSON), _f("tag_json", JSON), _f("calculation", JSON),
    ), params=frozenset({"read_write"}), slug_from="name"),
    Resource("campaign", _base(
        _f("name", STRING), _f("slug", STRING), _f("start_date", DATE), _f("end_date", DATE),
        _f("office_id", INT, ref="office"), _f("office", JSON, stored=False),
        _f("campaign_type_id", INT, ref="campaign_type"),
    ), references={"office": "office_id"}),
    _map("region"),
    _map("indicator"),
    _map("campaign"),
    Resource("document", _base(
        _f("docfile", STRING), _f("doc_text", STRING), _f("guid", STRING), _f("source_id", INT),
        _f("created_by_id", INT, ref="user", writable=False), _f("is_processed", BOOL),
        _f("master_datapoint_count", INT), _f("source_datapoint_count", INT),
    ), write=WRITE, owner_field="created_by_id", owner_only=True, params=frozenset({"show_all"})),
    Resource("document_review", _base(
        _f("document_id", INT, ref="document"), _f("db_model", STRING), _f("source_object_id", INT),
        _f("source_string", STRING), _f("master_object_id", INT), _f("map_id", INT),
        _f("source_dp_count", INT), _f("master_dp_count", INT),
    )),
    Resource("group", _base(_f("name", STRING))),
    Resource("user_group", _base(_f("user_id", INT, ref="user"), _f("group_id", INT, ref="group"))),
    Resource("region_permission", _base(
        _f("user_id", INT, ref="user"), _f("region_id", INT, ref="region"), _f("read_write", STRING),
    ), params=frozenset({"read_write"})),
    Resource("user_permission", _base(_f("user_id", INT, ref="user"), _f("auth_code", STRING))),
    Resource("group_permission", _base(_f("group_id", INT, ref="group"), _f("indicator_id", INT, ref="indicator"))),
    Resource("custom_dashboard", _base(
        _f("title", STRING), _f("description", STRING), _f("default_office_id", INT, ref="office"),
        _f("dashboard_json", JSON), _f("owner_id", INT, ref="user", writable=False),
        _f("owned_by_current_user", BOOL, stored=False, writable=False),
        _f("owner_username", STRING, stored=False, writable=False),
    ), write=WRITE, owner_field="owner_id", owner_only=True),
    Resource("user", (
        ID, _f("username", STRING), _f("first_name", STRING), _f("last_name", STRING),
        _f("email", STRING), _f("is_active", BOOL), _f("is_superuser", BOOL, writable=False),
        _f("is_staff", BOOL), _f("last_login", DATETIME, writable=False),
        _f("date_joined", DATETIME, writable=False), RESOURCE_URI,
    )),
)}

# Values a new record gets when the body leaves them out.
DEFAULTS: dict[str, dict[str, Any]] = {
    "region": {"latitude": None, "longitude": None, "shape_file_path": None, "parent_region_id": None,
               "source_id": None},
    "indicator": {"description": "", "is_reported": False, "source_id": None, "source_name": "",
                  "bound_json": [], "tag_json": [], "calculation": None},
    "indicator_tag": {"parent_tag_id": None},
    "document": {"docfile": "", "doc_text": "", "source_id": None, "is_processed": False,
                 "master_datapoint_count": 0, "source_datapoint_count": 0},
    "document_review": {"source_string": "", "master_object_id": None, "map_id": None,
                        "source_dp_count": 0, "master_dp_count": 0},
    "region_permission": {"read_write": "r"},
    "custom_dashboard": {"description": "", "default_office_id": None, "dashboard_json": None},
    "user": {"first_name": "", "last_name": "", "email": "", "is_active": True, "is_staff": False},
}

# The models a document_review row may point at.
REVIEW_MODELS = ("region", "indicator", "campaign")


def doc_id(resource_name: str, record_id: int) -> str:
    return f"{resource_name}:{record_id}"


def user_doc_id(username: str) -> str:
    """The user profile's ``_id``: one profile per CouchDB user name, by construction."""
    return f"username:{username}"


def resource_uri(resource_name: str, record_id: Any) -> str:
    return f"/api/v2/{resource_name}/{record_id}/"


def now_iso() -> str:
    """UTC time as the spec shows it: ``YYYY-MM-DDTHH:MM:SS.sss``."""
    return dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3]


_SLUG_STRIP = re.compile(r"[^\w\s-]")
_SLUG_DASH = re.compile(r"[-\s]+")


def slugify(text: str) -> str:
    """Django's slugify: ASCII, lower case, dashes for spaces."""
    text = unicodedata.normalize("NFKD", str(text)).encode("ascii", "ignore").decode("ascii")
    text = _SLUG_STRIP.sub("", text).strip().lower()
    return _SLUG_DASH.sub("-", text).strip("-_")


def record(doc: Mapping[str, Any], res: Resource) -> dict[str, Any]:
    """The stored fields of a doc (what clients see before references are added)."""
    return {f.name: doc.get(f.name) for f in res.fields if f.stored}


def csv_cell(value: Any) -> str:
    """One CSV cell: JSON for structures, lower-case booleans, empty for null.

    A text cell that a spreadsheet would run as a formula gets a leading
    apostrophe (``api.spreadsheet``: numbers and phone numbers stay as they are).
    """
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (dict, list)):
        value = json.dumps(value, separators=(",", ":"), ensure_ascii=False)
    elif isinstance(value, (int, float)):
        return repr(value) if isinstance(value, float) else str(value)
    return neutralise(str(value))


def check_finite(value: Any, field: str) -> None:
    """JSON allows no NaN or Infinity (Python's parser does): refuse them anywhere in a value."""
    if isinstance(value, float) and not math.isfinite(value):
        raise BadRequest(f"{field}: must be a finite number", field=field)
    if isinstance(value, dict):
        for item in value.values():
            check_finite(item, field)
    elif isinstance(value, list):
        for item in value:
            check_finite(item, field)
