"""Translations for outgoing messages: CHT's ``messages-<locale>`` docs, with built-in defaults.

A message configured with ``translation_key`` takes its text from the
translations doc of the message's locale (``custom`` values first, then
``generic``, as CHT merges them), else from English, else from the defaults
below (the texts CHT ships for the keys the transitions use), else the key
itself. The docs are read once and read again when one of them changes in
the feed.
"""

from __future__ import annotations

from api.couch import Database

TRANSLATIONS_PREFIX = "messages-"

DEFAULTS: dict[str, str] = {
    "sms_received": "SMS message received; it will be reviewed shortly. If you were trying to submit a text form, "
                    "please enter a correct form code and try again.",
    "form_not_found": "The form sent '{{form}}' was not recognized. Please complete it again and resend. If this "
                      "problem persists contact your supervisor.",
    "empty": "It looks like you sent an empty message, please try to resend. If you continue to have this "
             "problem please contact your supervisor.",
    "messages.generic.registration_not_found": "No registration found for patient ID {{patient_id}}.",
    "messages.generic.no_provided_patient_id": "No patient ID was provided for this registration.",
    "messages.generic.provided_patient_id_not_unique": "The patient ID {{patient_id}} is already used.",
    "messages.generic.parent_not_found": "The place for this contact was not found.",
    "messages.muting.contact_not_found": "No contact was found for this ID.",
}


class Translations:
    def __init__(self) -> None:
        self._by_locale: dict[str, dict[str, str]] | None = None

    def forget(self) -> None:
        self._by_locale = None

    async def get(self, db: Database) -> dict[str, dict[str, str]]:
        """{locale: {key: text}} from every translations doc."""
        if self._by_locale is None:
            body = await db.all_docs(startkey=TRANSLATIONS_PREFIX, endkey=TRANSLATIONS_PREFIX + "\ufff0",
                                     include_docs=True)
            found: dict[str, dict[str, str]] = {}
            for row in body["rows"]:
                doc = row.get("doc") or {}
                if doc.get("type") != "translations":
                    continue
                locale = str(doc.get("code") or row["id"][len(TRANSLATIONS_PREFIX):])
                values: dict[str, str] = {}
                for part in ("generic", "values", "custom"):
                    if isinstance(doc.get(part), dict):
                        values.update({k: v for k, v in doc[part].items() if isinstance(v, str)})
                found[locale] = values
            self._by_locale = found
        return self._by_locale


def translate(translations: dict[str, dict[str, str]], key: str, locale: str | None) -> str:
    for candidate in (locale, "en"):
        if candidate and key in translations.get(candidate, {}):
            return translations[candidate][key]
    return DEFAULTS.get(key, key)
