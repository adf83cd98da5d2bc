"""Prometheus metrics of one app (its own registry, so several apps in one process never collide).

With `--workers > 1`, `foundation serve` creates a `PROMETHEUS_MULTIPROC_DIR` before the workers start:
prometheus-client then keeps every worker's values in files there, and `/metrics` (answered by any worker)
aggregates all of them (`MultiProcessCollector`). Gauges that differ per worker (the version a worker serves)
keep a `pid` label in that mode.

A key scoped to some models (`key:model_a`) reads only their series: `render(may_see)` drops every sample whose
`model` label names a model the key may not use (series without a model stay: readiness, registry, routes).
"""

from __future__ import annotations

import copy
import os
from collections.abc import Callable, Iterator
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client import multiprocess as mp

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024)
MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"


def multiprocess() -> bool:
    return bool(os.environ.get(MULTIPROC_ENV))


class ApiMetrics:
    content_type = CONTENT_TYPE_LATEST

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.requests = Counter(
            "foundation_api_requests",
            "HTTP requests by route template, method, model and status code.",
            ["route", "method", "model", "status"],
            registry=r,
        )
        self.latency = Histogram(
            "foundation_api_request_duration_seconds",
            "Request latency by route template, method and model.",
            ["route", "method", "model"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.predictions = Counter(
            "foundation_api_predictions",
            "Predictions returned, by model, version and predicted class (`value` for non-label outputs).",
            ["model", "version", "prediction"],
            registry=r,
        )
        self.model_version = Gauge(
            "foundation_api_model_version",
            "Version of each served champion.",
            ["model"],
            registry=r,
            multiprocess_mode="liveall",
        )
        self.ready = Gauge(
            "foundation_api_ready", "1 once every champion is loaded.", registry=r, multiprocess_mode="livemin"
        )
        self.registry_up = Gauge(
            "foundation_api_registry_up",
            "1 when the last poll of the model registry (hot reload) succeeded.",
            registry=r,
            multiprocess_mode="livemin",
        )
        self.reloads = Counter(
            "foundation_api_reloads",
            "Hot reloads of a champion, by outcome (`success`, `failure`: the old version keeps serving).",
            ["model", "outcome"],
            registry=r,
        )
        self.batch_rows = Histogram(
            "foundation_api_batch_rows",
            "Rows scored per model call by the micro-batcher.",
            ["model"],
            buckets=BATCH_BUCKETS,
            registry=r,
        )
        self.prediction_log = Counter(
            "foundation_api_prediction_log",
            "Predictions of the feedback log, by outcome (`written` to the lakehouse, `dropped`).",
            ["model", "outcome"],
            registry=r,
        )

        self.model_errors = Counter(
            "foundation_api_model_errors",
            "Requests a model failed to score (answered 500), by model, version and exception type.",
            ["model", "version", "error"],
            registry=r,
        )

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

    def render(self, may_see: Callable[[str], bool] | None = None) -> bytes:
        """The exposition text; with `may_see`, only the series of the models it accepts (and those of no model)."""
        registry: Any = self.registry
        if multiprocess():  # every worker's values, from the shared folder
            registry = CollectorRegistry()
            mp.MultiProcessCollector(registry)
        if may_see is not None:
            registry = ModelFilter(registry, may_see)
        return generate_latest(registry)


class ModelFilter:
    """A collector: another collector's samples without those labelled with a model `may_see` refuses."""

    def __init__(self, source: Any, may_see: Callable[[str], bool]) -> None:
        self.source = source
        self.may_see = may_see

    def collect(self) -> Iterator[Any]:
        for family in self.source.collect():
            kept = copy.copy(family)
            kept.samples = [s for s in family.samples if not s.labels.get("model") or self.may_see(s.labels["model"])]
            yield kept
