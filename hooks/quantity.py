"""Kubernetes resource quantities in the API server's canonical form.

The API server rewrites every quantity it stores ("1000m" -> "1", "2000" -> "2k",
"0.5Gi" -> "512Mi"). Metacontroller compares what a hook returns with what it
observes, so a hook that emits a non-canonical quantity updates its child on
every sync. This module reproduces k8s.io/apimachinery's Quantity.String().
"""

from __future__ import annotations

import re
from decimal import ROUND_CEILING, Decimal, InvalidOperation, localcontext
from functools import lru_cache

# The pattern the API server's OpenAPI schema uses for quantities.
QUANTITY_PATTERN = (
    r"^(\+|-)?(([0-9]+(\.[0-9]*)?)|(\.[0-9]+))"
    r"(([KMGTPE]i)|[numkMGTPE]|([eE](\+|-)?(([0-9]+(\.[0-9]*)?)|(\.[0-9]+))))?$"
)
_QUANTITY = re.compile(QUANTITY_PATTERN)

_BINARY = {"Ki": 10, "Mi": 20, "Gi": 30, "Ti": 40, "Pi": 50, "Ei": 60}
_DECIMAL = {"n": -9, "u": -6, "m": -3, "": 0, "k": 3, "M": 6, "G": 9, "T": 12, "P": 15, "E": 18}
_MAX = 2**63 - 1
_DECIMAL_SUFFIX = {exp: suffix for suffix, exp in _DECIMAL.items()}
_BINARY_SUFFIX = {exp: suffix for suffix, exp in _BINARY.items()}


@lru_cache(maxsize=4096, typed=True)  # pure, and the same few quantities recur on every sync
def canonical_quantity(value: float | str) -> str:
    """Return ``value`` as the API server would store it; ValueError if it is no quantity."""
    text = str(value).strip() if not isinstance(value, bool) else ""
    match = _QUANTITY.match(text)
    if not match:
        raise ValueError(f"{value!r} is not a Kubernetes quantity")
    number_end = match.end(2)
    number, suffix = text[:number_end], text[number_end:]
    try:
        amount = Decimal(number)
    except InvalidOperation as exc:  # pragma: no cover - the pattern rules this out
        raise ValueError(f"{value!r} is not a Kubernetes quantity") from exc

    if suffix in _BINARY:
        fmt, exponent, base = "binary", _BINARY[suffix], 2
    elif suffix in _DECIMAL:
        fmt, exponent, base = "decimal", _DECIMAL[suffix], 10
    elif re.fullmatch(r"[eE][+-]?[0-9]+", suffix):  # an exponent such as e3 or E-2 (Kubernetes: an integer)
        fmt, exponent, base = "exponent", int(suffix[1:]), 10
    else:
        raise ValueError(f"{value!r} is not a Kubernetes quantity")
    if not amount:
        return "0"
    # Kubernetes caps quantities at 2^63-1 silently; the CRD refuses larger ones, and so does this.
    digits = amount.adjusted() + 1
    if digits + (exponent if base == 10 else exponent * 0.302) > 20:
        raise ValueError(f"{text} is out of range: a quantity is at most {_MAX}")
    if amount and digits + exponent < -20:  # far below 1n, which is what Kubernetes rounds it up to
        amount, exponent = Decimal("1e-9").copy_sign(amount), 0
    with localcontext(prec=len(number) + 60, Emin=-(10**9), Emax=10**9):
        amount = amount.scaleb(exponent) if base == 10 else amount * Decimal(2) ** exponent
        if abs(amount) > _MAX:
            raise ValueError(f"{text} is out of range: a quantity is at most {_MAX}")
        # Quantities are precise to 1n; the API server rounds up what lies below.
        amount = amount.quantize(Decimal("1e-9"), rounding=ROUND_CEILING)
    if amount == 0:
        return "0"
    if fmt == "binary" and (abs(amount) < 1024 or amount != amount.to_integral_value()):
        fmt = "decimal"
    if fmt == "binary":
        return _format_binary(int(amount))
    return _format_decimal(amount, fmt)


def _format_decimal(amount: Decimal, fmt: str) -> str:
    """Largest exponent (a multiple of 3) that keeps the mantissa an integer."""
    exponent = -9
    mantissa = int((amount * Decimal(10) ** 9).to_integral_value())
    while mantissa % 1000 == 0 and exponent < 18:
        mantissa //= 1000
        exponent += 3
    if fmt == "exponent":
        return f"{mantissa}" if exponent == 0 else f"{mantissa}e{exponent}"
    return f"{mantissa}{_DECIMAL_SUFFIX[exponent]}"


def _format_binary(amount: int) -> str:
    exponent = 0
    while amount % 1024 == 0 and exponent < 60:
        amount //= 1024
        exponent += 10
    # 1.5Ki is 1536: not a whole number of Ki, so the API server writes it without a suffix.
    return f"{amount}{_BINARY_SUFFIX.get(exponent, '')}"


def canonical_resources(resources: dict) -> dict:
    """A ResourceRequirements dict with every quantity canonical and empty maps dropped."""
    out = {}
    for key in ("limits", "requests"):
        if resources.get(key):
            out[key] = {name: canonical_quantity(q) for name, q in resources[key].items()}
    for key, value in resources.items():
        if key not in ("limits", "requests"):
            out[key] = value
    return out
