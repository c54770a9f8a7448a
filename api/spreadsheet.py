"""Text cells a spreadsheet would run as formulas, made inert: one rule for every CSV Jamii writes.

A cell that starts with ``=``, ``+``, ``-``, ``@``, a tab or a carriage return is read by spreadsheet programs as
a formula (``=HYPERLINK(...)``, ``@SUM(...)``, ``+1+cmd|' /C calc'!A0``), and anyone who can put text in a
report, a contact's name or an SMS controls such cells. As OWASP recommends for CSV injection, such a cell
gets a leading apostrophe, which spreadsheets read as "this is text" and do not show. Plain numbers and phone
numbers (``-2.5``, ``+254700111222``, ``+254 700 111 222``) stay as they are: made only of digits, signs and
separators, they can call nothing.
"""

from __future__ import annotations

import re

TRIGGERS = ("=", "+", "-", "@", "\t", "\r")
_NUMBER = re.compile(r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?")
_PHONE = re.compile(r"\+\d[\d ().\-]*\d")


def is_formula(text: str) -> bool:
    """Would a spreadsheet run this text as a formula (and is it more than a number or a phone number)?"""
    return text.startswith(TRIGGERS) and not _NUMBER.fullmatch(text) and not _PHONE.fullmatch(text)


def neutralise(text: str) -> str:
    """The text, with a leading apostrophe when a spreadsheet would run it as a formula."""
    return "'" + text if is_formula(text) else text
