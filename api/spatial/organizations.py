"""Organizations and projects of the spatial units API, and who may do what in them.

Everything lives in the spatial database (admin-only, never medic):

* ``organization:<slug>`` — ``{doc_type: "organization", id, slug, name, description,
  members: {user: "admin" | "member"}}``;
* ``project:<org slug>:<slug>`` — ``{doc_type: "project", id, slug, name, description,
  organization: <org slug>, organization_id, members: {user: "PM" | "DC" | "PU"}}``.

Slugs are in the ids, so CouchDB itself keeps them unique; ``id`` is the public, random id the
spec shows. Members are kept in the organization or project doc, so one ``_all_docs`` request
answers "may this user do X in this project". The roles follow the original platform:

========================  =======================================================================
who                       may
========================  =======================================================================
admin / holder of         everything in every organization (create organizations too)
``can_manage_spatial_organizations``
organization ``admin``    everything in the organization: projects, members, spatial units
organization ``member``   see the organization and its projects; list and view their units
project ``PM`` (manager)  list, view, create, update and delete units; manage the project's members
project ``DC`` (collector) list, view, create and update units
project ``PU`` (user)     list and view units
anyone else               nothing, and is told the organization or project does not exist (404);
                          only an update of a unit answers 403, as the platform did
========================  =======================================================================

Validation messages are Django REST framework's, which the platform answered with, except
``This field is required`` (no final period), the text the spec shows.
"""

from __future__ import annotations

import re
import secrets
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, Callable, Mapping

from api.auth import USER_PREFIX, Principal
from api.couch import Database
from api.errors import BadRequest, Conflict, Forbidden, NotFound
from api.permissions import has_permission
from api.schemas import field_of, validator

DDOC = "spatial"
MANAGE_PERMISSION = "can_manage_spatial_organizations"
ORG_PREFIX = "organization:"
PROJECT_PREFIX = "project:"
ORG_ROLES = ("admin", "member")
PROJECT_ROLES = ("PM", "DC", "PU")
UNIT_ACTIONS = ("list", "view", "create", "update", "delete")
ROLE_ACTIONS: dict[str, frozenset[str]] = {
    "PU": frozenset({"list", "view"}),
    "DC": frozenset({"list", "view", "create", "update"}),
    "PM": frozenset({*UNIT_ACTIONS, "manage_members"}),
}
ALL_ACTIONS = frozenset({*UNIT_ACTIONS, "manage_members"})
# The platform's member policy granted the list; reading one unit reveals nothing the list does not.
ORG_MEMBER_ACTIONS = frozenset({"list", "view"})
SLUG = re.compile(r"^[a-z0-9]+(?:-[a-z0-9]+)*$")
SLUG_MAX = 50
ID_ALPHABET = "abcdefghijklmnopqrstuvwxyz0123456789"
REQUIRED = "This field is required"  # the spec's text (DRF's ends with a period)
NULL = "This field may not be null."
PROJECT_NOT_FOUND = "Project not found."  # the platform's text, for a missing or hidden project


def new_public_id() -> str:
    """A random id like the original platform's (24 lower-case letters and digits)."""
    return "".join(secrets.choice(ID_ALPHABET) for _ in range(24))


def now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def slugify(name: str) -> str:
    slug = re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")
    return slug[:SLUG_MAX].rstrip("-")


def org_doc_id(slug: str) -> str:
    return ORG_PREFIX + slug


def project_doc_id(org_slug: str, slug: str) -> str:
    return f"{PROJECT_PREFIX}{org_slug}:{slug}"


def is_slug(value: str) -> bool:
    return len(value) <= SLUG_MAX and bool(SLUG.match(value))


# -- field errors, as the spec shows them: {"<field>": "<message>"} ---------------------------

_TYPE_NAMES = {"integer": "an integer", "number": "a number", "boolean": "true or false", "null": "null"}


def python_type(value: Any) -> str:
    """The name DRF's messages give a decoded JSON value's type: str, int, float, bool, list, dict."""
    return type(value).__name__


def _message(error: Any) -> str:
    """DRF's wording (the platform's) for a JSON Schema error; the spec's for a missing field."""
    if error.validator == "required":
        return REQUIRED
    if error.validator == "type":
        wanted = error.validator_value if isinstance(error.validator_value, list) else [error.validator_value]
        if error.instance is None:
            return NULL
        if "string" in wanted:
            return "Not a valid string."
        if "object" in wanted:
            return f'Expected a dictionary of items but got type "{python_type(error.instance)}".'
        if "array" in wanted:
            return f'Expected a list of items but got type "{python_type(error.instance)}".'
        return "Must be " + " or ".join(_TYPE_NAMES.get(t, t) for t in wanted)
    if error.validator in ("minLength", "pattern") and isinstance(error.instance, str) and not error.instance.strip():
        return "This field may not be blank."
    if error.validator == "maxLength":
        return f"Ensure this field has no more than {error.validator_value} characters."
    if error.validator == "maxItems":
        return f"Ensure this field has no more than {error.validator_value} elements."
    if error.validator in ("enum", "const"):
        allowed = error.validator_value if error.validator == "enum" else [error.validator_value]
        return "Must be one of: " + ", ".join(str(a) for a in allowed)
    if error.validator == "additionalProperties":
        return "Unknown field"
    if error.validator == "pattern" and error.schema.get("description"):
        return error.schema["description"]
    return error.message


