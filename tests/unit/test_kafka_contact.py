"""When the worker counts Kafka as unreachable: contact proven by fetches or by a metadata
round trip that a broker answered, never by the absence of records."""

from __future__ import annotations

from cdrstream.stack.processes import free_port
from cdrstream.worker.kafka_contact import OUTAGE_AFTER_S, KafkaContact


class Clock:
    def __init__(self) -> None:
        self.now = 500.0

    def __call__(self) -> float:
        return self.now


def test_ready_until_no_broker_answered_for_15_seconds() -> None:
    clock = Clock()
    contact = KafkaContact({"bootstrap_servers": "127.0.0.1:1"}, clock=clock)
    clock.now += OUTAGE_AFTER_S - 0.5
    assert contact.outage() is None
    clock.now += 1
    assert contact.outage() == "no kafka broker reached for 16s"
    assert contact.age_s() == OUTAGE_AFTER_S + 0.5
    contact.reached()  # a fetch returned records
    assert contact.outage() is None and contact.age_s() == 0


async def test_a_probe_that_reaches_no_broker_names_the_error_and_proves_nothing() -> None:
    clock = Clock()
    contact = KafkaContact(
        {"bootstrap_servers": f"127.0.0.1:{free_port()}"}, clock=clock
    )  # nothing listens
    clock.now += 20
    await contact.probe()
    assert contact.outage() == "no kafka broker reached for 20s (KafkaConnectionError)"
    await contact.close()


async def test_no_probe_while_fetches_prove_contact() -> None:
    clock = Clock()
    contact = KafkaContact({"bootstrap_servers": f"127.0.0.1:{free_port()}"}, clock=clock)
    clock.now += 2
    await contact.probe()  # contact 2 s ago: not asked, nothing changes
    assert contact.age_s() == 2
    assert contact.outage() is None
