"""A real single-node Apache Kafka in KRaft mode (combined broker + controller).

The broker jars (``org.apache.kafka:kafka_2.13`` and their runtime dependencies, plus a
log4j SLF4J binding) are fetched once from Maven Central with ``mvn
dependency:copy-dependencies`` into ``<cache_dir>/kafka-<version>/libs``; no Kafka
distribution archive is needed. Kafka's own command-line tools (``org.apache.kafka:kafka-tools``,
the Java producer and consumer behind ``kafka-producer-perf-test.sh`` and
``kafka-console-producer.sh``) go beside them into ``<cache_dir>/kafka-<version>/tools``, a
folder of their own so that fetching them never touches the jars a running broker loads;
tests use them as a real Java client (``kafka_tools_command``).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import logging
import shutil
import subprocess
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

from cdrstream.stack.processes import LocalServer, StackError

LOG4J_VERSION = "2.25.3"
DEPENDENCY_PLUGIN_VERSION = "3.8.1"

POM_TEMPLATE = """<?xml version="1.0" encoding="UTF-8"?>
<project xmlns="http://maven.apache.org/POM/4.0.0">
  <modelVersion>4.0.0</modelVersion>
  <groupId>cdrstream</groupId><artifactId>local-kafka-{artifact}</artifactId><version>1</version>
  <packaging>pom</packaging>
  <dependencies>
    <dependency><groupId>org.apache.kafka</groupId><artifactId>{artifact}</artifactId>
      <version>{kafka}</version></dependency>
    <dependency><groupId>org.apache.logging.log4j</groupId>
      <artifactId>log4j-slf4j-impl</artifactId><version>{log4j}</version></dependency>
    <dependency><groupId>org.apache.logging.log4j</groupId>
      <artifactId>log4j-core</artifactId><version>{log4j}</version></dependency>
  </dependencies>
  <build><plugins><plugin><groupId>org.apache.maven.plugins</groupId>
    <artifactId>maven-dependency-plugin</artifactId><version>{plugin}</version>
  </plugin></plugins></build>
</project>
"""

LOG4J2_PROPERTIES = """status = warn
appender.console.type = Console
appender.console.name = STDOUT
appender.console.layout.type = PatternLayout
appender.console.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = INFO
rootLogger.appenderRef.stdout.ref = STDOUT
logger.kafka.name = kafka
logger.kafka.level = INFO
logger.state.name = state.change.logger
logger.state.level = WARN
"""


def fetch_kafka_jars(cache_dir: Path, version: str) -> Path:
    """Download the broker's jars and Kafka's tools once; returns the broker's jar folder."""
    fetch_kafka_tools(cache_dir, version)
    return _copy_dependencies(cache_dir / f"kafka-{version}", "libs", "kafka_2.13", version)


def fetch_kafka_tools(cache_dir: Path, version: str) -> Path:
    """Download ``org.apache.kafka:kafka-tools`` (and the client it runs on) once."""
    return _copy_dependencies(cache_dir / f"kafka-{version}", "tools", "kafka-tools", version)


def kafka_tools_command(cache_dir: Path, version: str, main_class: str, *args: str) -> list[str]:
    """A command line running one of Kafka's Java tools, e.g.
    ``org.apache.kafka.tools.ProducerPerformance``."""
    java = shutil.which("java")
    if java is None:
        raise StackError("java not found: OpenJDK 17 is needed for Kafka's tools")
    tools = fetch_kafka_tools(cache_dir, version)
    return [java, "-Xmx256m", "-cp", f"{tools}/*", main_class, *args]


