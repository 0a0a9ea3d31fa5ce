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
from collections.abc import Sequence
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


@dataclass
class KafkaNode(LocalServer):
    name: ClassVar[str] = "kafka"
    start_timeout_s: ClassVar[float] = 90.0
    stop_timeout_s: ClassVar[float] = 30.0

    base_dir: Path
    port: int
    controller_port: int
    version: str
    cache_dir: Path
    heap: str = "512m"

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    def _properties(self) -> str:
        return "\n".join(
            [
                "process.roles=broker,controller",
                "node.id=1",
                f"controller.quorum.voters=1@127.0.0.1:{self.controller_port}",
                f"listeners=PLAINTEXT://127.0.0.1:{self.port},CONTROLLER://127.0.0.1:{self.controller_port}",
                f"advertised.listeners=PLAINTEXT://127.0.0.1:{self.port}",
                "controller.listener.names=CONTROLLER",
                "listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
                "inter.broker.listener.name=PLAINTEXT",
                f"log.dirs={self.base_dir / 'data'}",
                "num.partitions=1",
                "auto.create.topics.enable=false",
                "offsets.topic.replication.factor=1",
                "offsets.topic.num.partitions=4",
                "transaction.state.log.replication.factor=1",
                "transaction.state.log.min.isr=1",
                "share.coordinator.state.topic.replication.factor=1",
                "share.coordinator.state.topic.min.isr=1",
                "group.initial.rebalance.delay.ms=0",
                "log.flush.interval.messages=1",  # fault tests restart the broker: keep acked data
                "",
            ]
        )

    def listens_on(self) -> Sequence[tuple[str, int, str]]:
        return [
            ("kafka", self.port, "CDRSTREAM_KAFKA_PORT"),
            ("kafka controller", self.controller_port, "CDRSTREAM_KAFKA_CONTROLLER_PORT"),
        ]

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
                    f"--cluster-id={cluster_id()}",
                    "-c",
                    str(props),
                    "--ignore-formatted",
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


async def broker_answers(bootstrap: str, timeout_s: float = 3.0) -> bool:
    from aiokafka.admin import AIOKafkaAdminClient

    logging.getLogger("aiokafka").setLevel(logging.CRITICAL)  # refusals are expected while starting
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
