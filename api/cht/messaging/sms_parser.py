"""SMS reports parsed against the JSON forms of the settings (``forms``), as CHT does.

Pure functions, no I/O. The formats:

* **Muvuku** ``1!CODE!v1#v2#v3``: values in field order.
* **Muvuku, labelled** ``J1!CODE!label#value#label#value`` (``\\#`` is a literal ``#``).
* **Textforms** ``CODE KEY value # KEY value``: a key is a field's key or its tiny
  label, in any case; a number may follow its key without a space (``LMP12``).
* **Compact Textforms** ``CODE v1 v2 "a quoted value"``: values in field order; a
  trailing ``string`` field takes the rest of the message.

Fields are taken in ``position`` order when every field has one, otherwise in
the order the settings list them. Values are converted by field type:
``string``, ``integer``, ``month`` (1-12), ``date`` (``YYYY-MM-DD``, ISO 8601 or
ms since the epoch -> ms since the epoch, UTC), ``boolean`` (1/0, true/false,
yes/no), ``phone_number`` (E.164 with the settings' country); ``list`` maps a
code to its label, ``length`` and ``range`` bound a value; other types (CHT's
Bikram Sambat ones) are kept as written.

Problems never stop a parse: they are returned as CHT-style errors
``{code, message, fields?}`` to be recorded on the report:

* ``sys.empty``: nothing in the message;
* ``sys.form_not_found``: a Muvuku message (or any, in ``forms_only_mode``) for
  an unknown form; other text for no known form is a plain message, not an error;
* ``sys.missing_fields``: required fields without a value;
* ``sys.invalid_fields``: values that do not fit their field (``details`` says why);
* ``extra_fields``: surplus values or unknown keys.
"""

from __future__ import annotations

import datetime as dt
import math
import re
from dataclasses import dataclass, field
from typing import Any, Mapping

from api.cht import phones

MUVUKU_RE = re.compile(r"^\s*(1|[Jj]1)!([^!]*)!(.*)$", re.DOTALL)
TEXTFORMS_CODE_RE = re.compile(r"^\s*([^\s!\-,:#]+)[\s!\-,:#]*")
BOUNDARY_RE = re.compile(r"\s*#\s*")
COMPACT_TOKEN_RE = re.compile(r'"[^"]*"|[^\s"]+')
VALUE_SEPARATOR_RE = re.compile(r"^[\s!\-]*")
INVISIBLE_RE = re.compile("[\u200b-\u200d\ufeff]")
DATE_RE = re.compile(r"^(\d{4})[-/](\d{1,2})[-/](\d{1,2})$")
EPOCH_MS_RE = re.compile(r"^\d{11,}$")
INTEGER_RE = re.compile(r"^[+-]?\d+$")
TRUE_WORDS = frozenset({"1", "true", "yes"})
FALSE_WORDS = frozenset({"0", "false", "no"})


class Invalid(ValueError):
    """A value that does not fit its field; the message says why."""


@dataclass
class Parsed:
    form: str | None  # the form's key in settings ``forms``; None for a plain message
    code: str | None  # the form code as read from the message, upper case
    fields: dict[str, Any] = field(default_factory=dict)
    errors: list[dict[str, Any]] = field(default_factory=list)
    format: str | None = None  # muvuku | javarosa | textforms | compact


def error(code: str, message: str, **extra: Any) -> dict[str, Any]:
    return {"code": code, "message": message, **extra}


def translate(label: Any, locale: str | None = None) -> Any:
    """A label in the locale: labels are strings or ``{"en": ..., "fr": ...}``."""
    if isinstance(label, Mapping):
        for wanted in (locale, "en"):
            if wanted and isinstance(label.get(wanted), str):
                return label[wanted]
        return next((v for v in label.values() if isinstance(v, str)), None)
    return label


def label_variants(spec: Mapping[str, Any], kind: str) -> list[str]:
    """Every translation of a field's ``labels[kind]``."""
    label = (spec.get("labels") or {}).get(kind)
    if isinstance(label, str):
        return [label]
    if isinstance(label, Mapping):
        return [v for v in label.values() if isinstance(v, str)]
    return []


