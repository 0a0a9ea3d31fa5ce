"""Tokens, the access file and the read decision (SPEC rule 9)."""

from __future__ import annotations

import hmac
import os
import stat
from dataclasses import replace
from pathlib import Path

import orjson
import pytest

from cdrstream.access import tokens
from cdrstream.access.access_store import (
    AccessData,
    AccessFileError,
    FileTokens,
    TokenEntry,
    issue_token,
    parse_access,
    read_access,
    revoke_tokens,
    write_access,
)
from cdrstream.access.policy import AccessDecision, authenticate, bearer_token, decide_access
from cdrstream.access.principal import Principal

# ------------------------------------------------------------------------------- tokens


def test_new_token_has_its_id_inside_and_256_random_bits() -> None:
    token_id, token = tokens.new_token()
    assert token.startswith(f"cdrs_{token_id}_")
    assert tokens.token_id_of(token) == token_id
    parsed = tokens.parse_token(token)
    assert parsed is not None and parsed[0] == token_id
    secret = parsed[1]
    assert token == f"cdrs_{token_id}_{secret}"
    assert len(secret) == 43  # 32 bytes, url-safe base64 without padding
    assert len({tokens.new_token()[1] for _ in range(100)}) == 100


@pytest.mark.parametrize(
    ("token", "parsed"),
    [
        ("cdrs_0123456789ab_" + "a" * 43, ("0123456789ab", "a" * 43)),
        # token_urlsafe secrets hold "_" and "-": the secret is all of it, not its last piece
        ("cdrs_0123456789ab_" + "s_" * 21 + "s", ("0123456789ab", "s_" * 21 + "s")),
        ("cdrs_0123456789ab_" + "_" * 43, ("0123456789ab", "_" * 43)),
        ("cdrs_0123456789ab_" + "a" * 42, None),  # too short
        ("cdrs_0123456789AB_" + "a" * 43, None),  # the id is lower-case hex
        ("cdrs_0123456789ab_" + "a" * 42 + "=", None),
        ("Bearer cdrs_0123456789ab_" + "a" * 43, None),
    ],
)
def test_parse_token_gives_the_whole_secret(token: str, parsed: tuple[str, str] | None) -> None:
    assert tokens.parse_token(token) == parsed
    assert tokens.token_id_of(token) == (parsed[0] if parsed else None)


def test_token_hash_is_sha256_hex_and_not_the_token() -> None:
    _, token = tokens.new_token()
    digest = tokens.token_hash(token)
    assert len(digest) == 64 and int(digest, 16) >= 0
    assert token not in digest


@pytest.mark.parametrize(
    "text",
    [
        "",
        "cdrs_",
        "cdrs_abc_def",
        "cdrs_0123456789ab_short",
        "CDRS_0123456789ab_" + "a" * 43,
        "cdrs_0123456789AB_" + "a" * 43,  # the id is lowercase hex
        "cdrs_0123456789ab_" + "a" * 44,
        "cdrs_0123456789ab_" + "a" * 42 + "!",
        "Bearer cdrs_0123456789ab_" + "a" * 43,
    ],
)
def test_malformed_tokens_have_no_id(text: str) -> None:
    assert tokens.token_id_of(text) is None


