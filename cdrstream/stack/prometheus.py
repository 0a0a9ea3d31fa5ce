"""A local Prometheus from Debian's `prometheus` package, scraping the worker and the API.

Its configuration is rendered from ``config/prometheus/prometheus.local.yml`` into
``<base_dir>/prometheus.yml`` with the real target addresses and the absolute path of
``config/prometheus/rules.yml`` (so editing the rules and ``POST /-/reload`` is enough);
its time series live in ``<base_dir>/data``.
"""

from __future__ import annotations

import json
import shutil
import urllib.error
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from string import Template
from typing import ClassVar

from cdrstream.stack.processes import LocalServer, StackError

#: The repository's Prometheus files: compose config, local template, rules and their tests.
CONFIG_DIR = Path(__file__).resolve().parents[2] / "config" / "prometheus"
TEMPLATE = "prometheus.local.yml"
RULES = "rules.yml"
#: Scrape and rule evaluation interval, as in the compose configuration (a test compares them).
DEFAULT_INTERVAL = "5s"


def render_config(
    *,
    worker_target: str,
    api_target: str,
    interval: str = DEFAULT_INTERVAL,
    config_dir: Path = CONFIG_DIR,
) -> str:
    """The local Prometheus configuration: the template with real targets and rules path."""
    template, rules = config_dir / TEMPLATE, config_dir / RULES
    for needed in (template, rules):
        if not needed.is_file():
            raise StackError(f"prometheus: {needed} not found (run from a source checkout)")
    # A JSON string is a valid YAML scalar, whatever characters the path holds.
    header = f"# Rendered from {template.resolve()} by `cdrstream stack up`: edit that file.\n"
    return header + Template(template.read_text()).substitute(
        interval=interval,
        rules_file=json.dumps(str(rules.resolve())),
        worker_target=worker_target,
        api_target=api_target,
    )


@dataclass
class PrometheusNode(LocalServer):
    name: ClassVar[str] = "prometheus"
    start_timeout_s: ClassVar[float] = 30.0

    base_dir: Path
    port: int
    worker_target: str
    api_target: str
    interval: str = DEFAULT_INTERVAL
    retention: str = "7d"
    config_dir: Path = CONFIG_DIR

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def config_file(self) -> Path:
        return self.base_dir / "prometheus.yml"

    def listens_on(self) -> Sequence[tuple[str, int, str]]:
        return [("prometheus", self.port, "CDRSTREAM_PROMETHEUS_PORT")]

    def command(self) -> list[str]:
        binary = shutil.which("prometheus") or "/usr/bin/prometheus"
        if not Path(binary).exists():
            raise StackError("prometheus not found: apt-get install -y prometheus")
        self.config_file.write_text(
            render_config(
                worker_target=self.worker_target,
                api_target=self.api_target,
                interval=self.interval,
                config_dir=self.config_dir,
            )
        )
        data = self.base_dir / "data"
        data.mkdir(parents=True, exist_ok=True)
        return [
            binary,
            f"--config.file={self.config_file}",
            f"--storage.tsdb.path={data}",
            f"--storage.tsdb.retention.time={self.retention}",
            f"--web.listen-address=127.0.0.1:{self.port}",
            "--web.enable-lifecycle",
        ]

    def ready(self) -> bool:
        try:
            with urllib.request.urlopen(f"{self.url}/-/ready", timeout=2) as answer:
                return int(answer.status) == 200
        except (urllib.error.URLError, OSError):
            return False
