"""Bulk observation gives exactly what one observe per value gives."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st
from prometheus_client import CollectorRegistry, Histogram

from cdrstream.observability.bulk_histogram import observe_many

BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1, 10)


def _pair() -> tuple[CollectorRegistry, Histogram, CollectorRegistry, Histogram]:
    one, many = CollectorRegistry(), CollectorRegistry()
    return (
        one,
        Histogram("h", "h", buckets=BUCKETS, registry=one),
        many,
        Histogram("h", "h", buckets=BUCKETS, registry=many),
    )


@given(
    st.lists(
        st.one_of(
            st.sampled_from(BUCKETS),  # exactly on a bound: "<=" puts it in that bucket
            st.floats(min_value=0, max_value=100, allow_nan=False),
        ),
        max_size=200,
    )
)
def test_observe_many_equals_observe_each(values: list[float]) -> None:
    one, each, many, bulk = _pair()
    for value in values:
        each.observe(value)
    observe_many(bulk, values)
    assert _samples(one) == _samples(many)


def _samples(registry: CollectorRegistry) -> list[tuple[str, dict[str, str], float]]:
    return [
        (s.name, s.labels, s.value)
        for metric in registry.collect()
        for s in metric.samples
        if not s.name.endswith("_created")
    ]
