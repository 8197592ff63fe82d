"""Prometheus metrics of one server instance, on its own registry (so several apps, as in
tests, never collide)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

__all__ = ["ServerMetrics"]

_LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)
_BATCH_BUCKETS = (1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000, 10000)


class ServerMetrics:
    """Request, error, latency and model-lifecycle metrics, labelled per endpoint/model."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.requests = Counter(
            "peppercorn_requests", "HTTP requests answered", ["endpoint", "code"], registry=r
        )
        self.errors = Counter(
            "peppercorn_request_errors",
            "HTTP requests answered with a 4xx/5xx code",
            ["endpoint", "code"],
            registry=r,
        )
        self.latency = Histogram(
            "peppercorn_request_latency_seconds",
            "time from request to full response",
            ["endpoint"],
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.batch_size = Histogram(
            "peppercorn_batch_size",
            "instances (or candidate items) scored per request",
            ["endpoint"],
            buckets=_BATCH_BUCKETS,
            registry=r,
        )
        self.loaded_versions = Gauge(
            "peppercorn_loaded_versions",
            "model versions loaded and serving",
            ["model"],
            registry=r,
        )
        self.load_failures = Counter(
            "peppercorn_model_load_failures",
            "model versions refused (corrupt, invalid, ...)",
            ["model"],
            registry=r,
        )
        self.stage_latency = Histogram(
            "peppercorn_recommend_stage_seconds",
            "time in each stage of a two-stage /recommend (retrieve, filter, rank, top_k)",
            ["stage"],
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.store_up = Gauge(
            "peppercorn_online_store_up",
            "1 while the online store answers (or none is configured), 0 while it is down",
            registry=r,
        )
        self.store_errors = Counter(
            "peppercorn_online_store_errors", "online store calls that failed", registry=r
        )
        self.store_latency = Histogram(
            "peppercorn_online_store_seconds",
            "time of each online store call",
            ["call"],
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.events = Counter(
            "peppercorn_events",
            "events posted to /v1/events: accepted, or rejected with the rule they broke",
            ["outcome"],
            registry=r,
        )
        self.swaps = Counter(
            "peppercorn_model_swaps", "model versions brought into service", ["model"], registry=r
        )

    def observe_request(self, endpoint: str, code: int, seconds: float) -> None:
        code_s = str(code)
        self.requests.labels(endpoint, code_s).inc()
        if code >= 400:
            self.errors.labels(endpoint, code_s).inc()
        self.latency.labels(endpoint).observe(seconds)
