"""The mapping configuration compiled once: paths split, source chains and tables built.

Each CAPI field reads a chain of CA sources; the first usable value wins. A `field_mapping`
entry replaces the whole chain of its field with one path.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, Final

from transforms import identity
from transforms.capi_rules import ACTION_SOURCES
from transforms.event_mapping import (
    CAPI_EVENT_TYPES,
    DEFAULT_EVENT_MAPPING,
    translate_action_source,
)
from transforms.outcomes import USER_FIELDS
from transforms.paths import COMPILED, ITEM_PREFIX, Chain, Path, PathReader, split_path
from transforms.urls import sanitize_source_url

Convert = Callable[[object], object]

_COOKIE = "context.device.cookie"
CONSENT_PATH: Final[Path] = ("user", "consent_categories")
_EVENT_CONTENT_TYPE: Final[Path] = ("content_type",)


def _as_is(value: object) -> object:
    return value


_OPT_OUT_WORDS: Final = MappingProxyType({"true": True, "false": False})


def _opt_out(value: object) -> bool | None:
    if isinstance(value, bool):
        return value
    if isinstance(value, str):
        return _OPT_OUT_WORDS.get(value.strip().lower())
    return None


def _plan_id(value: object) -> str | None:
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    return identity.non_blank(value)


@dataclass(frozen=True, slots=True)
class _Field:
    """A mappable CAPI field: its default chain and how an overriding path is read."""

    chain: tuple[tuple[str, Convert], ...]
    convert: Convert


_EMAIL = identity.hashed(identity.normalize_email)
_PHONE = identity.hashed(identity.normalize_phone)
_EXTERNAL_ID = identity.hashed(identity.normalize_external_id)
_NAME = identity.hashed(identity.normalize_name)
_OPPREF_COOKIE = identity.cookie_reader("__oppref")
_OBREF_COOKIE = identity.cookie_reader("__obref")


def _url_keeping_query(value: object) -> str | None:
    # Not a `partial`: its keyword call added a quarter to each URL.
    return sanitize_source_url(value, True)


def _field(convert: Convert, *chain: str | tuple[str, Convert]) -> _Field:
    links = tuple(link if isinstance(link, tuple) else (link, convert) for link in chain)
    return _Field(links, convert)


# Envelope, user and data fields; content fields are relative to one item (`items.X.`).
# `_as_is` fields are checked by `map_event` itself (their bad values are errors, not skips);
# `source_url` gets its converter at compile time, with the `keep_url_query` setting.
_FIELDS: Final[Mapping[str, _Field]] = MappingProxyType(
    {
        "type": _field(_as_is, "event_name"),
        "id": _field(_as_is, "context.event_id"),
        "timestamp_ms": _field(_as_is, "context.event_timestamp"),
        "custom_event_name": _field(
            identity.non_blank, "partners.openai.custom_event_name", "event_name"
        ),
        "oppref": _field(
            identity.opaque,
            "partners.openai.oppref",
            (_COOKIE, _OPPREF_COOKIE),
        ),
        "action_source": _field(translate_action_source, "partners.openai.action_source", "type"),
        "source_url": _field(_as_is, "context.page.url", "url"),
        "opt_out": _field(_opt_out, "partners.openai.opt_out"),
        # A hash given by the producer is used when the clear value is absent or invalid.
        # Not `user.phone_sha256`: CA hashes E.164 with its `+`, which can never match.
        "user.emails_sha256": _field(
            _EMAIL, "user.email", ("user.email_sha256", identity.prehashed)
        ),
        "user.phone_numbers_sha256": _field(_PHONE, "user.phone"),
        "user.external_ids_sha256": _field(
            _EXTERNAL_ID, "user.id", ("user.id_sha256", identity.prehashed)
        ),
        "user.first_names_sha256": _field(
            _NAME, "user.firstname", ("user.firstname_sha256", identity.prehashed)
        ),
        "user.last_names_sha256": _field(
            _NAME, "user.lastname", ("user.lastname_sha256", identity.prehashed)
        ),
        "user.countries": _field(identity.normalize_country, "user.country"),
        "user.cities": _field(identity.normalize_geo_text, "user.city"),
        "user.regions": _field(identity.normalize_geo_text, "user.state"),
        "user.postal_codes": _field(identity.normalize_postal_code, "user.zipcode"),
        "user.ip_address": _field(identity.normalize_ip, "context.device.ip"),
        "user.user_agent": _field(identity.non_blank, "context.device.user_agent"),
        "user.obref": _field(
            identity.opaque,
            "partners.openai.obref",
            (_COOKIE, _OBREF_COOKIE),
        ),
        "data.amount": _field(_as_is, "value"),
        "data.currency": _field(_as_is, "currency"),
        "data.plan_id": _field(_plan_id, "partners.openai.plan_id"),
        "data.contents": _field(_as_is, "items"),
        "data.contents.X.id": _field(_as_is, "items.X.id"),
        "data.contents.X.name": _field(_as_is, "items.X.product.name"),
        # Non-blank strings only; then the event's `content_type`, then "product".
        "data.contents.X.content_type": _field(_as_is, "items.X.content_type"),
        "data.contents.X.quantity": _field(_as_is, "items.X.quantity"),
        "data.contents.X.amount": _field(_as_is, "items.X.product.price", "items.X.price"),
        "data.contents.X.currency": _field(_as_is, "items.X.currency", "items.X.product.currency"),
    }
)

# The `user` fields in output order (outcomes.USER_FIELDS): one-value lists but these scalars.
_USER_SCALAR_FIELDS: Final = ("ip_address", "user_agent", "obref")
_USER_LIST_FIELDS: Final = tuple(key for key in USER_FIELDS if key not in _USER_SCALAR_FIELDS)

# Real CAPI fields that no CA value feeds (the mapping has no rule for them).
_UNMAPPABLE: Final = frozenset(
    {
        "data.type",
        "user.android_advertising_id",
        "data.contents.X.group_id",
        "data.contents.X.variant_dict",
    }
)


def field_mapping_error(field: str, source: object) -> str | None:
    """Why a `field_mapping` entry is unusable (a one-line message), or None when it is fine."""
    if field in _UNMAPPABLE:
        return "a CAPI field no CA value maps to; it cannot be configured"
    if field not in _FIELDS:
        return "not a CAPI field path"
    if not isinstance(source, str) or split_path(source) is None:
        return f"{source!r} is not a dotted CA path"
    item_field = field.startswith("data.contents.X.")
    item_source = source.startswith(ITEM_PREFIX) and len(source) > len(ITEM_PREFIX)
    if item_field and not item_source:
        return f"{source!r}: a content field reads an item path, `{ITEM_PREFIX}<path>`"
    if not item_field and source.startswith(ITEM_PREFIX):
        return f"{source!r}: item paths (`{ITEM_PREFIX}...`) are only for data.contents.X fields"
    return None


def event_mapping_error(event_type: object) -> str | None:
    if event_type is None or event_type in CAPI_EVENT_TYPES:
        return None
    return f"{event_type!r} is not a CAPI event type"


def action_source_error(value: object) -> str | None:
    if translate_action_source(value) is not None:
        return None
    return (
        f"{value!r} is not an action source ({', '.join(sorted(ACTION_SOURCES))} or a CA synonym)"
    )


@dataclass(frozen=True, slots=True)
class CompiledMapping:
    """Everything `map_event` needs, precomputed; immutable and shareable between threads.

    Each event is read once by `event_reader` (each item by `item_reader`); fields then take
    their values by index: raw values by slot (`int`, or a tuple tried in order), converted
    values by `Chain`.
    """

    event_types: Mapping[str, str | None]
    # `event_types` as a plain dict (never changed), for the per-event lookup.
    event_type_of: dict[str, str | None]
    default_action_source: str | None
    required_categories: frozenset[str]
    event_reader: PathReader
    event_name: int
    id: int
    timestamp: int
    consent: int
    custom_event_name: Chain
    # Values → (oppref, source_url, action_source, opt_out), each converted or None.
    read_envelope: Callable[[tuple[Any, ...]], tuple[Any, Any, Any, Any]]
    # Values → the `user` object (its fields in output order, those with a usable value), and
    # which of `USER_FIELDS` it has (bit i for USER_FIELDS[i]).
    read_user: Callable[[tuple[Any, ...]], tuple[dict[str, Any], int]]
    amount: int
    currency: int
    plan_id: Chain
    items: int
    # The event's own `content_type`, tried after the item's (-1 once that is configured).
    event_content_type: int
    # Reads an item's (id, name, content_type, quantity, amount, currency), each the first
    # source of its chain that is not None.
    item_reader: PathReader
    # Compiled by mypyc: `read_envelope` and `read_user` of native code, called directly.
    native: NativeReaders | None


def _chains_function(
    name: str, chains: Iterable[tuple[Chain, str]], setup: str, result: str
) -> Callable[[tuple[Any, ...]], Any]:
    """A generated function of an event's values that runs `store` (a statement reading `value`)
    with the first usable value of each chain, after `setup`, and returns `result`.

    Straight-line code (one `if`/`elif` per source, values by constant index) instead of loops
    over the chains: this runs for every event, and the loops' tuple unpacking was its main cost.
    Keys enter the source only through `repr`; converters through the namespace. Compiled by
    mypyc, `NativeReaders` is used instead (native loops, direct calls).
    """
    namespace: dict[str, Any] = {}
    lines = [f"def {name}(values):", f"    {setup}"]
    for chain, store in chains:
        keyword = "if"
        for index, convert in chain:
            converter = f"convert{len(namespace)}"
            namespace[converter] = convert
            lines.append(
                f"    {keyword} (raw := values[{index}]) is not None"
                f" and (value := {converter}(raw)) is not None:"
            )
            lines.append(f"        {store}")
            keyword = "elif"
    lines.append(f"    return {result}")
    exec(compile("\n".join(lines), f"<{name}>", "exec"), namespace)
    function: Callable[[tuple[Any, ...]], Any] = namespace[name]
    return function


# Converter codes: compiled by mypyc, the readers call each converter directly (`_convert`)
# rather than through a callable object, about as costly as most conversions themselves.
_AS_IS: Final = 0
_HASH_EMAIL: Final = 1
_HASH_PHONE: Final = 2
_HASH_EXTERNAL_ID: Final = 3
_HASH_NAME: Final = 4
_PREHASHED: Final = 5
_NON_BLANK: Final = 6
_OPAQUE: Final = 7
_OPPREF: Final = 8
_OBREF: Final = 9
_ACTION_SOURCE: Final = 10
_OPT_OUT: Final = 11
_PLAN_ID: Final = 12
_COUNTRY: Final = 13
_GEO_TEXT: Final = 14
_POSTAL_CODE: Final = 15
_IP: Final = 16
_URL: Final = 17
_URL_KEEPING_QUERY: Final = 18
_HASHING: Final = frozenset(range(_HASH_EMAIL, _HASH_NAME + 1))


def _converter_codes() -> dict[Convert, int]:
    return {
        _as_is: _AS_IS,
        _EMAIL: _HASH_EMAIL,
        _PHONE: _HASH_PHONE,
        _EXTERNAL_ID: _HASH_EXTERNAL_ID,
        _NAME: _HASH_NAME,
        identity.prehashed: _PREHASHED,
        identity.non_blank: _NON_BLANK,
        identity.opaque: _OPAQUE,
        _OPPREF_COOKIE: _OPPREF,
        _OBREF_COOKIE: _OBREF,
        translate_action_source: _ACTION_SOURCE,
        _opt_out: _OPT_OUT,
        _plan_id: _PLAN_ID,
        identity.normalize_country: _COUNTRY,
        identity.normalize_geo_text: _GEO_TEXT,
        identity.normalize_postal_code: _POSTAL_CODE,
        identity.normalize_ip: _IP,
        sanitize_source_url: _URL,
        _url_keeping_query: _URL_KEEPING_QUERY,
    }


def _normalize(code: int, raw: object) -> str | None:
    """The text a hashing converter (`code` in _HASH_EMAIL.._HASH_NAME) hashes, or None."""
    if code == _HASH_EMAIL:
        return identity.normalize_email(raw)
    if code == _HASH_PHONE:
        return identity.normalize_phone(raw)
    if code == _HASH_NAME:
        return identity.normalize_name(raw)
    return identity.normalize_external_id(raw)


def _convert(code: int, raw: object) -> object:
    """What the converter of `code` makes of `raw` (the same function, called directly)."""
    if code <= _HASH_NAME:
        return raw if code == _AS_IS else identity.sha256_hex(_normalize(code, raw))
    if code <= _OBREF:
        if code == _PREHASHED:
            return identity.prehashed(raw)
        if code == _NON_BLANK:
            return identity.non_blank(raw)
        if code == _OPAQUE:
            return identity.opaque(raw)
        if code == _OPPREF:
            return identity.cookie_value("__oppref", raw, "__oppref=")
        return identity.cookie_value("__obref", raw, "__obref=")
    if code <= _PLAN_ID:
        if code == _ACTION_SOURCE:
            return translate_action_source(raw)
        if code == _OPT_OUT:
            return _opt_out(raw)
        return _plan_id(raw)
    if code <= _IP:
        if code == _COUNTRY:
            return identity.normalize_country(raw)
        if code == _GEO_TEXT:
            return identity.normalize_geo_text(raw)
        if code == _POSTAL_CODE:
            return identity.normalize_postal_code(raw)
        return identity.normalize_ip(raw)
    return sanitize_source_url(raw, code == _URL_KEEPING_QUERY)


class NativeReaders:
    """`read_envelope` and `read_user` as loops over tables with direct converter calls, for
    mypyc to compile natively (`_chains_function` is for the interpreter). Each field reads
    the links `links[i]` for i in `starts[field]` to `starts[field + 1]`: a value slot and a
    converter code packed in one int (`slot << 5 | code`; one list read per link, not two)."""

    def __init__(self, envelope: list[Chain], user: list[tuple[str, Chain, bool]]) -> None:
        codes = _converter_codes()
        chains = envelope + [chain for _, chain, _ in user]
        self.links = [index << 5 | codes[convert] for chain in chains for index, convert in chain]
        self.starts = [0]
        for chain in chains:
            self.starts.append(self.starts[-1] + len(chain))
        self.user_keys = [key for key, _, _ in user]
        self.user_listed = [listed for _, _, listed in user]
        # `read_user` hashes list fields only: the hashing converters feed nothing else.
        for key, chain, listed in user:
            if not listed and any(codes[convert] in _HASHING for _, convert in chain):
                raise ValueError(f"user.{key}: a hashed value must be a list field")

    def _first(self, values: tuple[Any, ...], field: int) -> Any:
        for link in range(self.starts[field], self.starts[field + 1]):
            packed = self.links[link]
            raw = values[packed >> 5]
            if raw is not None:
                value = _convert(packed & 31, raw)
                if value is not None:
                    return value
        return None

    def read_envelope(self, values: tuple[Any, ...]) -> tuple[Any, Any, Any, Any]:
        return (
            self._first(values, 0),
            self._first(values, 1),
            self._first(values, 2),
            self._first(values, 3),
        )

    def _first_unhashed(self, values: tuple[Any, ...], field: int) -> tuple[Any, bool]:
        """`_first`, except that a value to hash comes back normalized, with True."""
        for link in range(self.starts[field], self.starts[field + 1]):
            packed = self.links[link]
            raw = values[packed >> 5]
            if raw is not None:
                code = packed & 31
                if _HASH_EMAIL <= code <= _HASH_NAME:
                    normalized = _normalize(code, raw)
                    if normalized is not None:
                        return normalized, True
                else:
                    value = _convert(code, raw)
                    if value is not None:
                        return value, False
        return None, False

    def read_user(self, values: tuple[Any, ...]) -> tuple[dict[str, Any], int]:
        """The `user` object, its identities hashed together in one call, and which fields it
        has (bit i for `user_keys[i]`)."""
        user: dict[str, Any] = {}
        present = 0
        texts: list[str] = []
        holders: list[list[Any]] = []  # the one-item lists whose item becomes texts[i]'s digest
        for field in range(len(self.user_keys)):
            value, to_hash = self._first_unhashed(values, field + 4)
            if value is None:
                continue
            present |= 1 << field
            if not self.user_listed[field]:  # never hashed (`__init__` checks)
                user[self.user_keys[field]] = value
            elif to_hash:
                holder = [value]
                user[self.user_keys[field]] = holder
                texts.append(value)
                holders.append(holder)
            else:
                user[self.user_keys[field]] = [value]
        if texts:
            digests = identity.sha256_hex_many(texts)
            for index in range(len(holders)):
                digest = digests[index]
                if digest is None:  # a lone surrogate: no digest, so the chain goes on (rare)
                    return self._read_user_one_by_one(values)
                holders[index][0] = digest
        return user, present

    def _read_user_one_by_one(self, values: tuple[Any, ...]) -> tuple[dict[str, Any], int]:
        user: dict[str, Any] = {}
        present = 0
        for field, key in enumerate(self.user_keys):
            value = self._first(values, field + 4)
            if value is not None:
                user[key] = [value] if self.user_listed[field] else value
                present |= 1 << field
        return user, present


def _path(dotted: str) -> Path:
    relative = dotted.removeprefix(ITEM_PREFIX)
    path = split_path(relative)
    if path is None:  # settings validation refuses such paths before we get here
        raise ValueError(f"{dotted!r} is not a dotted CA path")
    return path


def compile_mapping(
    *,
    event_mapping: Mapping[str, str | None],
    field_mapping: Mapping[str, str],
    default_action_source: str | None,
    required_categories: Iterable[str],
    keep_url_query: bool,
) -> CompiledMapping:
    """Build the per-event form of the mapping settings (validated beforehand)."""
    for field, source in field_mapping.items():
        error = field_mapping_error(field, source)
        if error is not None:
            raise ValueError(f"field_mapping.{field}: {error}")
    for name, event_type in event_mapping.items():
        error = event_mapping_error(event_type)
        if error is not None:
            raise ValueError(f"event_mapping.{name}: {error}")
    if default_action_source is not None:
        error = action_source_error(default_action_source)
        if error is not None:
            raise ValueError(f"defaults.action_source: {error}")
        default_action_source = translate_action_source(default_action_source)

    def sources(field: str) -> tuple[tuple[Path, Convert], ...]:
        spec = _FIELDS[field]
        if field in field_mapping:
            return ((_path(field_mapping[field]), spec.convert),)
        return tuple((_path(dotted), convert) for dotted, convert in spec.chain)

    resolved = {field: sources(field) for field in _FIELDS}
    url_convert = _url_keeping_query if keep_url_query else sanitize_source_url
    resolved["source_url"] = tuple((path, url_convert) for path, _ in resolved["source_url"])
    item_fields = [field for field in resolved if field.startswith("data.contents.X.")]
    event_reader = PathReader(
        [CONSENT_PATH, _EVENT_CONTENT_TYPE]
        + [
            path
            for field, links in resolved.items()
            if field not in item_fields
            for path, _ in links
        ]
    )
    # In `CompiledMapping.item_reader` order: id, name, content_type, quantity, amount, currency.
    item_reader = PathReader(
        [],
        outputs=[
            [path for path, _ in resolved[f"data.contents.X.{name}"]]
            for name in ("id", "name", "content_type", "quantity", "amount", "currency")
        ],
    )

    def chain(field: str, reader: PathReader = event_reader) -> Chain:
        return tuple((reader.index[path], convert) for path, convert in resolved[field])

    def slots(field: str, reader: PathReader = event_reader) -> tuple[int, ...]:
        return tuple(reader.index[path] for path, _ in resolved[field])

    def slot(field: str, reader: PathReader = event_reader) -> int:
        (index,) = slots(field, reader)
        return index

    envelope_fields = ("oppref", "source_url", "action_source", "opt_out")
    native = None
    if COMPILED:
        native = NativeReaders(
            [chain(field) for field in envelope_fields],
            [(key, chain(f"user.{key}"), key in _USER_LIST_FIELDS) for key in USER_FIELDS],
        )
        read_envelope: Callable[[tuple[Any, ...]], tuple[Any, Any, Any, Any]]
        read_envelope = native.read_envelope
        read_user: Callable[[tuple[Any, ...]], tuple[dict[str, Any], int]] = native.read_user
    else:
        read_envelope = _chains_function(
            "read_envelope",
            [(chain(field), f"{field} = value") for field in envelope_fields],
            f"{' = '.join(envelope_fields)} = None",
            ", ".join(envelope_fields),
        )
        read_user = _chains_function(
            "read_user",
            [
                (
                    chain(f"user.{key}"),
                    f"user[{key!r}] = {'[value]' if key in _USER_LIST_FIELDS else 'value'}; "
                    f"present |= {1 << bit}",
                )
                for bit, key in enumerate(USER_FIELDS)
            ],
            "user = {}; present = 0",
            "user, present",
        )
    event_type_of = {**DEFAULT_EVENT_MAPPING, **event_mapping}
    return CompiledMapping(
        event_types=MappingProxyType(event_type_of),
        event_type_of=event_type_of,
        default_action_source=default_action_source,
        required_categories=frozenset(required_categories),
        event_reader=event_reader,
        event_name=slot("type"),
        id=slot("id"),
        timestamp=slot("timestamp_ms"),
        consent=event_reader.index[CONSENT_PATH],
        custom_event_name=chain("custom_event_name"),
        read_envelope=read_envelope,
        read_user=read_user,
        amount=slot("data.amount"),
        currency=slot("data.currency"),
        plan_id=chain("data.plan_id"),
        items=slot("data.contents"),
        event_content_type=-1
        if "data.contents.X.content_type" in field_mapping
        else event_reader.index[_EVENT_CONTENT_TYPE],
        item_reader=item_reader,
        native=native,
    )
