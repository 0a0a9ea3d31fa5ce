"""The worker's Faust producer (dead letters) with idempotence on.

faust-streaming 0.15.3 passes ``producer_acks`` to aiokafka but turns idempotence on only
inside transactions (``Producer._settings_extra``); this producer turns it on always, so
aiokafka's own retries after a lost acknowledgement never write a dead letter twice.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from faust.transport.drivers.aiokafka import Producer


class IdempotentProducer(Producer):
    def _settings_extra(self) -> Mapping[str, Any]:
        return {**super()._settings_extra(), "acks": "all", "enable_idempotence": True}
