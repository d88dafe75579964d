"""The one-call SHA-256 (transforms/_sha256_hex.c) against hashlib, on every compression path
this CPU has (portable C, 8-lane AVX2, the SHA extensions)."""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Callable
from pathlib import Path
from types import ModuleType

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.transforms.property_support import DEFAULT, NOW, PROFILE
from transforms import Mapped, identity, map_event, paths

# openai-capi.md §4.3: normalized input → digest.
VECTORS = {
    "user@example.com": "b4c9a289323b21a01c3e940f150eb9b8c542587f1abfd8f0e1cc1ffc5e475514",
    "14155552671": "758fbf68945f21c416814c539ab578876c8d98fb69e6da692def92cd52417fe0",
    "customer_123": "18f69bcd2f9cc9c38195e722b2a5590429840ea5090971d2256e026926e55fa1",
    "ada": "fdee430d40bd57deeac186cd9790033d0f06f909a8806e7ce6e717ab7c7d5029",
    "lovelace": "fb1e7ec987523d2cb9e022cec1d6ae7c99dc46edfae4fe51254025fe4bea571f",
    "maryjane": "f08f448a5e7a9dc3619bb7c129f6a7d5fc6af002cea17ad71dfdc1c68f4d4e0e",
}


def native_module() -> ModuleType:
    """The extension; where REQUIRE_NATIVE_AVRO_READER is set (CI), missing is an error."""
    try:
        from transforms import _sha256_hex
    except ImportError:
        if os.environ.get("REQUIRE_NATIVE_AVRO_READER"):
            raise
        pytest.skip("transforms/_sha256_hex.c was not built (no C compiler)")
    return _sha256_hex


def digests() -> list[Callable[[str], str | None]]:
    """Every way the product hashes one text: the default, and each path of the extension."""
    module = native_module()

    def by(implementation: str) -> Callable[[str], str | None]:
        return lambda text: module.sha256_hex_many_by([text], implementation)[0]

    return [identity.sha256_hex, module.sha256_hex, *map(by, module.implementations())]


def many_digests() -> list[Callable[[list[str]], list[str | None]]]:
    """Every way the product hashes a list: the default, and each path of the extension."""
    module = native_module()

    def by(implementation: str) -> Callable[[list[str]], list[str | None]]:
        return lambda texts: module.sha256_hex_many_by(texts, implementation)

    return [identity.sha256_hex_many, *map(by, module.implementations())]


def reference(text: str) -> str | None:
    try:
        return hashlib.sha256(text.encode()).hexdigest()
    except UnicodeEncodeError:
        return None  # a lone surrogate: no UTF-8, no digest


def test_the_product_hashes_with_the_extension_when_built() -> None:
    assert identity.NATIVE_SHA256_HEX is native_module().sha256_hex


def test_the_documented_vectors() -> None:
    for digest in [*digests(), identity.hashlib_sha256_hex]:
        for text, expected in VECTORS.items():
            assert digest(text) == expected, (digest, text)


def test_every_length_around_the_padding_boundaries() -> None:
    # One block holds 55 bytes with its padding; 56-119 need two; 120+ three, and so on.
    for length in range(0, 300):
        for text in ("x" * length, "é" * length):
            expected = hashlib.sha256(text.encode()).hexdigest()
            for digest in digests():
                assert digest(text) == expected, (digest, length)


@PROFILE
@given(text=st.text(max_size=200))
def test_any_text_hashes_as_hashlib_does(text: str) -> None:
    for digest in digests():
        assert digest(text) == reference(text)


@PROFILE
@given(texts=st.lists(st.text(max_size=70) | st.sampled_from(["a\ud800", "x" * 55]), max_size=20))
def test_any_list_hashes_item_by_item(texts: list[str]) -> None:
    # Lists longer than the 8 lanes, one-block and longer texts mixed, surrogates in between.
    for digest_many in many_digests():
        assert digest_many(texts) == [reference(text) for text in texts]


def test_lone_surrogates_give_none_and_other_types_a_type_error() -> None:
    module = native_module()
    for digest in digests():
        assert digest("a\ud800b") is None
    with pytest.raises(TypeError, match="takes a str"):
        module.sha256_hex(b"bytes")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="takes a str"):
        module.sha256_hex_many(["ok", b"bytes"])  # type: ignore[list-item]
    with pytest.raises(TypeError, match="takes a list"):
        module.sha256_hex_many(("a", "b"))  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="not an implementation"):
        module.sha256_hex_many_by(["a"], "quantum")


def test_an_identity_that_cannot_be_hashed_lets_the_chain_go_on() -> None:
    # A lone surrogate survives normalization but has no UTF-8: the producer's hash is used,
    # as when each identity is hashed on its own (the compiled reader hashes them together).
    prehashed = "AB" * 32
    event = {
        "event_name": "purchase",
        "context": {"event_id": "e1", "event_timestamp": NOW, "page": {"url": "https://a.b/"}},
        "user": {"email": "a\ud800@example.com", "email_sha256": prehashed, "firstname": "Ada"},
    }
    outcome = map_event(event, DEFAULT, NOW)
    assert isinstance(outcome, Mapped)
    assert outcome.event["user"] == {
        "emails_sha256": [prehashed.lower()],
        "first_names_sha256": [VECTORS["ada"]],
    }


def test_the_cpu_s_extensions_are_used_where_it_has_them() -> None:
    cpuinfo = Path("/proc/cpuinfo")
    if not cpuinfo.exists():
        pytest.skip("no /proc/cpuinfo to compare with")
    found = re.search(r"^flags\s*:(.*)$", cpuinfo.read_text(), re.MULTILINE)
    flags = set(found.group(1).split()) if found else set()
    expected = ["portable", *(["avx2"] if "avx2" in flags else [])]
    expected += ["sha_ni"] if {"sha_ni", "sse4_1", "ssse3"} <= flags else []
    assert native_module().implementations() == expected


def test_without_the_extension_hashlib_gives_the_same(monkeypatch: pytest.MonkeyPatch) -> None:
    if paths.COMPILED:
        pytest.skip("compiled module constants cannot be replaced")
    texts = ["ada", "a\ud800", "x" * 70, *VECTORS]
    expected = [reference(text) for text in texts]
    assert identity.sha256_hex_many(texts) == expected
    monkeypatch.setattr(identity, "_NATIVE_SHA256_HEX_MANY", None)
    monkeypatch.setattr(identity, "NATIVE_SHA256_HEX", None)
    assert identity.sha256_hex_many(texts) == expected
    assert [identity.sha256_hex(text) for text in texts] == expected


def test_the_native_readers_hash_list_fields_only() -> None:
    # `read_user` fills digests into one-item lists: a hashed scalar field is refused up front.
    from transforms import compiled

    with pytest.raises(ValueError, match=r"user\.ip_address: a hashed value must be a list"):
        compiled.NativeReaders([(), (), (), ()], [("ip_address", ((0, compiled._EMAIL),), False)])
