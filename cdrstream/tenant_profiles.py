"""The tenants file (``CDRSTREAM_TENANTS_FILE``): what the platform knows about each tenant.

A JSON object, tenant id -> profile::

    {
      "acme":   {"region": "NL", "outside_line": "0"},
      "brexit": {"region": "GB"},
      "us-1":   {"region": "US", "outside_line": "9"}
    }

``region`` (optional, null allowed): the ISO 3166 alpha-2 region the tenant's users dial from
(used when an event has no ``tenant_region``). ``outside_line`` (optional, default ""): the
digits the tenant's users dial before an external number. Unknown keys are refused, so a
typo does not silently change how numbers are read. ``numbers`` and ``trunks`` (optional) are
read by the PBX adapters only (`cdrstream.ingest.pbx_tenants`).
"""

from __future__ import annotations

import re
from pathlib import Path

import orjson
import phonenumbers

from cdrstream.core.event import TENANT_ID
from cdrstream.core.outcome import TenantProfile

_OUTSIDE_LINE = re.compile(r"[0-9]{0,4}")
_KEYS = frozenset({"region", "outside_line", "numbers", "trunks"})


class TenantProfilesError(ValueError):
    """The tenants file cannot be used; the message says where and why."""


def load_tenant_profiles(path: str | Path) -> dict[str, TenantProfile]:
    """Read and check the tenants file; an empty path means no file (no profiles)."""
    if not str(path):
        return {}
    return parse_tenant_profiles(read_tenants_file(path), source=str(path))


def read_tenants_file(path: str | Path) -> object:
    """The decoded JSON of the tenants file (not yet checked)."""
    try:
        return orjson.loads(Path(path).read_bytes())
    except OSError as exc:
        raise TenantProfilesError(f"{path}: cannot read the tenants file: {exc}") from exc
    except orjson.JSONDecodeError as exc:
        raise TenantProfilesError(f"{path}: not JSON: {exc}") from exc


def parse_tenant_profiles(data: object, source: str = "tenants file") -> dict[str, TenantProfile]:
    """Check an already decoded tenants document (see the module docstring)."""
    if not isinstance(data, dict):
        raise TenantProfilesError(f"{source}: must be a JSON object: tenant id -> profile")
    profiles: dict[str, TenantProfile] = {}
    for tenant_id, entry in data.items():
        where = f"{source}: tenant {tenant_id!r}"
        if not TENANT_ID.fullmatch(tenant_id):
            raise TenantProfilesError(f"{where}: not a tenant id ([A-Za-z0-9._-]{{1,64}})")
        if not isinstance(entry, dict):
            raise TenantProfilesError(f"{where}: must be an object with region, outside_line")
        unknown = sorted(set(entry) - _KEYS)
        if unknown:
            raise TenantProfilesError(
                f"{where}: unknown keys {unknown} (known: region, outside_line, numbers, trunks)"
            )
        region = entry.get("region")
        if region is not None:
            if not isinstance(region, str) or region.upper() not in phonenumbers.SUPPORTED_REGIONS:
                raise TenantProfilesError(f"{where}: region must be an ISO 3166 alpha-2 code")
            region = region.upper()
        outside_line = entry.get("outside_line", "")
        if outside_line is None:
            outside_line = ""
        if not isinstance(outside_line, str) or not _OUTSIDE_LINE.fullmatch(outside_line):
            raise TenantProfilesError(f'{where}: outside_line must be 0-4 digits, e.g. "0"')
        profiles[tenant_id] = TenantProfile(region=region, outside_line=outside_line)
    return profiles
