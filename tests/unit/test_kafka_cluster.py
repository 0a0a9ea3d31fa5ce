"""The local Kafka of one or three KRaft nodes as `stack up [--brokers 3]` writes it, and the
topic settings `cdrstream topics create` asks for."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import pytest

from cdrstream.cli import main
from cdrstream.kafka_topics import topic_configs
from cdrstream.settings import load_settings
from cdrstream.stack.kafka import KafkaCluster, SaslSslListener, broker_answers
from cdrstream.stack.processes import free_port


def properties(text: str) -> dict[str, str]:
    return dict(line.split("=", 1) for line in text.splitlines() if line)


def cluster(root: Path, brokers: int) -> KafkaCluster:
    return KafkaCluster.local(
        root, brokers=brokers, port=19092, controller_port=19093, version="4.1.1", cache_dir=root
    )


def test_three_nodes_listen_on_the_base_ports_plus_10_and_20_as_one_quorum(
    tmp_path: Path,
) -> None:
    three = cluster(tmp_path, 3)
    assert three.bootstrap == "127.0.0.1:19092,127.0.0.1:19102,127.0.0.1:19112"
    assert [n.base_dir for n in three.nodes] == [
        tmp_path / "kafka",
        tmp_path / "kafka-2",
        tmp_path / "kafka-3",
    ]
    assert len({n.cluster for n in three.nodes}) == 1  # one cluster id, formatted on each
    rendered = [properties(node._properties()) for node in three.nodes]
    for n, (props, port, controller) in enumerate(
        zip(rendered, (19092, 19102, 19112), (19093, 19103, 19113), strict=True), start=1
    ):
        assert props["node.id"] == str(n)
        assert props["process.roles"] == "broker,controller"
        assert props["controller.quorum.voters"] == (
            "1@127.0.0.1:19093,2@127.0.0.1:19103,3@127.0.0.1:19113"
        )
        assert props["listeners"] == (
            f"PLAINTEXT://127.0.0.1:{port},CONTROLLER://127.0.0.1:{controller}"
        )
        assert props["advertised.listeners"] == f"PLAINTEXT://127.0.0.1:{port}"
        assert props["log.dirs"] == str(three.nodes[n - 1].base_dir / "data")
        # Kafka's own topics survive one broker: three replicas, two in sync
        assert props["offsets.topic.replication.factor"] == "3"
        assert props["transaction.state.log.replication.factor"] == "3"
        assert props["transaction.state.log.min.isr"] == "2"


def test_one_node_is_its_own_quorum(tmp_path: Path) -> None:
    (one,) = cluster(tmp_path, 1).nodes
    props = properties(one._properties())
    assert props["controller.quorum.voters"] == "1@127.0.0.1:19093"
    assert props["offsets.topic.replication.factor"] == "1"
    assert props["transaction.state.log.min.isr"] == "1"
    assert one.bootstrap == "127.0.0.1:19092"


def test_a_stack_remembers_how_many_nodes_it_was_started_with(tmp_path: Path) -> None:
    assert KafkaCluster.brokers_in(tmp_path) == 1
    for name in ("kafka", "kafka-2", "kafka-3"):
        (tmp_path / name).mkdir()
        (tmp_path / name / "server.properties").write_text("node.id=1\n")
    assert KafkaCluster.brokers_in(tmp_path) == 3


def test_sasl_ssl_listener_is_added_beside_plaintext(tmp_path: Path) -> None:
    listener = SaslSslListener(
        port=19094, keystore_pem=tmp_path / "ks.pem", users={"alice": "pw-a", "bob": "pw-b"}
    )
    node = cluster(tmp_path, 1).nodes[0]
    node.sasl_ssl = listener
    props = properties(node._properties())
    assert props["listeners"].split(",") == [
        "PLAINTEXT://127.0.0.1:19092",
        "CONTROLLER://127.0.0.1:19093",
        "SASL_SSL://127.0.0.1:19094",
    ]
    assert props["listener.security.protocol.map"] == (
        "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT,SASL_SSL:SASL_SSL"
    )
    assert props["inter.broker.listener.name"] == "PLAINTEXT"
    assert props["listener.name.sasl_ssl.ssl.keystore.type"] == "PEM"
    assert listener.scram_arguments() == [
        "--add-scram", "SCRAM-SHA-256=[name=alice,password=pw-a]",
        "--add-scram", "SCRAM-SHA-512=[name=alice,password=pw-a]",
        "--add-scram", "SCRAM-SHA-256=[name=bob,password=pw-b]",
        "--add-scram", "SCRAM-SHA-512=[name=bob,password=pw-b]",
    ]  # fmt: skip


@pytest.mark.parametrize("action", ["down", "status", "fetch"])
def test_brokers_goes_only_with_up(action: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["stack", action, "--brokers", "3"]) == 2
    assert "--brokers goes with `up`" in capsys.readouterr().err


def test_brokers_is_one_or_three() -> None:
    with pytest.raises(SystemExit):
        main(["stack", "up", "--brokers", "2"])


DAY_31_MS = str(31 * 24 * 3600 * 1000)  # the 30-day window and a day to rebuild from


@pytest.mark.parametrize(
    ("which", "replicas", "configs"),
    [
        ("topic", 1, {"retention.ms": DAY_31_MS}),
        ("dlq", 1, {}),
        ("topic", 3, {"retention.ms": DAY_31_MS, "min.insync.replicas": "2"}),
        ("dlq", 3, {"min.insync.replicas": "2"}),
        ("topic", 2, {"retention.ms": DAY_31_MS}),  # two replicas: one must be able to die
        ("dlq", 5, {"min.insync.replicas": "2"}),
    ],
)
def test_topic_configs(which: str, replicas: int, configs: dict[str, str]) -> None:
    settings = load_settings({})
    name = settings.topic if which == "topic" else settings.dlq_topic
    assert topic_configs(settings, name, replicas) == configs


def test_asking_a_broker_that_is_not_there_leaves_aiokafkas_log_level_as_it_was() -> None:
    """The readiness probe silences aiokafka's refusals while it asks, and only then: a
    process that started its stack (the demo, the bench, a test session) hears its own
    aiokafka errors afterwards."""
    aiokafka_log = logging.getLogger("aiokafka")
    before = aiokafka_log.level
    aiokafka_log.setLevel(logging.INFO)
    try:
        assert asyncio.run(broker_answers(f"127.0.0.1:{free_port()}", timeout_s=0.5)) is False
        assert aiokafka_log.level == logging.INFO
    finally:
        aiokafka_log.setLevel(before)
