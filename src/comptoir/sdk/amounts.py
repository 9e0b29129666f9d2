"""Exact amounts: what a user types (``1000``, ``1_000``, ``1e21``, ``1.1CPT``, ``0.5ETH``)
turned into integer base units with :class:`decimal.Decimal`, never through a float
(``1.1CPT`` is exactly 1 100 000 000 000 000 000 units).

A bare number counts base units (the token has 18 decimals: 1 CPT = 10**18 units); a
``CPT`` suffix counts tokens and an ``ETH`` suffix ether (10**18 wei). Negative amounts,
fractions of a unit and amounts beyond uint256 are refused before anything is encoded.
"""

from __future__ import annotations

from decimal import Decimal, InvalidOperation, localcontext

from comptoir.exceptions import InvalidAmount

DECIMALS = 18
ONE = 10**DECIMALS
MAX_UINT256 = 2**256 - 1
_SUFFIXES = {"CPT": "CPT", "TOKEN": "CPT", "TOKENS": "CPT", "ETH": "ETH", "ETHER": "ETH"}


def split_currency(raw: str) -> tuple[str, str | None]:
    """('1.5', 'CPT') for '1.5 CPT'; (text, None) when no suffix is given."""
    text = raw.strip().replace("_", "").replace(",", "")
    upper = text.upper()
    for suffix in sorted(_SUFFIXES, key=len, reverse=True):
        if upper.endswith(suffix):
            return text[: -len(suffix)].strip(), _SUFFIXES[suffix]
    return text, None


def _decimal(number: str, raw: str) -> Decimal:
    try:
        value = Decimal(number)
    except InvalidOperation:
        value = Decimal("NaN")
    if not value.is_finite():
        raise InvalidAmount(
            f"{raw!r} is not an amount; give token units (e.g. 1000) or tokens (e.g. 1.5CPT)."
        )
    return value


def check_units(value: int, what: str = "amount") -> int:
    """An integer amount that fits the contracts (0 .. 2**256-1)."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidAmount(f"The {what} must be a whole number of token units, not {value!r}.")
    if value < 0:
        raise InvalidAmount(f"The {what} cannot be negative ({value}); give 0 or more.")
    if value > MAX_UINT256:
        raise InvalidAmount(f"The {what} does not fit in 256 bits (at most 2**256-1 units).")
    return value


def parse_value(raw: int | str | Decimal, what: str = "amount") -> tuple[int, str]:
    """(base units, 'CPT' or 'ETH') of a typed amount; bare numbers are token units."""
    if isinstance(raw, int) and not isinstance(raw, bool):
        return check_units(raw, what), "CPT"
    text = str(raw)
    number, currency = split_currency(text)
    value = _decimal(number, text)
    if value.adjusted() > 100:  # far beyond uint256: refuse before any exact arithmetic
        raise InvalidAmount(f"The {what} {text!r} does not fit in 256 bits; give a smaller one.")
    with localcontext() as ctx:
        ctx.prec = 100  # exact for anything up to uint256
        units = value * ONE if currency else value
        if units != units.to_integral_value():
            if currency:
                raise InvalidAmount(
                    f"{text!r} has more than {DECIMALS} decimals; the smallest amount is "
                    f"0.{'0' * (DECIMALS - 1)}1 {currency}."
                )
            raise InvalidAmount(
                f"{text!r} is not a whole number of token units; write it in tokens "
                f"(e.g. {number}CPT) or in units."
            )
    if units < 0:
        raise InvalidAmount(f"The {what} cannot be negative ({text}); give 0 or more.")
    if units > MAX_UINT256:
        raise InvalidAmount(f"The {what} {text!r} does not fit in 256 bits; give a smaller one.")
    return int(units), currency or "CPT"


def parse_amount(raw: int | str | Decimal, what: str = "amount") -> int:
    """Token units of a typed amount (``1000``, ``1e21``, ``1.1CPT``); ether is refused."""
    units, currency = parse_value(raw, what)
    if currency != "CPT":
        raise InvalidAmount(
            f"The {what} is paid in tokens, not ether; write it in units (1000) or tokens (5CPT)."
        )
    return units


def format_units(amount: int) -> str:
    """Token units with thousands separators, and the exact token amount when large."""
    text = f"{amount:,}"
    if amount >= 10**15:
        tokens = Decimal(amount) / ONE
        text += f" ({_plain(tokens)} CPT)"
    return text


def format_tokens(amount: int) -> str:
    """Exact token amount: 1.5 CPT."""
    return f"{_plain(Decimal(amount) / ONE)} CPT"


def format_ether(wei: int) -> str:
    return f"{_plain(Decimal(wei) / ONE)} ETH"


def _plain(value: Decimal) -> str:
    text = f"{value:,f}"
    return text.rstrip("0").rstrip(".") if "." in text else text