def field_errors(schema: str, body: Any, *, rename: Callable[[str], str] = lambda f: f) -> dict[str, str]:
    """One ``{field: message}`` entry per field of ``body`` at fault against a JSON Schema."""
    found: dict[str, str] = {}
    for error in validator(schema).iter_errors(body):
        path = field_of(error)
        message = _message(error)
        if not path and error.validator == "type" and error.instance is not None:
            message = f"Invalid data. Expected a dictionary, but got {python_type(error.instance)}."
        found.setdefault(rename(path) or "non_field_errors", message)
    return found


def check_fields(schema: str, body: Any) -> None:
    """Raise a 400 with one ``{field: message}`` entry per field at fault (nothing is written)."""
    raise_fields(field_errors(schema, body))


def raise_fields(found: Mapping[str, str]) -> None:
    if found:
        field, message = next(iter(found.items()))
        raise BadRequest(f"{field}: {message}", field=field, body=dict(found))


# -- access -------------------------------------------------------------------------------------

def is_global_manager(principal: Principal, settings: Mapping[str, Any]) -> bool:
    return has_permission(principal, MANAGE_PERMISSION, settings)


@dataclass(frozen=True)
class OrgAccess:
    organization: dict[str, Any]
    role: str | None  # "admin" (also for global managers), "member", or None: sees it through a project

    @property
    def is_admin(self) -> bool:
        return self.role == "admin"


@dataclass(frozen=True)
class ProjectAccess:
    organization: dict[str, Any]
    project: dict[str, Any]
    actions: frozenset[str]

    def require(self, action: str, message: str) -> None:
        """Refuse (403, with the spec's message) unless the caller may do ``action`` here."""
        if action not in self.actions:
            raise Forbidden(message)


async def organization_access(db: Database, principal: Principal, settings: Mapping[str, Any],
                              org_slug: str) -> OrgAccess:
    """The organization, if the caller may see it; otherwise NotFound (its existence stays hidden)."""
    org = await db.get_or_none(org_doc_id(org_slug)) if is_slug(org_slug) else None
    if org is None or org.get("doc_type") != "organization":
        raise NotFound("Not found.")
    if is_global_manager(principal, settings):
        return OrgAccess(org, "admin")
    role = (org.get("members") or {}).get(principal.name)
    if role in ORG_ROLES:
        return OrgAccess(org, role)
    rows = (await db.view(DDOC, "memberships_by_user", key=[principal.name, org_slug], limit=1))["rows"]
    if rows:
        return OrgAccess(org, None)
    raise NotFound("Not found.")


async def project_access(db: Database, principal: Principal, settings: Mapping[str, Any],
                         org_slug: str, project_slug: str, *, reveal_existence: bool = False) -> ProjectAccess:
    """The project and what the caller may do in it; NotFound ("Project not found.") when it does not
    exist or they may not even see it.

    With ``reveal_existence`` an existing project the caller has no role in comes back with no actions,
    so the handler answers 403: the platform's answer to an update by a user outside the
    organization, which tells them the project exists (only updates ask for it).
    """
    if not (is_slug(org_slug) and is_slug(project_slug)):
        raise NotFound(PROJECT_NOT_FOUND)
    docs = await db.get_many([org_doc_id(org_slug), project_doc_id(org_slug, project_slug)])
    org = docs.get(org_doc_id(org_slug))
    project = docs.get(project_doc_id(org_slug, project_slug))
    if org is None or project is None:
        raise NotFound(PROJECT_NOT_FOUND)
    org_role = (org.get("members") or {}).get(principal.name)
    if org_role == "admin" or is_global_manager(principal, settings):
        return ProjectAccess(org, project, ALL_ACTIONS)
    role = (project.get("members") or {}).get(principal.name)
    if role in ROLE_ACTIONS:
        return ProjectAccess(org, project, ROLE_ACTIONS[role])
    if org_role == "member":
        return ProjectAccess(org, project, ORG_MEMBER_ACTIONS)
    if reveal_existence:
        return ProjectAccess(org, project, frozenset())
    raise NotFound(PROJECT_NOT_FOUND)


# -- public shapes ------------------------------------------------------------------------------

def organization_ref(org: Mapping[str, Any]) -> dict[str, Any]:
    return {"id": org["id"], "name": org["name"], "slug": org["slug"]}


def organization_body(org: Mapping[str, Any]) -> dict[str, Any]:
    return {**organization_ref(org), "description": org.get("description", "")}


