"""KRaft cluster ids as Kafka draws them: never one a command line reads as an option."""

from __future__ import annotations

import base64

from cdrstream.stack.kafka import cluster_id


def test_ten_thousand_ids_none_starts_with_a_dash_and_each_is_16_bytes() -> None:
    ids = [cluster_id() for _ in range(10_000)]
    assert not [i for i in ids if i.startswith("-")]
    assert all(len(base64.urlsafe_b64decode(i + "==")) == 16 for i in ids)
    assert len(set(ids)) == len(ids)
    # One in 64 raw draws starts with "-": 10,000 draws make that certain to have come up.