def test_matches_uses_a_constant_time_compare(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[tuple[bytes, bytes]] = []
    real = hmac.compare_digest

    def spy(a: bytes, b: bytes) -> bool:
        calls.append((a, b))
        return real(a, b)

    monkeypatch.setattr(tokens.hmac, "compare_digest", spy)
    _, token = tokens.new_token()
    assert tokens.matches(token, tokens.token_hash(token))
    assert not tokens.matches(token + "x", tokens.token_hash(token))
    assert len(calls) == 2


# ------------------------------------------------------------------------------- the file


def test_issue_stores_only_the_hash_in_a_0600_file(tmp_path: Path) -> None:
    path = tmp_path / "sub" / "access.json"
    token, entry = issue_token(path, partner="acme", tenants=["t1", "t2"], airtime_reseller=True)
    text = path.read_text()
    assert token not in text
    assert token.split("_", 2)[2] not in text
    assert entry.token_hash in text
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    loaded = read_access(path).lookup(entry.token_id)
    assert loaded == entry
    assert loaded is not None and loaded.tenants == frozenset({"t1", "t2"})
    assert loaded.created_at.endswith("Z")
    assert not list(tmp_path.glob("sub/.access.json.*.tmp"))  # no temporary file left


def test_issue_appends_and_revoke_by_partner_or_id(tmp_path: Path) -> None:
    path = tmp_path / "access.json"
    _, a1 = issue_token(path, partner="acme", tenants=["t1"], airtime_reseller=True)
    _, a2 = issue_token(path, partner="acme", tenants=["t2"], airtime_reseller=True)
    _, b1 = issue_token(path, partner="bolt", tenants=["t1"], airtime_reseller=False)
    assert [e.token_id for e in read_access(path).tokens] == [a1.token_id, a2.token_id, b1.token_id]

    revoked = revoke_tokens(path, partner="acme")
    assert {e.token_id for e in revoked} == {a1.token_id, a2.token_id}
    access = read_access(path)
    assert all(access.by_id[e.token_id].revoked for e in (a1, a2))
    assert not access.by_id[b1.token_id].revoked
    assert revoke_tokens(path, partner="acme") == []  # already revoked: nothing new

    assert [e.token_id for e in revoke_tokens(path, token_id=b1.token_id)] == [b1.token_id]
    assert read_access(path).by_id[b1.token_id].revoked


def test_revoke_needs_a_partner_or_an_id(tmp_path: Path) -> None:
    with pytest.raises(ValueError):
        revoke_tokens(tmp_path / "access.json")


@pytest.mark.parametrize(
    ("partner", "tenants"),
    [("", ["t1"]), ("acme corp", ["t1"]), ("acme", ["t 1"]), ("acme", ["x" * 65])],
)
def test_issue_refuses_bad_names(tmp_path: Path, partner: str, tenants: list[str]) -> None:
    with pytest.raises(ValueError):
        issue_token(tmp_path / "a.json", partner=partner, tenants=tenants, airtime_reseller=True)


@pytest.mark.parametrize(
    "body",
    [
        b"",
        b"[]",
        b'{"version": 2, "tokens": []}',
        b'{"version": 1, "tokens": [1]}',
        b'{"version": 1, "tokens": [{"token_id": "zz"}]}',
    ],
)
def test_parse_refuses_bad_documents(body: bytes) -> None:
    with pytest.raises(AccessFileError):
        parse_access(body)


def test_missing_file_is_empty(tmp_path: Path) -> None:
    assert read_access(tmp_path / "none.json").tokens == ()


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_cache_reloads_on_change_at_most_once_a_second(tmp_path: Path) -> None:
    path = tmp_path / "access.json"
    clock = FakeClock()
    cache = FileTokens(path, clock=clock)
    assert cache.current().tokens == ()

    _, first = issue_token(path, partner="acme", tenants=["t1"], airtime_reseller=True)
    clock.now += 0.5
    assert cache.current().lookup(first.token_id) is None  # not checked again yet
    clock.now += 0.6
    assert cache.current().lookup(first.token_id) == first

    revoke_tokens(path, token_id=first.token_id)
    clock.now += 1.0
    entry = cache.current().lookup(first.token_id)
    assert entry is not None and entry.revoked


def test_cache_keeps_last_good_copy_when_the_file_breaks(tmp_path: Path) -> None:
    path = tmp_path / "access.json"
    clock = FakeClock()
    cache = FileTokens(path, clock=clock)
    _, entry = issue_token(path, partner="acme", tenants=["t1"], airtime_reseller=True)
    assert cache.current().lookup(entry.token_id) == entry
    path.write_text("{not json")
    clock.now += 2
    assert cache.current().lookup(entry.token_id) == entry
    path.unlink()
    clock.now += 2
    assert cache.current().lookup(entry.token_id) is None  # gone: nobody is let in


def test_write_access_replaces_atomically(tmp_path: Path) -> None:
    path = tmp_path / "access.json"
    write_access(path, AccessData())
    inode = path.stat().st_ino
    write_access(path, AccessData())
    assert path.stat().st_ino != inode  # a new file renamed over the old one
    assert read_access(path).tokens == ()


# ------------------------------------------------------------------------------- policy


def _entry(token: str, *, reseller: bool, tenants: set[str], revoked: bool = False) -> TokenEntry:
    token_id = tokens.token_id_of(token)
    assert token_id is not None
    return TokenEntry(
        token_id=token_id,
        token_hash=tokens.token_hash(token),
        partner="p",
        tenants=frozenset(tenants),
        airtime_reseller=reseller,
        created_at="2026-11-25T08:00:00Z",
        revoked_at="2026-11-25T09:00:00Z" if revoked else None,
    )


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        (None, None),
        ("", None),
        ("Bearer", None),
        ("Bearer ", None),
        ("Basic abc", None),
        ("Bearer abc", "abc"),
        ("bearer abc", "abc"),
        ("BEARER   abc  ", "abc"),
    ],
)
def test_bearer_token(header: str | None, expected: str | None) -> None:
    assert bearer_token(header) == expected


