"""User identity normalization and hashing: the SHA-256 vectors of openai-capi.md §4.3."""

from __future__ import annotations

import ipaddress
import unicodedata

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from transforms import identity

# openai-capi.md §4.3: normalized input → SHA-256 (lowercase hex), every row.
HASH_VECTORS = [
    ("user@example.com", "b4c9a289323b21a01c3e940f150eb9b8c542587f1abfd8f0e1cc1ffc5e475514"),
    ("14155552671", "758fbf68945f21c416814c539ab578876c8d98fb69e6da692def92cd52417fe0"),
    ("customer_123", "18f69bcd2f9cc9c38195e722b2a5590429840ea5090971d2256e026926e55fa1"),
    ("customer_12345", "73d83a078369bb4f0971b317aa7797a91cf5c0df1b62161c2e47d75c33ab5b6e"),
    ("ada", "fdee430d40bd57deeac186cd9790033d0f06f909a8806e7ce6e717ab7c7d5029"),
    ("lovelace", "fb1e7ec987523d2cb9e022cec1d6ae7c99dc46edfae4fe51254025fe4bea571f"),
    ("maryjane", "f08f448a5e7a9dc3619bb7c129f6a7d5fc6af002cea17ad71dfdc1c68f4d4e0e"),
    ("oconnor", "7a0fbfdf40cbeb97429bdb88f512cecd27f0d44b7e57986ab578423bb61936ac"),
    ("jos\u00e9", "d994e1d001886fe5b45b1267bd1fa2b752ac50742579bd3dad7b2a2aa0ed6866"),
    ("jose\u0301", "0c06649e61569bf7f121faa2a2cf294afb57f9e5f1b0a72424b80ca99419af67"),
    ("ada@example.com", "b5fc85e55755f9e0d030a10ab4429b6b2944855f9a0d60077fe832becbc41d72"),
    ("40746123456", "af9e136cc1c34ac87999ef8bd28b3d15c08a75b9ae1c2018b39c0f37c23296bd"),
    ("4402079460958", "40f19965b0d0ebba641dbd9309c3ac18542d9ad976c47f8d35347daea67ee2c2"),
    ("CUST-00042", "382211e688c29ae2dcce0b401999831aec27161d9bc0ffd092545a828a18bbc8"),
    ("\u0219tef\u0103nescu", "1c43886f1047ed5dfae59c0945ff61475b7df3a912312a6484ce80429df049a1"),
    ("oneill", "fa0fd24b2d0175a5c48e1b82f4d707a8a95f5279c4abdc43fa2f19d8e30eb47d"),
    ("vanderberg", "aad607ca3121d5d843c2cd64e8c73c2a24fa3a4cb890ed8d40a1efa8af7a14d5"),
]


@pytest.mark.parametrize(("normalized", "digest"), HASH_VECTORS)
def test_hash_vectors(normalized: str, digest: str) -> None:
    assert identity.sha256_hex(normalized) == digest


