"""`source_url`: the shortcut for the usual URL gives what the pattern gives."""

from __future__ import annotations

from unittest import mock

from hypothesis import given, settings
from hypothesis import strategies as st

from transforms import urls

_URL_LIKE = st.builds(
    str.__add__,
    st.sampled_from(["https://", "http://", "HTTPS://", "http:/", ""]),
    st.text("aZ09.-:/?#@[]% \t\x00\u00a0\u00e9<>", max_size=16),
)


def by_pattern(value: str, keep_query: bool) -> str | None:
    """What `sanitize_source_url` gives for a URL without `@`, by its pattern alone."""
    url = value.strip()
    match = urls._URL_WITHOUT_USER_INFO.match(url)
    if match is None:
        return None
    return url if keep_query else url[: match.end()]


@settings(max_examples=3000, deadline=None)
@given(_URL_LIKE.filter(lambda url: "@" not in url), st.booleans())
def test_the_usual_url_gives_what_the_pattern_gives(url: str, keep_query: bool) -> None:
    # Compiled, the plain host is checked without the pattern (`urls.COMPILED`; patched here
    # for the interpreter, a no-op on a compiled build, which runs it anyway).
    with mock.patch.object(urls, "COMPILED", True):
        assert urls.sanitize_source_url(url, keep_query) == by_pattern(url, keep_query)


def test_the_url_is_cut_before_its_query_and_fragment() -> None:
    assert urls.sanitize_source_url("https://shop.example/a/b?q=1#f") == "https://shop.example/a/b"
    assert urls.sanitize_source_url("http://shop.example#f?q") == "http://shop.example"
    assert urls.sanitize_source_url("https://shop.example?q", True) == "https://shop.example?q"
    assert urls.sanitize_source_url("https://") is None
    assert urls.sanitize_source_url("https://a b/") is None