def test_policy_matrix() -> None:
    _, good = tokens.new_token()
    _, non_reseller = tokens.new_token()
    _, no_contract = tokens.new_token()
    _, revoked = tokens.new_token()
    _, unknown = tokens.new_token()
    lookup = AccessData.of(
        [
            _entry(good, reseller=True, tenants={"t1"}),
            _entry(non_reseller, reseller=False, tenants={"t1"}),
            _entry(no_contract, reseller=True, tenants={"t2"}),
            _entry(revoked, reseller=True, tenants={"t1"}, revoked=True),
        ]
    ).principal_of
    forged = good[:-1] + ("A" if good[-1] != "A" else "B")  # right id, wrong secret

    def verdict(header: str | None, tenant: str = "t1") -> str:
        return decide_access(header, tenant, lookup).verdict

    assert verdict(None) == "unauthenticated"
    assert verdict("Bearer nonsense") == "unauthenticated"
    assert verdict(f"Bearer {unknown}") == "unauthenticated"
    assert verdict(f"Bearer {forged}") == "unauthenticated"
    assert verdict(f"Bearer {revoked}") == "unauthenticated"
    assert verdict(f"Basic {good}") == "unauthenticated"
    assert verdict(f"Bearer {non_reseller}") == "forbidden"
    assert verdict(f"Bearer {no_contract}") == "forbidden"
    assert verdict(f"Bearer {good}", "no-such-tenant") == "forbidden"
    assert verdict(f"Bearer {good}") == "allowed"
    assert decide_access(f"Bearer {good}", "t1", lookup).entry == Principal(
        "p", frozenset({"t1"}), airtime_reseller=True, masked_numbers=False
    )
    assert decide_access(None, "t1", lookup).entry is None


def test_a_malformed_token_is_never_looked_up() -> None:
    looked_up: list[str] = []

    class Spy(AccessData):
        def lookup(self, token_id: str) -> TokenEntry | None:
            looked_up.append(token_id)
            return None

    assert authenticate("Bearer not-a-token", Spy().principal_of) is None
    assert authenticate("Bearer cdrs_0123456789ab_short", Spy().principal_of) is None
    assert looked_up == []


# ------------------------------------------------------------------------------- masked numbers


def test_masked_flag_is_part_of_the_stored_grant(tmp_path: Path) -> None:
    path = tmp_path / "access.json"
    token, masked = issue_token(
        path, partner="acme", tenants=["t1"], airtime_reseller=True, masked_numbers=True
    )
    _, full = issue_token(path, partner="acme", tenants=["t1"], airtime_reseller=True)
    access = read_access(path)
    assert access.by_id[masked.token_id].masked_numbers is True
    assert access.by_id[full.token_id].masked_numbers is False
    text = path.read_text()
    assert '"masked_numbers": true' in text and '"masked_numbers": false' in text
    assert token not in text
    # revoking keeps the flag (the audit trail says what the token could see)
    revoke_tokens(path, token_id=masked.token_id)
    assert read_access(path).by_id[masked.token_id].masked_numbers is True


