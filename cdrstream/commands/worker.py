"""`cdrstream worker`: one member of the consumer group; metrics on its own port."""

from __future__ import annotations

import argparse

from cdrstream.commands.faust_role import add_uvloop_flag


def configure(parser: argparse.ArgumentParser) -> None:
    add_uvloop_flag(parser)


def run(args: argparse.Namespace) -> int:
    import asyncio
    import logging

    from cdrstream.commands.faust_role import prepare_process, run_faust_app
    from cdrstream.kafka_connection import KafkaAccessRefused, KafkaSecurityError, check_access
    from cdrstream.kafka_topics import missing_topics
    from cdrstream.observability.refusal import serve_refusal
    from cdrstream.settings import load_settings
    from cdrstream.worker.app import create_worker_app
    from cdrstream.worker.fetch_batches import require_supported_faust
    from cdrstream.worker.retry import until_done

    require_supported_faust()
    settings = load_settings()
    config = prepare_process(settings, uvloop=not args.no_uvloop)
    log = logging.getLogger(__name__)

    async def access_then_topics() -> list[str]:
        await check_access(settings)
        return await missing_topics(settings)

    # The worker creates no topic (it would pick partitions and replication for the
    # operator); it checks that ours exist. Until Kafka answers, wait with backoff; when
    # Kafka refuses the credentials or TLS, stay up unready (docs/deployment.md).
    try:
        missing = asyncio.run(
            until_done(
                f"checking topics on kafka {settings.kafka_bootstrap}",
                access_then_topics,
                log=log,
                first_delay_s=0.5,
                max_delay_s=10.0,
            )
        )
    except (KafkaAccessRefused, KafkaSecurityError) as exc:
        log.error("kafka refused: %s; not consuming until the settings change", exc)
        return serve_refusal(settings.api_bind, settings.worker_port, "kafka", str(exc))
    if missing:
        log.error(
            "topics missing on kafka %s: %s; create them with `cdrstream topics create"
            " --partitions N --replication-factor R` (the local stack: `cdrstream stack up`)",
            settings.kafka_bootstrap,
            ", ".join(missing),
        )
        return 2
    return run_faust_app(create_worker_app(settings), settings, config)
