"""Canonical JSON and the hashes over it: what makes a ranking recomputable byte for byte.

Canonical JSON is ``json.dumps(doc, sort_keys=True, separators=(",", ":"), ensure_ascii=False)`` encoded as
UTF-8. Documents hold only objects, arrays, strings, integers, booleans and null: never a float. Rates and
scores travel as fixed-decimal strings, and instants as UTC text with microseconds (``facts.iso``).
"""

from __future__ import annotations

import hashlib
import json
from fractions import Fraction
from typing import Any


def _check(value: Any, where: str = "$") -> None:
    if isinstance(value, float):
        raise TypeError(f"{where}: floats are not allowed in hashed documents")
    if isinstance(value, dict):
        for key, item in value.items():
            _check(item, f"{where}.{key}")
    elif isinstance(value, list | tuple):
        for i, item in enumerate(value):
            _check(item, f"{where}[{i}]")


def canonical(doc: Any) -> bytes:
    _check(doc)
    return json.dumps(doc, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def digest(doc: Any) -> str:
    return sha256_hex(canonical(doc))


def fixed(value: Fraction, places: int = 4) -> str:
    """``value`` rounded half to even at ``places`` decimals, as text (``Fraction(5, 6)`` -> ``"0.8333"``)."""
    scaled = value * 10**places
    whole, rest = divmod(scaled.numerator, scaled.denominator)
    twice = 2 * rest
    if twice > scaled.denominator or (twice == scaled.denominator and whole % 2):
        whole += 1
    sign = "-" if whole < 0 else ""
    digits = str(abs(whole)).rjust(places + 1, "0")
    return f"{sign}{digits[:-places]}.{digits[-places:]}" if places else f"{sign}{digits}"