def ordered_fields(definition: Mapping[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    fields = [(k, v if isinstance(v, dict) else {}) for k, v in (definition.get("fields") or {}).items()]
    if fields and all(isinstance(v.get("position"), (int, float)) for _, v in fields):
        fields.sort(key=lambda kv: kv[1]["position"])
    return fields


def find_form(forms: Mapping[str, Any], code: str | None) -> tuple[str, dict[str, Any]] | None:
    """The form (key, definition) for a code: its key or ``meta.code``, in any case."""
    if not code or not isinstance(forms, Mapping):
        return None
    wanted = code.upper()
    for key, definition in forms.items():
        if isinstance(definition, dict) and key.upper() == wanted:
            return key, definition
    for key, definition in forms.items():
        meta_code = (definition.get("meta") or {}).get("code") if isinstance(definition, dict) else None
        if isinstance(meta_code, str) and meta_code.upper() == wanted:
            return key, definition
    return None


def form_code(message: Any) -> str | None:
    """The form code a message starts with (upper case), Muvuku or Textforms."""
    if not isinstance(message, str):
        return None
    muvuku = MUVUKU_RE.match(message)
    if muvuku:
        return muvuku.group(2).strip().upper() or None
    match = TEXTFORMS_CODE_RE.match(message)
    return match.group(1).upper() if match else None


# -- values -----------------------------------------------------------------


def _integer(value: Any) -> int:
    if isinstance(value, bool):
        raise Invalid("must be a whole number")
    if isinstance(value, int):
        return value
    if isinstance(value, float) and math.isfinite(value) and value.is_integer():
        return int(value)
    if isinstance(value, str) and INTEGER_RE.match(value.strip()):
        return int(value.strip())  # int() reads any script's digits (Devanagari too)
    raise Invalid("must be a whole number")


def _date_ms(value: Any) -> int:
    if isinstance(value, bool):
        raise Invalid("must be a date (YYYY-MM-DD)")
    if isinstance(value, (int, float)) and math.isfinite(value):
        return int(value)
    if isinstance(value, str):
        text = value.strip()
        if EPOCH_MS_RE.match(text):
            return int(text)
        parts = DATE_RE.match(text)
        try:
            if parts:
                day = dt.datetime(*(int(p) for p in parts.groups()), tzinfo=dt.timezone.utc)
            else:
                day = dt.datetime.fromisoformat(text)
                if day.tzinfo is None:
                    day = day.replace(tzinfo=dt.timezone.utc)
            return int(day.timestamp() * 1000)
        except ValueError:
            pass
    raise Invalid("must be a date (YYYY-MM-DD)")


def _boolean(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, (int, float)) and value in (0, 1):
        return bool(value)
    if isinstance(value, str):
        word = value.strip().lower()
        if word in TRUE_WORDS:
            return True
        if word in FALSE_WORDS:
            return False
    raise Invalid("must be 1 or 0")


def _text(value: Any) -> str:
    if isinstance(value, bool):
        raise Invalid("must be text")
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float) and math.isfinite(value):
        return str(int(value)) if value.is_integer() else str(value)
    if isinstance(value, str):
        return value.strip()
    raise Invalid("must be text")


def _from_list(options: Any, value: Any, locale: str | None) -> Any:
    """A list field stores the label of the option whose code was sent."""
    for option in options if isinstance(options, list) else []:
        if isinstance(option, list) and len(option) >= 2 and str(option[0]).lower() == str(value).lower():
            return translate(option[1], locale)
    raise Invalid("is not one of the options")


def _bounded(spec: Mapping[str, Any], value: Any, size: int) -> None:
    length = spec.get("length")
    if isinstance(length, list) and len(length) == 2 and not (length[0] <= size <= length[1]):
        raise Invalid(f"must be {length[0]} to {length[1]} characters long")
    bounds = spec.get("range")
    if (isinstance(bounds, list) and len(bounds) == 2 and isinstance(value, (int, float))
            and not (bounds[0] <= value <= bounds[1])):
        raise Invalid(f"must be between {bounds[0]} and {bounds[1]}")


def convert(spec: Mapping[str, Any], value: Any, settings: Mapping[str, Any], locale: str | None = None) -> Any:
    """A raw value (SMS text or a JSON scalar) as its field's type; raises Invalid."""
    kind = spec.get("type") or "string"
    if kind in ("integer", "month"):
        number = _integer(value)
        if kind == "month" and not 1 <= number <= 12:
            raise Invalid("must be a month from 1 to 12")
        _bounded(spec, number, len(str(abs(number))))
        return _from_list(spec["list"], number, locale) if spec.get("list") else number
    if kind == "date":
        return _date_ms(value)
    if kind == "boolean":
        return _boolean(value)
    if kind in ("phone_number", "phone"):
        normalized = phones.normalize(_text(value), settings)
        if normalized is None:
            raise Invalid("must be a phone number")
        return normalized
    if kind == "string":
        text = _text(value)
        _bounded(spec, None, len(text))
        return _from_list(spec["list"], text, locale) if spec.get("list") else text
    return value.strip() if isinstance(value, str) else value


def is_blank(value: Any) -> bool:
    return value is None or (isinstance(value, str) and not value.strip())


def set_deep(target: dict[str, Any], key: str, value: Any) -> None:
    """``a.b`` keys make nested objects, as CHT's dotted field keys do."""
    *parents, last = key.split(".")
    for part in parents:
        child = target.get(part)
        if not isinstance(child, dict):
            child = target[part] = {}
        target = child
    target[last] = value


def build_fields(definition: Mapping[str, Any], raw: Mapping[str, Any], settings: Mapping[str, Any],
                 locale: str | None = None) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Convert raw values by field; returns (fields, errors for missing and invalid values)."""
    fields: dict[str, Any] = {}
    missing: list[str] = []
    invalid: dict[str, str] = {}
    for key, spec in ordered_fields(definition):
        value = raw.get(key)
        if is_blank(value):
            if spec.get("required"):
                missing.append(key)
            continue
        try:
            set_deep(fields, key, convert(spec, value, settings, locale))
        except Invalid as exc:
            invalid[key] = str(exc)
    errors = []
    if missing:
        errors.append(error("sys.missing_fields", f"Missing fields: {', '.join(missing)}.", fields=missing))
    if invalid:
        described = "; ".join(f"{k} {why}" for k, why in invalid.items())
        errors.append(error("sys.invalid_fields", f"Invalid values: {described}.", fields=list(invalid),
                            details=invalid))
    return fields, errors


# -- formats ----------------------------------------------------------------


def _unquote(token: str) -> str:
    return token[1:-1] if len(token) >= 2 and token[0] == token[-1] == '"' else token


def _keys_and_labels(definition: Mapping[str, Any], kinds: tuple[str, ...]) -> list[tuple[str, str]]:
    """(lower-case label, field key) for every key and label, longest first."""
    pairs = []
    for key, spec in ordered_fields(definition):
        pairs.append((key.lower(), key))
        for kind in kinds:
            pairs.extend((label.lower(), key) for label in label_variants(spec, kind) if label.strip())
    return sorted(set(pairs), key=lambda p: -len(p[0]))


def _after_label(segment: str, label: str) -> str | None:
    """The rest of a segment that starts with the label (then a space, digit, - or !), else None."""
    if not segment.lower().startswith(label):
        return None
    rest = segment[len(label):]
    if rest and not (rest[0].isspace() or rest[0].isdigit() or rest[0] in "-!"):
        return None
    return rest


def is_compact(definition: Mapping[str, Any], text: str) -> bool:
    """Compact when there is one segment and it does not start with a key or label."""
    if not text.strip() or len(BOUNDARY_RE.split(text.strip())) != 1:
        return False
    first = text.strip()
    return not any(_after_label(first, label) is not None
                   for label, _ in _keys_and_labels(definition, ("tiny", "short")))


def _textforms(definition: Mapping[str, Any], text: str) -> tuple[dict[str, str], list[str]]:
    labels = _keys_and_labels(definition, ("tiny",))
    raw: dict[str, str] = {}
    extra: list[str] = []
    for segment in BOUNDARY_RE.split(text.strip()):
        if not segment:
            continue
        for label, key in labels:
            rest = _after_label(segment, label)
            if rest is not None:
                if key in raw:
                    extra.append(segment[:len(label)])
                else:
                    raw[key] = VALUE_SEPARATOR_RE.sub("", rest).strip()
                break
        else:
            extra.append(segment.split()[0])
    return raw, extra


def _compact(definition: Mapping[str, Any], text: str) -> tuple[dict[str, str], list[str]]:
    tokens = COMPACT_TOKEN_RE.findall(text)
    fields = ordered_fields(definition)
    raw: dict[str, str] = {}
    for index, (key, spec) in enumerate(fields):
        if not tokens:
            break
        if index == len(fields) - 1 and (spec.get("type") or "string") == "string" and len(tokens) > 1:
            raw[key] = " ".join(_unquote(t) for t in tokens)
            tokens = []
        else:
            raw[key] = _unquote(tokens.pop(0))
    return raw, [_unquote(t) for t in tokens]


def _muvuku(definition: Mapping[str, Any], data: str) -> tuple[dict[str, str], list[str]]:
    values = [v.strip() for v in data.split("#")]
    fields = ordered_fields(definition)
    raw = {key: values[i] for i, (key, _) in enumerate(fields) if i < len(values)}
    return raw, [v for v in values[len(fields):] if v]


def _javarosa(definition: Mapping[str, Any], data: str) -> tuple[dict[str, str], list[str]]:
    parts = re.split(r"(?<!\\)#", data)
    labels = dict(_keys_and_labels(definition, ("tiny",)))
    raw: dict[str, str] = {}
    extra: list[str] = []
    for i in range(0, len(parts) - 1, 2):
        label, value = parts[i].strip(), parts[i + 1].replace("\\#", "#").strip()
        key = labels.get(label.lower())
        if key is None or key in raw:
            extra.append(label)
        else:
            raw[key] = value
    if len(parts) % 2 and parts[-1].strip():
        extra.append(parts[-1].strip())
    return raw, extra


def parse(message: Any, settings: Mapping[str, Any], locale: str | None = None) -> Parsed:
    """Parse an SMS against the settings' forms; problems come back as errors, never exceptions."""
    text = INVISIBLE_RE.sub("", message) if isinstance(message, str) else ""
    if not text.strip():
        return Parsed(None, None, errors=[error("sys.empty", "Message appears empty.")])
    forms = settings.get("forms") or {}
    muvuku = MUVUKU_RE.match(text)
    code = form_code(text)
    found = find_form(forms, code)
    if found is None:
        errors = []
        if muvuku or settings.get("forms_only_mode"):
            errors.append(error("sys.form_not_found", f"Form '{code}' not found.", form=code))
        return Parsed(None, code if errors else None, errors=errors)
    key, definition = found
    if muvuku:
        version = muvuku.group(1).upper()
        fmt = "javarosa" if version == "J1" else "muvuku"
        raw, extra = (_javarosa if fmt == "javarosa" else _muvuku)(definition, muvuku.group(3))
    else:
        rest = TEXTFORMS_CODE_RE.sub("", text, count=1)
        fmt = "compact" if is_compact(definition, rest) else "textforms"
        raw, extra = (_compact if fmt == "compact" else _textforms)(definition, rest)
    fields, errors = build_fields(definition, raw, settings, locale)
    if extra:
        errors.append(error("extra_fields", f"Extra fields: {', '.join(extra)}.", values=extra))
    return Parsed(key, code, fields, errors, fmt)
