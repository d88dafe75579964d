"""The `sandbox` section of a configuration file (owned by the sandbox; extended there).

The service ignores that section: only `capi-consumer sandbox --config FILE` reads it, with the
same `CAPI_CONSUMER_SANDBOX__*` environment overrides (`load_sandbox_settings`).

Every undocumented behaviour of the real API ([U] in openai-capi.md §11) is a setting here with
§11's default: the event rules in `rules` (`transforms.capi_rules.Rules`), the transport ones
(status codes, empty batches, body size, gzip, error format, dedup) below.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, model_validator

from consumer.config import read_config_data, validated
from transforms.capi_rules import Rules

# With no key configured anywhere, this key may send to any pixel.
DEFAULT_API_KEY = "test-key"


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class FaultStep(_Section):
    """One injected behaviour for one request; all fields empty = answer normally.

    `status` answers at once with that status (nothing is read or stored); `drop` closes the
    connection without an answer, either before the body is read (nothing stored) or after the
    batch was validated and stored (stored, but the client sees an error). `latency_ms` is
    added first and combines with either.
    """

    status: int | None = Field(default=None, ge=400, le=599)
    # With `status`: the body answered verbatim (JSON when it parses, else plain text), to
    # plant whatever an API might echo; else the sandbox's own error body.
    body: str | None = None
    retry_after_s: int | None = Field(default=None, ge=0)
    latency_ms: int = Field(default=0, ge=0)
    drop: Literal["before_read", "after_store"] | None = None

    @model_validator(mode="after")
    def _one_outcome(self) -> FaultStep:
        if self.status is not None and self.drop is not None:
            raise ValueError("status and drop are exclusive")
        if self.retry_after_s is not None and self.status is None:
            raise ValueError("retry_after_s needs a status")
        if self.body is not None and self.status is None:
            raise ValueError("body needs a status")
        return self


class FaultSettings(_Section):
    """Fault injection, also settable at run time with `POST /_sandbox/faults`.

    Per request to `POST /v1/events`: the next `script` step if any is left (each is used once,
    in order), else with probability `rate` one of `choices` (uniformly), else nothing. Random
    draws come from a generator seeded with `seed` (the sandbox `seed` when unset), so a given
    order of requests always meets the same faults.
    """

    script: list[FaultStep] = Field(default_factory=list)
    rate: float = Field(default=0.0, ge=0, le=1)
    choices: list[FaultStep] = Field(default_factory=lambda: [FaultStep(status=503)], min_length=1)
    seed: int | None = None
    # Added to every request (before any step's own latency).
    latency_ms: int = Field(default=0, ge=0)
    # Requests per second and per pixel; beyond it 429 (a token bucket holding one second).
    rate_limit_rps: float | None = Field(default=None, gt=0)
    # Send `Retry-After` (seconds until the next token) with rate-limit 429s.
    rate_limit_retry_after: bool = True
    # A batch holding one of these event ids is rejected: 400 naming the first such event.
    poison_ids: list[str] = Field(default_factory=list)


class PixelSettings(_Section):
    pixel_id: str = Field(min_length=1)
    # Keys that may send to this pixel only (besides `sandbox.api_keys`).
    api_keys: list[SecretStr] = Field(default_factory=list)
    # This pixel's own strictness and faults (else the sandbox-wide ones).
    rules: Rules | None = None
    faults: FaultSettings | None = None


class SandboxSettings(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    # Keys that may send to every pixel. With no key configured anywhere (here or in `pixels`),
    # the key `test-key` may send to any pixel.
    api_keys: list[SecretStr] = Field(default_factory=list)
    # Ads Manager (Advertiser API) keys: answered 401 `Missing scopes: ...`, as the real API does.
    advertiser_api_keys: list[SecretStr] = Field(default_factory=list)
    # Known pixels. Empty: any `pid` is accepted (with a sandbox-wide key).
    pixels: list[PixelSettings] = Field(default_factory=list)
    rules: Rules = Field(default_factory=Rules)
    faults: FaultSettings = Field(default_factory=FaultSettings)
    seed: int = 0
    # Shifts the sandbox clock (the reference of the 7-day / +10-minute window).
    clock_offset_ms: int = 0

    # [U] transport choices, with §11's defaults.
    max_body_bytes: int | None = Field(default=None, ge=1024)  # → 413; None: no limit
    accept_gzip: bool = False  # Content-Encoding other than identity → 415 when false
    accept_empty_events: bool = True  # `events: []` → 200, or 400 when false
    missing_pid_status: Literal[400, 422] = 422
    unknown_pixel_status: Literal[403, 404] = 404
    too_many_events_status: Literal[400, 413] = 400
    # "error": {"error": {"message", "type", "param", "code"}}; "detail": pydantic-style list.
    error_format: Literal["error", "detail"] = "error"
    # A repeated dedup key inside one batch is a duplicate (first wins); when false, every copy
    # in one batch counts as accepted (stored once).
    dedup_within_batch: bool = True
    # Dedup memory; None: forever.
    dedup_window_s: float | None = Field(default=None, gt=0)
    # Events per pixel kept for `GET /v1/conversions/events` (the ids are always all kept).
    recent_events_per_pixel: int = Field(default=1000, ge=0)

    @model_validator(mode="after")
    def _unique_pixels(self) -> SandboxSettings:
        ids = [pixel.pixel_id for pixel in self.pixels]
        if len(ids) != len(set(ids)):
            raise ValueError("pixels: a pixel_id is listed twice")
        return self


def load_sandbox_settings(
    path: str | Path | None, environ: Mapping[str, str] | None = None
) -> SandboxSettings:
    """The `sandbox` section of the file (optional) and the environment. Raises `ConfigError`
    naming the key (`sandbox.…`)."""
    return validated(SandboxSettings, read_config_data(path, environ).get("sandbox", {}), "sandbox")
