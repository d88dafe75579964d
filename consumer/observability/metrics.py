"""Prometheus metrics. One `Metrics` object per service, on its own registry (tests run several
services in one process). Names follow Prometheus conventions and are documented in
docs/operations.md; the Grafana dashboard in the chart uses exactly these names."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

IDENTITY_FIELDS = (
    "emails_sha256",
    "phone_numbers_sha256",
    "external_ids_sha256",
    "first_names_sha256",
    "last_names_sha256",
    "ip_address",
    "user_agent",
    "obref",
    "oppref",
)


class Metrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        r = self.registry
        self.events_consumed = Counter(
            "capi_consumer_events_consumed_total", "Kafka records read.", ["topic"], registry=r
        )
        self.events_mapped = Counter(
            "capi_consumer_events_mapped_total",
            "Events mapped to a CAPI event.",
            ["pixel"],
            registry=r,
        )
        self.events_skipped = Counter(
            "capi_consumer_events_skipped_total",
            "Events skipped on purpose.",
            ["reason"],
            registry=r,
        )
        self.events_delivered = Counter(
            "capi_consumer_events_delivered_total",
            "Events accepted by the API (2xx).",
            ["pixel"],
            registry=r,
        )
        self.events_dead_lettered = Counter(
            "capi_consumer_events_dead_lettered_total",
            "Events written to the DLQ.",
            ["reason"],
            registry=r,
        )
        self.identity_delivered = Counter(
            "capi_consumer_delivered_identity_total",
            "Delivered events carrying each identifier (divide by delivered for coverage).",
            ["pixel", "field"],
            registry=r,
        )
        self.batches = Counter(
            "capi_consumer_batches_total",
            "HTTP requests by outcome (accepted, retried, split, rejected, fatal) and status.",
            ["pixel", "outcome", "status"],
            registry=r,
        )
        self.request_seconds = Histogram(
            "capi_consumer_request_duration_seconds",
            "CAPI request latency.",
            ["pixel"],
            buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
            registry=r,
        )
        self.batch_events = Histogram(
            "capi_consumer_batch_events",
            "Events per request.",
            buckets=(1, 10, 50, 100, 250, 500, 750, 1000),
            registry=r,
        )
        self.retries = Counter(
            "capi_consumer_retries_total",
            "Retried requests by cause.",
            ["pixel", "cause"],
            registry=r,
        )
        self.retry_after_seconds = Counter(
            "capi_consumer_retry_after_seconds_total",
            "Seconds paused on Retry-After.",
            ["pixel"],
            registry=r,
        )
        self.pending_events = Gauge(
            "capi_consumer_pending_events",
            "Consumed events not yet settled (in flight).",
            registry=r,
        )
        self.pending_bytes = Gauge(
            "capi_consumer_pending_bytes",
            "Bytes of consumed records not yet settled.",
            registry=r,
        )
        self.paused_partitions = Gauge(
            "capi_consumer_paused_partitions",
            "Assigned partitions paused by backpressure.",
            registry=r,
        )
        self.lag = Gauge(
            "capi_consumer_lag_events",
            "Consumer lag: high watermark - committed offset.",
            ["topic", "partition"],
            registry=r,
        )
        self.committed_offset = Gauge(
            "capi_consumer_committed_offset",
            "Last committed offset.",
            ["topic", "partition"],
            registry=r,
        )
        self.oldest_pending_age = Gauge(
            "capi_consumer_oldest_undelivered_event_age_seconds",
            "Age (event time) of the oldest consumed event not yet settled; the API rejects "
            "events older than 7 days (604800 s).",
            registry=r,
        )
        self.commits = Counter(
            "capi_consumer_commits_total", "Offset commits by result.", ["result"], registry=r
        )
        self.up = Gauge(
            "capi_consumer_ready",
            "1 when ready (config valid, Kafka reachable, key accepted).",
            registry=r,
        )
