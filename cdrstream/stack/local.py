"""The local stack as one object: Kafka (one KRaft node, or three) + Redis + Prometheus under
one folder, ports from the settings (Prometheus scrapes the worker and API ports of the same
settings)."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, replace
from pathlib import Path

from cdrstream.kafka_topics import ensure_owned_topics
from cdrstream.settings import Settings
from cdrstream.stack.kafka import KafkaCluster
from cdrstream.stack.prometheus import PrometheusNode
from cdrstream.stack.redis_server import RedisNode


@dataclass
class LocalStack:
    kafka: KafkaCluster
    redis: RedisNode
    prometheus: PrometheusNode

    @classmethod
    def from_settings(
        cls, settings: Settings, base_dir: Path | None = None, *, brokers: int | None = None
    ) -> LocalStack:
        """``brokers``: 1 or 3; None: as many as the stack under the folder was started with."""
        root = Path(base_dir or settings.stack_dir).resolve()
        return cls(
            kafka=KafkaCluster.local(
                root,
                brokers=KafkaCluster.brokers_in(root) if brokers is None else brokers,
                port=settings.kafka_port,
                controller_port=settings.kafka_controller_port,
                version=settings.kafka_version,
                cache_dir=Path(settings.cache_dir),
            ),
            redis=RedisNode(base_dir=root / "redis", port=settings.redis_port),
            prometheus=PrometheusNode(
                base_dir=root / "prometheus",
                port=settings.prometheus_port,
                worker_target=f"127.0.0.1:{settings.worker_port}",
                api_target=f"127.0.0.1:{settings.api_port}",
            ),
        )

    def up(self, settings: Settings) -> None:
        self.redis.up()
        self.kafka.up()
        asyncio.run(
            ensure_owned_topics(
                replace(settings, kafka_bootstrap=self.kafka.bootstrap),
                replication_factor=len(self.kafka.nodes),
            )
        )
        self.prometheus.up()

    def down(self) -> None:
        self.prometheus.down()
        self.kafka.down()
        self.redis.down()

    def status(self) -> dict[str, str]:
        return {
            "kafka": self.kafka.status(),
            "redis": self.redis.status(),
            "prometheus": self.prometheus.status(),
        }

    def addresses(self) -> dict[str, str]:
        return {
            "kafka": self.kafka.bootstrap,
            "redis": self.redis.url,
            "prometheus": self.prometheus.url,
        }
