"""The pure transform layer: one Commanders Act event → one OpenAI Conversions API event.

    compiled = settings.compile()                  # once, from MappingSettings (or AppConfig)
    outcome = map_event(event, compiled, now_ms)   # Mapped | Skipped | Failed; never raises

No I/O, no clock, no logging: `now_ms` is injected, and every outcome is a value.
"""

from transforms.compiled import CompiledMapping
from transforms.envelope import map_event, map_values
from transforms.outcomes import Failed, Mapped, Outcome, Skipped
from transforms.settings import MappingSettings

__all__ = [
    "CompiledMapping",
    "Failed",
    "Mapped",
    "MappingSettings",
    "Outcome",
    "Skipped",
    "map_event",
    "map_values",
]