# Raw CA value → normalized value, through the documented rule of each field (the inputs are
# the ones §4.2 and the [WEB] fixtures derive the vectors from).
@pytest.mark.parametrize(
    ("normalize", "raw", "normalized"),
    [
        (identity.normalize_email, " Ada@Example.COM ", "ada@example.com"),
        (identity.normalize_email, "USER@example.com", "user@example.com"),
        (identity.normalize_phone, "+1 (415) 555-2671", "14155552671"),
        (identity.normalize_phone, "+40 746 123 456", "40746123456"),
        (identity.normalize_phone, "+00 44 (0)20 7946 0958", "4402079460958"),
        (identity.normalize_phone, "+1\u00a0415\u00a0555\u00a02671", "14155552671"),
        (identity.normalize_external_id, "  CUST-00042  ", "CUST-00042"),
        (identity.normalize_external_id, 12345, "12345"),
        (identity.normalize_name, "Ada", "ada"),
        (identity.normalize_name, "Mary Jane", "maryjane"),
        (identity.normalize_name, "O'Connor", "oconnor"),
        (identity.normalize_name, "O'Neill", "oneill"),
        (identity.normalize_name, " Van  Der Berg ", "vanderberg"),
        (identity.normalize_name, "Jos\u00e9", "jos\u00e9"),
        (identity.normalize_name, "Jose\u0301", "jos\u00e9"),  # NFD in, NFC out
        (identity.normalize_name, "\u0218tef\u0103nescu", "\u0219tef\u0103nescu"),
        (identity.normalize_country, "usa", "US"),
        (identity.normalize_country, " fr ", "FR"),
        (identity.normalize_geo_text, " San Francisco ", "san francisco"),
        (identity.normalize_postal_code, " 02108 ", "02108"),
        (identity.normalize_ip, " 203.0.113.1 ", "203.0.113.1"),
        (identity.normalize_ip, "2001:db8::1", "2001:db8::1"),
        (
            identity.prehashed,
            "B5FC85E55755F9E0D030A10AB4429B6B2944855F9A0D60077FE832BECBC41D72",
            "b5fc85e55755f9e0d030a10ab4429b6b2944855f9a0d60077fe832becbc41d72",
        ),
    ],
)
def test_normalization(normalize: object, raw: object, normalized: str) -> None:
    assert callable(normalize)
    assert normalize(raw) == normalized


@pytest.mark.parametrize(
    ("normalize", "raw"),
    [
        (identity.normalize_email, "ada.example.com"),
        (identity.normalize_email, "a@b@c"),
        (identity.normalize_email, " @x"),
        (identity.normalize_phone, "+40 74"),
        (identity.normalize_phone, "+1 234 567 890 123 456 789"),
        (identity.normalize_phone, "not-a-phone"),
        (identity.normalize_phone, "+\u0661\u0662\u0663\u0664\u0665\u0666\u0667\u0668\u0669"),
        (identity.normalize_external_id, "   "),
        (identity.normalize_external_id, True),
        (identity.normalize_name, " '. - "),
        (identity.normalize_country, "XX"),
        (identity.normalize_country, "\u00df"),  # "ß".upper() is "SS", South Sudan
        (identity.normalize_postal_code, "941 07!"),
        (identity.normalize_ip, "256.1.1.1"),
        (identity.normalize_ip, "fe80::1%eth0"),
        (identity.prehashed, "g" * 64),
        (identity.sha256_hex, "\ud800"),  # a lone surrogate has no UTF-8 form
    ],
)
def test_invalid_values_are_dropped(normalize: object, raw: object) -> None:
    assert callable(normalize)
    assert normalize(raw) is None


def test_name_normalization_is_nfc_whatever_the_input_form() -> None:
    decomposed = unicodedata.normalize("NFD", "Ștefănescu José")
    assert identity.normalize_name(decomposed) == "ștefănescujosé"


@pytest.mark.parametrize(
    ("cookie", "value"),
    [
        ("__oppref=a", "a"),
        ("_ga=1; __oppref=oppref_abc", "oppref_abc"),
        ("_ga=1;__oppref= spaced ;x=2", "spaced"),
        ("x__oppref=1; __oppref=2", "2"),
        ("__oppref=; __oppref=second", "second"),
        ("__opprefs=1", None),
        ("a=__oppref=1", None),
        ("__oppref", None),
    ],
)
def test_cookie_reader(cookie: str, value: str | None) -> None:
    assert identity.cookie_reader("__oppref")(cookie) == value


def stdlib_ipv6(text: str) -> bool:
    if "%" in text:  # a zone index: never an address CAPI takes
        return False
    try:
        ipaddress.IPv6Address(text)
    except ValueError:
        return False
    return True


