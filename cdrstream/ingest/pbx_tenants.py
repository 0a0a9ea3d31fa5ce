"""What a PBX adapter reads from the tenants file (``CDRSTREAM_TENANTS_FILE``): each tenant's
region, and which trunks and numbers are the tenant's (pure; docs/adapters/).

The tenants file (`cdrstream.tenant_profiles`) may give a tenant, beside ``region`` and
``outside_line``::

    {"zgtel": {"region": "RU", "outside_line": "0",
               "numbers": ["88007757800"], "trunks": ["KTTK", "avayaG700"]}}

- ``trunks``: the PBX trunks (Asterisk endpoint or peer names, FreeSWITCH gateway names)
  that carry only this tenant's calls: a call over one of them is the tenant's;
- ``numbers``: the tenant's own numbers (DIDs), as the carrier delivers them: an inbound
  call to one of them is the tenant's, and the first one is the number an inbound caller
  dialled when the CDR holds no number (an IVR menu key, ``s``).

A PBX event carries the tenant's ``region`` as its ``tenant_region``, so a record says in
which country its numbers were read. `region_warnings` names, for the start message, every
tenant whose numbers fall back to the default region.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from cdrstream.tenant_profiles import (
    TenantProfilesError,
    parse_tenant_profiles,
    read_tenants_file,
)

_NUMBER = re.compile(r"\+?[0-9]{3,20}")
_NAME = re.compile(r"[A-Za-z0-9_.:/@+-]{1,120}")


@dataclass(frozen=True, slots=True)
class PbxTenants:
    """Tenant id -> region, numbers, trunks (empty: no tenants file)."""

    regions: Mapping[str, str | None] = field(default_factory=dict)
    numbers: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    trunks: Mapping[str, tuple[str, ...]] = field(default_factory=dict)

    def by_trunk(self, *names: str) -> str | None:
        """The tenant whose ``trunks`` hold one of ``names`` (``PJSIP/KTTK`` or ``KTTK``)."""
        wanted = {name for name in names if name}
        for tenant, trunks in self.trunks.items():
            if wanted & set(trunks):
                return tenant
        return None

    def by_number(self, number: str) -> str | None:
        """The tenant one of whose ``numbers`` is ``number`` (digits compared, ``+`` ignored)."""
        digits = number.strip().lstrip("+")
        if not digits:
            return None
        for tenant, numbers in self.numbers.items():
            if any(own.lstrip("+") == digits for own in numbers):
                return tenant
        return None

    def main_number(self, tenant: str) -> str | None:
        numbers = self.numbers.get(tenant, ())
        return numbers[0] if numbers else None

    def region(self, tenant: str) -> str | None:
        return self.regions.get(tenant)


def parse_pbx_tenants(data: object, source: str = "tenants file") -> PbxTenants:
    """The PBX view of a decoded tenants document (checked like the worker checks it)."""
    profiles = parse_tenant_profiles(data, source)
    assert isinstance(data, dict)
    numbers: dict[str, tuple[str, ...]] = {}
    trunks: dict[str, tuple[str, ...]] = {}
    for tenant, entry in data.items():
        for key, pattern, target in (("numbers", _NUMBER, numbers), ("trunks", _NAME, trunks)):
            values = entry.get(key) or []
            if not isinstance(values, list) or not all(
                isinstance(v, str) and pattern.fullmatch(v) for v in values
            ):
                what = "numbers (digits, + allowed)" if key == "numbers" else "trunk names"
                where = f"{source}: tenant {tenant!r}"
                raise TenantProfilesError(f"{where}: {key} must be a list of {what}")
            target[tenant] = tuple(values)
    return PbxTenants(
        regions={tenant: profile.region for tenant, profile in profiles.items()},
        numbers=numbers,
        trunks=trunks,
    )


def load_pbx_tenants(path: str | Path) -> PbxTenants:
    """Read the tenants file; an empty path means none (`TenantProfilesError` if unusable)."""
    if not str(path):
        return PbxTenants()
    return parse_pbx_tenants(read_tenants_file(path), source=str(path))


def region_warnings(tenants: PbxTenants, default_region: str, tenants_file: str) -> list[str]:
    """What the adapter says at start about regions: one line per tenant without one, or one
    line when there is no tenants file at all."""
    if not tenants_file:
        return [
            "CDRSTREAM_TENANTS_FILE is not set: every tenant's numbers are read as numbers of "
            f"{default_region} (CDRSTREAM_DEFAULT_REGION); give each tenant its region there"
        ]
    return [
        f"tenant {tenant!r} has no region in {tenants_file}: its numbers are read as numbers "
        f"of {default_region} (CDRSTREAM_DEFAULT_REGION)"
        for tenant, region in sorted(tenants.regions.items())
        if region is None
    ]
