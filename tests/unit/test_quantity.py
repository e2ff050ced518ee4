from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from hooks.quantity import canonical_quantity, canonical_resources

# (input, what kube-apiserver stores), from k8s.io/apimachinery's quantity tests.
CASES = [
    ("1000m", "1"),
    ("1500m", "1500m"),
    ("0.5", "500m"),
    ("2000", "2k"),
    (2, "2"),
    ("100m", "100m"),
    ("1Gi", "1Gi"),
    ("1024Mi", "1Gi"),
    ("0.5Gi", "512Mi"),
    ("1.5Gi", "1536Mi"),
    ("1000Ki", "1000Ki"),
    ("1.5Ki", "1536"),  # a 5xx once: no binary suffix fits
    ("512", "512"),
    ("1e3", "1e3"),
    ("1E6", "1e6"),
    ("0", "0"),
    ("0Gi", "0"),
    ("1k", "1k"),
    ("1000k", "1M"),
    ("1n", "1n"),
    ("100Mi", "100Mi"),
    ("128974848", "128974848"),
    ("129e6", "129e6"),
    ("123Mi", "123Mi"),
]


@pytest.mark.parametrize(("given_value", "stored"), CASES)
def test_canonical_form_matches_the_api_server(given_value, stored):
    assert canonical_quantity(given_value) == stored


@pytest.mark.parametrize("bad", ["", "1.2.3", "10 Gi", "1K", "Gi", "abc", "1gi", True])
def test_non_quantities_are_refused(bad):
    with pytest.raises(ValueError, match="not a Kubernetes quantity"):
        canonical_quantity(bad)


def _value(q: str) -> Decimal:
    suffixes = {
        "Ki": 2**10,
        "Mi": 2**20,
        "Gi": 2**30,
        "Ti": 2**40,
        "Pi": 2**50,
        "Ei": 2**60,
        "n": Decimal("1e-9"),
        "u": Decimal("1e-6"),
        "m": Decimal("1e-3"),
        "k": 10**3,
        "M": 10**6,
        "G": 10**9,
        "T": 10**12,
        "P": 10**15,
        "E": 10**18,
    }
    for suffix in sorted(suffixes, key=len, reverse=True):
        if q.endswith(suffix):
            return Decimal(q[: -len(suffix)]) * suffixes[suffix]
    if "e" in q:
        number, exp = q.split("e")
        return Decimal(number) * Decimal(10) ** int(exp)
    return Decimal(q)


@given(
    st.integers(min_value=0, max_value=10**6),
    st.sampled_from(["", "m", "k", "M", "G", "Ki", "Mi", "Gi", "e3"]),
)
def test_canonicalizing_keeps_the_value_and_is_idempotent(number, suffix):
    text = f"{number}{suffix}"
    canonical = canonical_quantity(text)
    assert canonical_quantity(canonical) == canonical
    assert _value(canonical) == _value(text)


def test_resources_are_canonical_and_empty_maps_dropped():
    assert canonical_resources({"requests": {"cpu": 1, "memory": "1024Mi"}, "limits": {}}) == {
        "requests": {"cpu": "1", "memory": "1Gi"}
    }


@given(
    st.from_regex(
        r"[+-]?([0-9]{1,25}(\.[0-9]{0,25})?|\.[0-9]{1,25})([KMGTPE]i|[numkMGTPE]|[eE][+-]?[0-9]{1,12})?", fullmatch=True
    )
)
def test_any_quantity_text_is_canonical_or_refused_with_a_value_error(text):
    """Issue 9, item 2: Overflow and InvalidOperation escaped from here as a 500."""
    try:
        assert isinstance(canonical_quantity(text), str)
    except ValueError as exc:
        assert "quantity" in str(exc)


@pytest.mark.parametrize("text", ["1e1000000", "1e30", "-1e30", "9223372036854775808", "8Ei", "1e4294967296"])
def test_quantities_beyond_what_kubernetes_represents_are_refused(text):
    with pytest.raises(ValueError, match="out of range"):
        canonical_quantity(text)
    assert canonical_quantity("9223372036854775807") == "9223372036854775807" and canonical_quantity("7Ei") == "7Ei"
