"""The Lua loader (``store/scripts.py``): includes expanded once, shebang first, every
file used, and the argument builders' KEYS all in the tenant's hash slot."""

from __future__ import annotations

import re
from importlib import resources

from cdrstream.store import scripts
from cdrstream.store.runner import Script

SCRIPTS = [v for v in vars(scripts).values() if isinstance(v, Script)]


def test_every_script_is_expanded_with_its_includes_once() -> None:
    assert len(SCRIPTS) == 7
    for script in SCRIPTS:
        assert script.source.startswith("#!lua"), script.name
        assert "@include" not in script.source, script.name
        functions = re.findall(r"^local function (\w+)", script.source, re.M)
        assert len(functions) == len(set(functions)), script.name
    write = scripts.WRITE.source
    for snippet in ("uint48_at", "split_bucket", "summary_add", "live_announce"):
        assert f"local function {snippet}(" in write


def test_every_lua_file_is_a_script_or_included() -> None:
    files = {p.name for p in (resources.files("cdrstream.store") / "lua").iterdir()}
    used = {s.name for s in SCRIPTS}
    for script in SCRIPTS:
        text = (resources.files("cdrstream.store") / "lua" / script.name).read_text()
        used |= set(re.findall(r'^-- @include "(.+)"$', text, re.M))
    assert used == files


def test_calls_declare_only_the_tenants_keys() -> None:
    calls = [
        scripts.write_call(
            "t1", (3, 2), [scripts.WriteItem(b"12345678", b"v" * 24, b"id", b"[1]")],
            cutoff_ms=0, ttl_ms=1, summary_floor=0, splits=2,
        ),
        scripts.trim_hot_call("t1", (0, 0), 5, [b"\0\0\0\0\0\1id"]),
        scripts.forget_call("t1", 3, (1, 0), b"nonce123", [("id", 5)]),
        scripts.seal_call("t1", 3, nonce=b"", mode="drop"),
        scripts.read_day_count("t1", 3, scripts.IndexKeys(extension=b"abcd")),
        scripts.read_hot_call("t1", b"top", 0, 10, most_sent=5),
        scripts.sweep_summary_call("t1", 10),
    ]  # fmt: skip
    for call in calls:
        assert call.keys and all("{t1}" in k for k in call.keys), call.script.name
    write = calls[0]
    # 6 fixed keys, the record's one bucket, two split pairs.
    assert len(write.keys) == 6 + 1 + 4 and write.args[4:6] == [1, 2]
