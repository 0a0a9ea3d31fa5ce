"""Calling a script that addresses id-map buckets: with the tenant's current shape.

The id map's shape (``level``, ``split`` in the meta hash, see ``layout.py``) decides
which bucket holds an id. A caller builds its call for the shape it believes; the script
checks it and answers ``{-1, level, split}`` without changing anything when another
process split buckets since; the call is then built again for the shape in the answer.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from cdrstream.store.layout import Shape, meta_key
from cdrstream.store.runner import ScriptCall

#: Rounds of "the shape changed, build again" before giving up.
MAX_ROUNDS = 8


async def read_shape(redis: Any, tenant_id: str) -> Shape:
    level, split = await redis.hmget(meta_key(tenant_id), ["level", "split"])
    return int(level or 0), int(split or 0)


async def run_shaped(
    redis: Any,
    tenant_id: str,
    build: Callable[[Shape], ScriptCall],
    shape: Shape | None = None,
) -> list[Any]:
    """Run the call ``build`` makes for the current shape; its answer (which starts with
    the shape it ran under)."""
    if shape is None:
        shape = await read_shape(redis, tenant_id)
    for _ in range(MAX_ROUNDS):
        answer = list(await build(shape).run(redis))
        if int(answer[0]) != -1:
            return answer
        shape = (int(answer[1]), int(answer[2]))
    raise RuntimeError(f"the id-map shape of tenant {tenant_id!r} kept changing")