@st.composite
def ipv6_like(draw: st.DrawFn) -> str:
    """Real addresses in every text form, then damaged a little: near the boundary."""
    address = ipaddress.IPv6Address(draw(st.integers(0, 2**128 - 1)))
    text = draw(st.sampled_from([str(address), address.exploded]))
    if draw(st.booleans()):
        octets = draw(st.lists(st.integers(0, 300), min_size=3, max_size=5))
        text = text.rsplit(":", 2)[0] + ":" + ".".join(map(str, octets))
    for _ in range(draw(st.integers(0, 2))):
        at = draw(st.integers(0, len(text)))
        text = (
            text[:at]
            + draw(st.sampled_from(["", ":", "::", ".", "0", "g", "00000"]))
            + text[at + draw(st.integers(0, 2)) :]
        )
    return text


@settings(max_examples=3000, deadline=None)
@given(st.one_of(ipv6_like(), st.text("0123456789abcdefABCDEF:.%x ", max_size=24)))
def test_ipv6_check_accepts_exactly_what_the_standard_library_does(text: str) -> None:
    assert identity.is_ipv6(text) == stdlib_ipv6(text)
    assert (identity.normalize_ip(text) == text) == (
        text == text.strip() and (stdlib_ipv6(text) or identity._IPV4.fullmatch(text) is not None)
    )


_OCTET_LIKE = st.integers(0, 300).map(str) | st.sampled_from(
    ["", "00", "01", "007", "1a", "\u0663"]
)


@settings(max_examples=3000, deadline=None)
@given(
    st.lists(_OCTET_LIKE, min_size=2, max_size=5).map(".".join)
    | st.text("0123456789. a\u0663", max_size=18)
)
def test_the_ipv4_loop_accepts_exactly_what_the_pattern_does(text: str) -> None:
    # The loop is what a compiled build runs; the pattern is what the interpreter runs.
    assert identity._is_ipv4(text) == (identity._IPV4.fullmatch(text) is not None)


def _cookie_reference(name: str, cookie: str) -> str | None:
    """`cookie_value` as it was before its one-scan fast path (the containment check first)."""
    if name not in cookie:
        return None
    needle = name + "="
    start = cookie.find(needle)
    if start == 0 or (start > 0 and cookie[start - 1] in "; "):
        end = cookie.find(";", start)
        value = cookie[start + len(needle) : None if end == -1 else end].strip()
        if value:
            return value
    for pair in cookie.split(";"):
        key, equals, value = pair.partition("=")
        if equals and key.strip() == name and value.strip():
            return value.strip()
    return None


@settings(max_examples=400, deadline=None)
@given(
    parts=st.lists(
        st.sampled_from(["__oppref", "__obref", "=", ";", " ", "; ", "x", "_ga=1", "v=1", ""]),
        max_size=12,
    )
)
def test_cookie_values_are_those_of_the_two_scan_version(parts: list[str]) -> None:
    cookie = "".join(parts)
    for name in ("__oppref", "__obref"):
        expected = _cookie_reference(name, cookie)
        assert identity.cookie_value(name, cookie) == expected
        assert identity.cookie_value(name, cookie, name + "=") == expected


@settings(max_examples=3000, deadline=None)
@given(st.one_of(ipv6_like(), st.text("0123456789abcdefgABCDEFG:.%x \u0663", max_size=40)))
def test_the_hextets_loop_counts_exactly_what_the_pattern_matches(text: str) -> None:
    # The loop is what a compiled build runs; the pattern is what the interpreter runs.
    matched = identity._HEXTETS.fullmatch(text)
    assert identity._hextets_loop(text) == (text.count(":") + 1 if matched else -1)


@given(st.text("a@ .B\u00c9\u0130", max_size=8))
def test_email_check_is_one_at_with_text_on_both_sides(text: str) -> None:
    email = text.strip().lower()
    local, at, domain = email.partition("@")
    ok = bool(local and at and domain and "@" not in domain)
    assert identity.normalize_email(text) == (email if ok else None)