def _copy_dependencies(home: Path, folder: str, artifact: str, version: str) -> Path:
    """``org.apache.kafka:<artifact>:<version>`` and its runtime dependencies in
    ``home/folder`` (filled in a staging folder, renamed when complete)."""
    libs = home / folder
    if (libs / f"{artifact}-{version}.jar").exists():
        return libs
    mvn = shutil.which("mvn")
    if mvn is None:
        raise StackError(
            "Maven (mvn) is needed once to fetch the Kafka jars: apt-get install maven"
        )
    home.mkdir(parents=True, exist_ok=True)
    pom = home / f"pom-{folder}.xml"
    pom.write_text(
        POM_TEMPLATE.format(
            artifact=artifact, kafka=version, log4j=LOG4J_VERSION, plugin=DEPENDENCY_PLUGIN_VERSION
        )
    )
    staging = home / f"{folder}.partial"
    shutil.rmtree(staging, ignore_errors=True)
    result = subprocess.run(
        [
            mvn,
            "-q",
            "-B",
            "-f",
            str(pom),
            "dependency:copy-dependencies",
            "-DincludeScope=runtime",
            f"-DoutputDirectory={staging}",
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0:
        raise StackError(f"mvn could not fetch Kafka {version}:\n{result.stdout[-3000:]}")
    shutil.rmtree(libs, ignore_errors=True)
    staging.rename(libs)
    return libs


def cluster_id() -> str:
    """A random KRaft cluster id as Kafka makes them (``Uuid.randomUuid``): URL-safe base64
    of 16 random bytes, drawn again when it starts with ``-`` (a command line reads that as
    an option)."""
    while True:
        candidate = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        if not candidate.startswith("-"):
            return candidate


@dataclass(frozen=True)
class SaslSslListener:
    """A `SASL_SSL` listener of a local broker, as a secured production cluster has: TLS with
    the PEM key and certificate chain in ``keystore_pem``, and SCRAM-SHA-256/512 users
    created when the storage is formatted (``users``: name -> password)."""

    port: int
    keystore_pem: Path
    users: Mapping[str, str]

    def properties(self) -> list[str]:
        jaas = "org.apache.kafka.common.security.scram.ScramLoginModule required;"
        return [
            "sasl.enabled.mechanisms=SCRAM-SHA-256,SCRAM-SHA-512",
            f"listener.name.sasl_ssl.scram-sha-256.sasl.jaas.config={jaas}",
            f"listener.name.sasl_ssl.scram-sha-512.sasl.jaas.config={jaas}",
            "listener.name.sasl_ssl.ssl.keystore.type=PEM",
            f"listener.name.sasl_ssl.ssl.keystore.location={self.keystore_pem}",
        ]

    def scram_arguments(self) -> list[str]:
        """`kafka-storage format` arguments creating every user for both SCRAM mechanisms."""
        return [
            argument
            for name, password in self.users.items()
            for mechanism in ("SCRAM-SHA-256", "SCRAM-SHA-512")
            for argument in ("--add-scram", f"{mechanism}=[name={name},password={password}]")
        ]


@dataclass
class KafkaNode(LocalServer):
    """One KRaft node (broker and controller). Alone by default; a member of a cluster of
    ``len(voters)`` nodes when ``voters`` lists every node's id and controller port and all
    share one ``cluster`` id."""

    name: ClassVar[str] = "kafka"
    start_timeout_s: ClassVar[float] = 90.0
    stop_timeout_s: ClassVar[float] = 30.0

    base_dir: Path
    port: int
    controller_port: int
    version: str
    cache_dir: Path
    heap: str = "512m"
    node_id: int = 1
    voters: Mapping[int, int] | None = None
    cluster: str | None = None
    sasl_ssl: SaslSslListener | None = None

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    def _properties(self) -> str:
        voters = self.voters or {self.node_id: self.controller_port}
        internal_rf = min(3, len(voters))
        listeners = {"PLAINTEXT": self.port, "CONTROLLER": self.controller_port}
        if self.sasl_ssl is not None:
            listeners["SASL_SSL"] = self.sasl_ssl.port
        advertised = {k: v for k, v in listeners.items() if k != "CONTROLLER"}
        return "\n".join(
            [
                "process.roles=broker,controller",
                f"node.id={self.node_id}",
                "controller.quorum.voters="
                + ",".join(f"{node}@127.0.0.1:{port}" for node, port in sorted(voters.items())),
                "listeners=" + ",".join(f"{k}://127.0.0.1:{v}" for k, v in listeners.items()),
                "advertised.listeners="
                + ",".join(f"{k}://127.0.0.1:{v}" for k, v in advertised.items()),
                "controller.listener.names=CONTROLLER",
                "listener.security.protocol.map="
                + ",".join(f"{k}:{'PLAINTEXT' if k == 'CONTROLLER' else k}" for k in listeners),
                "inter.broker.listener.name=PLAINTEXT",
                f"log.dirs={self.base_dir / 'data'}",
                "num.partitions=1",
                "auto.create.topics.enable=false",
                f"offsets.topic.replication.factor={internal_rf}",
                "offsets.topic.num.partitions=4",
                f"transaction.state.log.replication.factor={internal_rf}",
                f"transaction.state.log.min.isr={min(2, internal_rf)}",
                f"share.coordinator.state.topic.replication.factor={internal_rf}",
                f"share.coordinator.state.topic.min.isr={min(2, internal_rf)}",
                "group.initial.rebalance.delay.ms=0",
                "log.flush.interval.messages=1",  # fault tests restart the broker: keep acked data
                *(self.sasl_ssl.properties() if self.sasl_ssl is not None else []),
                "",
            ]
        )

    def listens_on(self) -> Sequence[tuple[str, int, str]]:
        ports = [
            ("kafka", self.port, "CDRSTREAM_KAFKA_PORT"),
            ("kafka controller", self.controller_port, "CDRSTREAM_KAFKA_CONTROLLER_PORT"),
        ]
        if self.sasl_ssl is not None:
            ports.append(("kafka SASL_SSL", self.sasl_ssl.port, "the test's SASL_SSL port"))
        return ports

    def command(self) -> list[str]:
        """Fetch the jars (once), write the broker's files, format its storage (once)."""
        java = shutil.which("java")
        if java is None:
            raise StackError("java not found: OpenJDK 17 is needed for the local Kafka")
        libs = fetch_kafka_jars(self.cache_dir, self.version)
        props = self.base_dir / "server.properties"
        props.write_text(self._properties())
        log4j = self.base_dir / "log4j2.properties"
        log4j.write_text(LOG4J2_PROPERTIES)
        classpath = f"{libs}/*"
        if not (self.base_dir / "data" / "meta.properties").exists():
            formatted = subprocess.run(
                [
                    java,
                    "-cp",
                    classpath,
                    "kafka.tools.StorageTool",
                    "format",
                    f"--cluster-id={self.cluster or cluster_id()}",
                    "-c",
                    str(props),
                    "--ignore-formatted",
                    *(self.sasl_ssl.scram_arguments() if self.sasl_ssl is not None else []),
                ],
                capture_output=True,
                text=True,
                check=False,
            )
            if formatted.returncode != 0:
                raise StackError(
                    f"kafka storage format failed:\n{formatted.stdout}{formatted.stderr}"
                )
        return [
            java,
            f"-Xmx{self.heap}",
            f"-Xms{self.heap}",
            "-XX:+UseG1GC",
            f"-Dlog4j2.configurationFile={log4j}",
            f"-Dkafka.logs.dir={self.base_dir}",
            "-cp",
            classpath,
            "kafka.Kafka",
            str(props),
        ]

    def ready(self) -> bool:
        """A real metadata request answered by the broker (an open port is not enough)."""
        return asyncio.run(broker_answers(self.bootstrap))


PORT_STEP = 10  # node n listens on the base ports + (n - 1) x PORT_STEP


@dataclass
class KafkaCluster:
    """The local Kafka: one KRaft node, or three (combined broker and controller each) on
    the base ports, +10 and +20, formatted with one cluster id. Node 1 lives in
    ``<root>/kafka``, node n in ``<root>/kafka-<n>``."""

    nodes: list[KafkaNode]

    @classmethod
    def local(
        cls,
        root: Path,
        *,
        brokers: int,
        port: int,
        controller_port: int,
        version: str,
        cache_dir: Path,
    ) -> KafkaCluster:
        ids = range(1, brokers + 1)
        voters = {n: controller_port + (n - 1) * PORT_STEP for n in ids}
        shared = cluster_id()
        return cls(
            [
                KafkaNode(
                    base_dir=root / ("kafka" if n == 1 else f"kafka-{n}"),
                    port=port + (n - 1) * PORT_STEP,
                    controller_port=voters[n],
                    version=version,
                    cache_dir=cache_dir,
                    node_id=n,
                    voters=voters if brokers > 1 else None,
                    cluster=shared,
                )
                for n in ids
            ]
        )

    @staticmethod
    def brokers_in(root: Path) -> int:
        """How many nodes a stack under ``root`` was started with (1 when none was)."""
        return 1 + sum(1 for n in (2, 3) if (root / f"kafka-{n}" / "server.properties").exists())

    @property
    def bootstrap(self) -> str:
        return ",".join(node.bootstrap for node in self.nodes)

    def up(self) -> None:
        launched = [(node, node.launch()) for node in self.nodes]
        for node, pid in launched:
            if pid is not None:
                node.wait_ready(pid)

    def down(self) -> bool:
        return any([node.down() for node in self.nodes])

    def status(self) -> str:
        states = {node.status() for node in self.nodes}
        return states.pop() if len(states) == 1 else "partial"


async def broker_answers(bootstrap: str, timeout_s: float = 3.0) -> bool:
    from aiokafka.admin import AIOKafkaAdminClient

    aiokafka_log = logging.getLogger("aiokafka")
    level = aiokafka_log.level
    aiokafka_log.setLevel(logging.CRITICAL)  # refusals are expected while starting
    admin = AIOKafkaAdminClient(
        bootstrap_servers=bootstrap, request_timeout_ms=int(timeout_s * 1000)
    )
    try:
        await asyncio.wait_for(admin.start(), timeout_s)
        await asyncio.wait_for(admin.describe_cluster(), timeout_s)
        return True
    except Exception:  # any failure means "not ready yet"
        return False
    finally:
        with contextlib.suppress(Exception):  # closing a half-started client may fail
            await asyncio.wait_for(admin.close(), timeout_s)
        aiokafka_log.setLevel(level)  # the process's own aiokafka errors are heard again
