"""Reading a Prometheus text page (the benchmark and the tests scrape the roles' /metrics)."""

from __future__ import annotations

import urllib.request

from prometheus_client.parser import text_string_to_metric_families


def fetch(url: str, timeout_s: float = 5.0) -> str:
    with urllib.request.urlopen(url, timeout=timeout_s) as answer:
        return str(answer.read().decode())


def samples(text: str, name: str) -> list[tuple[dict[str, str], float]]:
    """(labels, value) of every sample called ``name`` (``x_total``, ``x_bucket``, ``x``)."""
    return [
        (sample.labels, sample.value)
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == name
    ]


def total(text: str, name: str) -> float:
    """The sum of ``name`` over all its label sets (0 when absent)."""
    return sum(value for _, value in samples(text, name))


def exported_names(text: str) -> set[str]:
    """Every family and sample name the page declares, even a family with no sample yet."""
    names: set[str] = set()
    for family in text_string_to_metric_families(text):
        names.add(family.name)
        if family.type == "counter":
            names.add(family.name + "_total")
        names.update(sample.name for sample in family.samples)
    return names
