"""Prometheus metrics of one app (its own registry, so several apps in one process never collide).

With `--workers > 1`, each worker process has its own counters: scrape each replica, or run one worker per
container (the usual Kubernetes layout) behind the load balancer.
"""

from __future__ import annotations

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram, generate_latest

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)


class ApiMetrics:
    content_type = CONTENT_TYPE_LATEST

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.requests = Counter(
            "foundation_api_requests",
            "HTTP requests by route template, method, model and status code.",
            ["route", "method", "model", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "foundation_api_request_duration_seconds",
            "Request latency by route template, method and model.",
            ["route", "method", "model"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.predictions = Counter(
            "foundation_api_predictions",
            "Predictions returned, by model, version and predicted class (`value` for non-label outputs).",
            ["model", "version", "prediction"],
            registry=self.registry,
        )
        self.model_version = Gauge(
            "foundation_api_model_version", "Version of each served champion.", ["model"], registry=self.registry
        )
        self.ready = Gauge("foundation_api_ready", "1 once every champion is loaded.", registry=self.registry)

    def observe_request(self, route: str, method: str, model: str, status: int, seconds: float) -> None:
        self.requests.labels(route, method, model, str(status)).inc()
        self.latency.labels(route, method, model).observe(seconds)

    def count_predictions(self, model: str, version: int, values: list[object]) -> None:
        counts: dict[str, int] = {}
        for value in values:
            label = str(value).lower() if isinstance(value, bool) else "value"
            counts[label] = counts.get(label, 0) + 1
        for label, n in counts.items():
            self.predictions.labels(model, str(version), label).inc(n)

    def render(self) -> bytes:
        return generate_latest(self.registry)
