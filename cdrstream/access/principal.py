"""Who a valid credential speaks for: a partner and its grant, whatever proved it."""

from __future__ import annotations

import re
from dataclasses import dataclass

#: A partner id, whichever credential names it.
PARTNER_RE = re.compile(r"[A-Za-z0-9._@-]{1,64}")


@dataclass(frozen=True, slots=True)
class Principal:
    """The caller a credential authenticates: a token of ours or a sign-in token (OIDC).

    ``tenants`` and ``airtime_reseller`` are the partner's contracts (contract §3 rule 9);
    ``masked_numbers``: every number it is served is masked (`cdrstream.core.masking`).
    """

    partner: str
    tenants: frozenset[str]
    airtime_reseller: bool
    masked_numbers: bool = False