def test_an_entry_written_before_the_flag_reads_as_full_numbers(tmp_path: Path) -> None:
    _, token = tokens.new_token()
    entry = _entry(token, reseller=True, tenants={"t1"}).to_json()
    del entry["masked_numbers"]
    access = parse_access(orjson.dumps({"version": 1, "tokens": [entry]}))
    assert access.tokens[0].masked_numbers is False


@pytest.mark.parametrize("value", ["true", 1, 0, None, "", [], {}])
def test_a_masked_flag_that_is_not_a_boolean_refuses_the_file(value: object) -> None:
    """A hand-edited "masked_numbers": "true" must not silently read as anything."""
    _, token = tokens.new_token()
    entry = {**_entry(token, reseller=True, tenants={"t1"}).to_json(), "masked_numbers": value}
    with pytest.raises(AccessFileError, match="masked_numbers"):
        parse_access(orjson.dumps({"version": 1, "tokens": [entry]}))


def test_the_cache_keeps_a_masked_grant_when_the_file_turns_bad(tmp_path: Path) -> None:
    """An edit that breaks the file must not turn a masked token into a full one."""
    path = tmp_path / "access.json"
    clock = FakeClock()
    cache = FileTokens(path, clock=clock)
    _, entry = issue_token(
        path, partner="acme", tenants=["t1"], airtime_reseller=True, masked_numbers=True
    )
    assert cache.current().lookup(entry.token_id) == entry
    path.write_text(path.read_text().replace('"masked_numbers": true', '"masked_numbers": 0'))
    clock.now += 2
    cached = cache.current().lookup(entry.token_id)
    assert cached is not None and cached.masked_numbers is True


def test_masked_tokens_are_decided_like_any_other() -> None:
    """Masking changes what is shown, never who gets in: the same 401/403 matrix."""
    made = {name: tokens.new_token()[1] for name in ("good", "non", "none", "gone")}
    check = AccessData.of(
        [
            replace(_entry(made["good"], reseller=True, tenants={"t1"}), masked_numbers=True),
            replace(_entry(made["non"], reseller=False, tenants={"t1"}), masked_numbers=True),
            replace(_entry(made["none"], reseller=True, tenants={"t2"}), masked_numbers=True),
            replace(
                _entry(made["gone"], reseller=True, tenants={"t1"}, revoked=True),
                masked_numbers=True,
            ),
        ]
    ).principal_of

    def decision(name: str, tenant: str = "t1") -> AccessDecision:
        return decide_access(f"Bearer {made[name]}", tenant, check)

    allowed = decision("good")
    assert allowed.verdict == "allowed"
    assert allowed.entry is not None and allowed.entry.masked_numbers
    assert decision("good", "t2").verdict == "forbidden"
    assert decision("non").verdict == "forbidden"
    assert decision("none").verdict == "forbidden"
    assert decision("gone").verdict == "unauthenticated"
    forged = made["good"][:-1] + ("A" if made["good"][-1] != "A" else "B")
    assert decide_access(f"Bearer {forged}", "t1", check).verdict == "unauthenticated"


def _token_command(access_file: Path, *argv: str) -> tuple[int, str, str]:
    import argparse
    import contextlib
    import io

    from cdrstream.commands import token as command

    parser = argparse.ArgumentParser()
    command.configure(parser)
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = command.run(parser.parse_args(argv))
    return code, out.getvalue(), err.getvalue()


