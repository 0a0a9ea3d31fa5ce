"""Emergency numbers (contract §3, rule 3): calls *to* them are never shown.

A dialled digit string is an emergency number of a region when it *exactly* equals one:
libphonenumber's short-number data (`phonenumbers.shortnumberinfo.is_emergency_number`, which
never prefix-matches) or the small `SUPPLEMENT` below. Prefix-style matching
(`connects_to_emergency_number`) is deliberately not used: ``1120`` or a subscriber number such
as ``+31 112 ...`` must not be hidden. Whatever surrounds or disguises the digits (URI wrappers
and parameters, post-dial, other digit scripts and lookalikes, invisible characters,
outside-line digits, presentation codes, carrier prefixes, international forms and trunk
prefixes) is taken off by `cdrstream.core.dialled_digits` before `cdrstream.core.numbers` asks
here, once per candidate, so this check stays on plain ASCII digits.
"""

from __future__ import annotations

from functools import lru_cache

from phonenumbers import shortnumberinfo

# Where libphonenumber's emergency data (checked against phonenumbers 9.0) is thinner than the
# national list of emergency numbers. Each entry names its source.
SUPPLEMENT: dict[str, frozenset[str]] = {
    # service-public.fr, "Numéros d'urgence" (and ARCEP, "Les numéros d'urgence"): 114 urgence
    # for deaf and hard-of-hearing callers, 115 SAMU social, 119 enfance en danger, 191 secours
    # aéronautique, 196 secours en mer, 197 alerte attentat/enlèvement. (15, 17, 18, 112 are in
    # libphonenumber.)
    "FR": frozenset({"114", "115", "119", "191", "196", "197"}),
    # CNMC, Plan Nacional de Numeración Telefónica, números cortos de servicios de emergencia:
    # 061 urgencias sanitarias, 062 Guardia Civil, 080 bomberos, 091 Policía Nacional,
    # 092 Policía Local. (085, 088, 112 are in libphonenumber.)
    "ES": frozenset({"061", "062", "080", "091", "092"}),
    # AGCOM, Piano nazionale di numerazione, numeri di emergenza: 117 Guardia di Finanza,
    # 1530 Guardia Costiera (soccorso in mare). (112, 113, 115, 118 are in libphonenumber.)
    "IT": frozenset({"117", "1530"}),
    # UKE (Urząd Komunikacji Elektronicznej), "Numery alarmowe": 984 ratownictwo wodne,
    # 985 ratownictwo górskie i morskie, 986 straż miejska, 987 centrum zarządzania
    # kryzysowego. (112, 997, 998, 999 are in libphonenumber.)
    "PL": frozenset({"984", "985", "986", "987"}),
    # RTR (Rundfunk und Telekom Regulierungs-GmbH), "Notrufnummern": 128 Gasnotruf,
    # 140 Bergrettung. (112, 122, 133, 144 are in libphonenumber.)
    "AT": frozenset({"128", "140"}),
    # BAKOM/OFCOM, "Notrufnummern": 145 Tox Info Suisse, 1414 Rega, 1415 Air-Glaciers.
    # (112, 117, 118, 144 are in libphonenumber.)
    "CH": frozenset({"145", "1414", "1415"}),
}


@lru_cache(maxsize=4096)
def is_emergency(digits: str, region: str) -> bool:
    """True when ``digits`` (ASCII digits only, no prefixes) is exactly an emergency number of
    ``region`` (ISO 3166 alpha-2, upper case). Never raises."""
    if not digits or len(digits) > 6 or not digits.isascii() or not digits.isdigit():
        return False
    if digits in SUPPLEMENT.get(region, ()):
        return True
    try:
        return bool(shortnumberinfo.is_emergency_number(digits, region))
    except Exception:  # unknown region codes and the like: not an emergency number
        return False
