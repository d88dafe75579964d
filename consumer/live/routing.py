"""Which pixel an event goes to, and with which API key (`capi.pixel_id`, `capi.routes`)."""

from __future__ import annotations

from typing import Any

from consumer.config import AppConfig, Route
from consumer.live.delivery import ApiKey


class Router:
    """Pixel of a CA event: the first route whose field matches, else the default pixel.

    The event comes as its values at `paths` (the mapping's), to which the routes' fields are
    added: the decoder reads them all in one pass.
    """

    def __init__(
        self, routes: list[Route], default_pixel: str | None, paths: list[tuple[str, ...]]
    ) -> None:
        self._routes = []
        for route in routes:
            path = tuple(route.field.split("."))
            if path not in paths:
                paths.append(path)
            self._routes.append((paths.index(path), frozenset(route.values), route.pixel_id))
        self.default_pixel = default_pixel
        # Without routes every event goes to the default pixel: no call per event.
        self.only_pixel = None if self._routes else default_pixel

    def pixel_of(self, values: tuple[Any, ...]) -> str | None:
        for slot, accepted, pixel in self._routes:
            value = values[slot]
            if value is not None and str(value) in accepted:
                return pixel
        return self.default_pixel


def api_keys(config: AppConfig) -> dict[str, ApiKey]:
    capi = config.capi
    default_value = capi.api_key.get_secret_value() if capi.api_key else None
    default = ApiKey(default_value, capi.api_key_file)
    keys: dict[str, ApiKey] = {}
    if capi.pixel_id:
        keys[capi.pixel_id] = default
    for route in capi.routes:
        if route.api_key is not None or route.api_key_file is not None:
            value = route.api_key.get_secret_value() if route.api_key else None
            keys[route.pixel_id] = ApiKey(value, route.api_key_file)
        else:
            keys.setdefault(route.pixel_id, default)
    return keys
