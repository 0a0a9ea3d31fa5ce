"""The tenants file loader."""

from __future__ import annotations

from pathlib import Path

import pytest

from cdrstream.core.outcome import TenantProfile
from cdrstream.tenant_profiles import (
    TenantProfilesError,
    load_tenant_profiles,
    parse_tenant_profiles,
)


def test_empty_path_means_no_profiles() -> None:
    assert load_tenant_profiles("") == {}


def test_profiles_are_read_and_normalized(tmp_path: Path) -> None:
    path = tmp_path / "tenants.json"
    path.write_text(
        '{"acme": {"region": "nl", "outside_line": "0"}, "globex": {}, '
        '"initech": {"region": null, "outside_line": null}}'
    )
    assert load_tenant_profiles(path) == {
        "acme": TenantProfile(region="NL", outside_line="0"),
        "globex": TenantProfile(),
        "initech": TenantProfile(),
    }


def test_missing_file_is_an_error_naming_it(tmp_path: Path) -> None:
    with pytest.raises(TenantProfilesError, match=r"nope\.json"):
        load_tenant_profiles(tmp_path / "nope.json")


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ([], "must be a JSON object"),
        ({"acme": "NL"}, "must be an object"),
        ({"acme": {"region": "Holland"}}, "region"),
        ({"acme": {"region": 31}}, "region"),
        ({"acme": {"outside_line": 0}}, "outside_line"),
        ({"acme": {"outside_line": "00000"}}, "outside_line"),
        ({"acme": {"extra": 1}}, "unknown keys"),
        ({"bad tenant": {}}, "not a tenant id"),
    ],
)
def test_bad_documents(data: object, message: str) -> None:
    with pytest.raises(TenantProfilesError, match=message):
        parse_tenant_profiles(data)