def test_token_issue_mask_and_list(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "access.json"
    monkeypatch.setenv("CDRSTREAM_ACCESS_FILE", str(path))
    issue = ("issue", "--partner", "noc", "--tenants", "t1", "--airtime-reseller")
    code, token, hint = _token_command(path, *issue, "--mask")
    assert code == 0 and "numbers masked" in hint
    code, full, hint = _token_command(path, *issue)
    assert code == 0 and "masked" not in hint
    masked_id, full_id = tokens.token_id_of(token.strip()), tokens.token_id_of(full.strip())
    assert masked_id and full_id
    assert read_access(path).by_id[masked_id].masked_numbers
    code, listed, _ = _token_command(path, "list")
    lines = {line.split()[0]: line for line in listed.splitlines()}
    assert "masked-numbers" in lines[masked_id].split()
    assert "full-numbers" in lines[full_id].split()
    assert token.strip() not in listed


# ------------------------------------------------------------------------------- cursor keys


def test_a_cursor_of_the_previous_secret_is_accepted_for_an_hour_after_rotation() -> None:
    from cdrstream.access.cursor_keys import CursorSecrets, SharedCursorKeys
    from cdrstream.store.cursor import InvalidCursor, decode_cursor, encode_cursor

    rotated_at = 1_700_000_000_000
    wall = [rotated_at - 1]
    keys = SharedCursorKeys(wall_ms=lambda: wall[0])
    keys.update(CursorSecrets(b"old" * 8))
    old_cursor = encode_cursor(keys, b"t1|q", 5, "rec-1")
    keys.update(CursorSecrets(b"new" * 8, previous=b"old" * 8, rotated_at_ms=rotated_at))
    new_cursor = encode_cursor(keys, b"t1|q", 5, "rec-1")
    assert new_cursor != old_cursor  # signed with the new secret now
    for at in (rotated_at, rotated_at + 3_599_999):  # within the hour: both accepted
        wall[0] = at
        assert decode_cursor(keys, b"t1|q", old_cursor) == (5, "rec-1")
        assert decode_cursor(keys, b"t1|q", new_cursor) == (5, "rec-1")
    wall[0] = rotated_at + 3_600_000  # an hour on: only the new one
    with pytest.raises(InvalidCursor):
        decode_cursor(keys, b"t1|q", old_cursor)
    assert decode_cursor(keys, b"t1|q", new_cursor) == (5, "rec-1")
    # the previous secret never signs, and never opens another query's cursor
    with pytest.raises(InvalidCursor):
        decode_cursor(keys, b"t2|q", new_cursor)


def test_cursor_keys_not_loaded_are_unavailable_not_a_default_key() -> None:
    from cdrstream.access.access_store import AccessUnavailable
    from cdrstream.access.cursor_keys import SharedCursorKeys

    with pytest.raises(AccessUnavailable):
        SharedCursorKeys().signing_key()


# ------------------------------------------------------------------------------- sign-in claims


@pytest.mark.parametrize(
    ("claims", "expected"),
    [
        ({"sub": "acme", "tenants": ["t1", "t2"], "airtime_reseller": True},
         Principal("acme", frozenset({"t1", "t2"}), True, False)),
        ({"sub": "acme", "tenants": "t1 t2", "airtime_reseller": True, "masked_numbers": True},
         Principal("acme", frozenset({"t1", "t2"}), True, True)),
        ({"sub": "acme"}, Principal("acme", frozenset(), False, False)),
        ({"tenants": ["t1"], "airtime_reseller": True}, None),  # no partner
        ({"sub": "two words", "tenants": ["t1"]}, None),
        ({"sub": 42, "tenants": ["t1"]}, None),
        ({"sub": "acme", "tenants": [1, 2]}, None),
        ({"sub": "acme", "tenants": {"t1": True}}, None),
        ({"sub": "acme", "airtime_reseller": "true"}, None),
        ({"sub": "acme", "airtime_reseller": 1}, None),
        ({"sub": "acme", "masked_numbers": "false"}, None),
        ({"sub": "acme", "masked_numbers": None}, None),
    ],
)  # fmt: skip
def test_principal_from_sign_in_claims(claims: dict, expected: Principal | None) -> None:
    from cdrstream.access.oidc import OidcConfig, principal_from_claims

    config = OidcConfig(issuer="https://idp.example", audience="cdrstream")
    assert principal_from_claims(config, claims) == expected