def project_ref(project: Mapping[str, Any], org: Mapping[str, Any]) -> dict[str, Any]:
    """The ``project`` block of a spatial unit, as the spec orders it."""
    return {"id": project["id"], "name": project["name"], "organization": organization_ref(org),
            "slug": project["slug"]}


def project_body(project: Mapping[str, Any], org: Mapping[str, Any]) -> dict[str, Any]:
    return {"id": project["id"], "name": project["name"], "slug": project["slug"],
            "description": project.get("description", ""), "organization": organization_ref(org)}


def members_body(doc: Mapping[str, Any]) -> list[dict[str, str]]:
    return [{"username": name, "role": role} for name, role in sorted((doc.get("members") or {}).items())]


# -- organizations and projects -----------------------------------------------------------------

def _slug_for(body: Mapping[str, Any]) -> str:
    slug = body.get("slug") or slugify(body["name"])
    if not slug:
        raise_fields({"slug": "Give a slug: the name has no letters or digits to make one from"})
    return slug


async def create_organization(db: Database, body: Any, by: str) -> dict[str, Any]:
    check_fields("spatial_organization", body)
    slug = _slug_for(body)
    doc = {"_id": org_doc_id(slug), "doc_type": "organization", "id": new_public_id(), "slug": slug,
           "name": body["name"].strip(), "description": body.get("description", ""), "members": {},
           "created": now(), "created_by": by}
    try:
        await db.put(doc)
    except Conflict:
        raise_fields({"slug": "Organization with this slug already exists."})
    return doc


async def list_organizations(db: Database, principal: Principal, settings: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The organizations the caller may see, by slug."""
    if is_global_manager(principal, settings):
        rows = (await db.all_docs(startkey=ORG_PREFIX, endkey=ORG_PREFIX + "\ufff0", include_docs=True))["rows"]
        return [row["doc"] for row in rows if row.get("doc")]
    rows = (await db.view(DDOC, "memberships_by_user", startkey=[principal.name],
                          endkey=[principal.name, {}]))["rows"]
    slugs = sorted({row["key"][1] for row in rows})
    docs = await db.get_many(org_doc_id(s) for s in slugs)
    return [docs[org_doc_id(s)] for s in slugs if org_doc_id(s) in docs]


async def create_project(db: Database, org: Mapping[str, Any], body: Any, by: str) -> dict[str, Any]:
    check_fields("spatial_project", body)
    slug = _slug_for(body)
    doc = {"_id": project_doc_id(org["slug"], slug), "doc_type": "project", "id": new_public_id(),
           "slug": slug, "name": body["name"].strip(), "description": body.get("description", ""),
           "organization": org["slug"], "organization_id": org["id"], "members": {},
           "created": now(), "created_by": by}
    try:
        await db.put(doc)
    except Conflict:
        raise_fields({"slug": "Project with this slug already exists in this organization."})
    return doc


async def list_projects(db: Database, access: OrgAccess, principal: Principal) -> list[dict[str, Any]]:
    """The organization's projects the caller may see, by slug."""
    prefix = project_doc_id(access.organization["slug"], "")
    rows = (await db.all_docs(startkey=prefix, endkey=prefix + "\ufff0", include_docs=True))["rows"]
    projects = [row["doc"] for row in rows if row.get("doc")]
    if access.role is not None:
        return projects
    return [p for p in projects if principal.name in (p.get("members") or {})]


# -- members ------------------------------------------------------------------------------------

async def _change(db: Database, doc_id: str, change: Callable[[dict[str, Any]], bool]) -> dict[str, Any]:
    """Apply ``change`` to the stored doc and write it, again on a conflict; returns the doc."""
    for _ in range(5):
        doc = await db.get(doc_id)
        if not change(doc):
            return doc
        try:
            await db.put(doc)
            return doc
        except Conflict:
            continue
    raise Conflict("The document changed too often while being updated; try again")


async def set_member(db: Database, users: Database, doc_id: str, username: str, body: Any,
                     roles: tuple[str, ...]) -> dict[str, Any]:
    """Give ``username`` a role in an organization or project (the doc ``doc_id``)."""
    check_fields("spatial_membership", body)
    role = body["role"]
    if role not in roles:
        raise_fields({"role": "Must be one of: " + ", ".join(roles)})
    if await users.get_or_none(USER_PREFIX + username) is None:
        raise_fields({"username": "User does not exist."})

    def give(doc: dict[str, Any]) -> bool:
        if doc.setdefault("members", {}).get(username) == role:
            return False
        doc["members"][username] = role
        return True

    return await _change(db, doc_id, give)


async def remove_member(db: Database, doc_id: str, username: str) -> bool:
    """Take away ``username``'s role; False when they had none."""
    removed = False

    def take(doc: dict[str, Any]) -> bool:
        nonlocal removed
        removed = (doc.get("members") or {}).pop(username, None) is not None
        return removed

    await _change(db, doc_id, take)
    return removed

