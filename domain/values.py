"""Value types shared by commands and events: countries, currencies, slugs, dates."""

from __future__ import annotations

import os
import re
import unicodedata
from datetime import date
from typing import Annotated, Literal

from pydantic import AfterValidator, BeforeValidator, Field, ValidationInfo

# ISO 3166-1 alpha-2, officially assigned codes.
ISO_COUNTRIES = frozenset(
    [
        "AD", "AE", "AF", "AG", "AI", "AL", "AM", "AO", "AQ", "AR", "AS", "AT", "AU", "AW", "AX",
        "AZ", "BA", "BB", "BD", "BE", "BF", "BG", "BH", "BI", "BJ", "BL", "BM", "BN", "BO", "BQ",
        "BR", "BS", "BT", "BV", "BW", "BY", "BZ", "CA", "CC", "CD", "CF", "CG", "CH", "CI", "CK",
        "CL", "CM", "CN", "CO", "CR", "CU", "CV", "CW", "CX", "CY", "CZ", "DE", "DJ", "DK", "DM",
        "DO", "DZ", "EC", "EE", "EG", "EH", "ER", "ES", "ET", "FI", "FJ", "FK", "FM", "FO", "FR",
        "GA", "GB", "GD", "GE", "GF", "GG", "GH", "GI", "GL", "GM", "GN", "GP", "GQ", "GR", "GS",
        "GT", "GU", "GW", "GY", "HK", "HM", "HN", "HR", "HT", "HU", "ID", "IE", "IL", "IM", "IN",
        "IO", "IQ", "IR", "IS", "IT", "JE", "JM", "JO", "JP", "KE", "KG", "KH", "KI", "KM", "KN",
        "KP", "KR", "KW", "KY", "KZ", "LA", "LB", "LC", "LI", "LK", "LR", "LS", "LT", "LU", "LV",
        "LY", "MA", "MC", "MD", "ME", "MF", "MG", "MH", "MK", "ML", "MM", "MN", "MO", "MP", "MQ",
        "MR", "MS", "MT", "MU", "MV", "MW", "MX", "MY", "MZ", "NA", "NC", "NE", "NF", "NG", "NI",
        "NL", "NO", "NP", "NR", "NU", "NZ", "OM", "PA", "PE", "PF", "PG", "PH", "PK", "PL", "PM",
        "PN", "PR", "PS", "PT", "PW", "PY", "QA", "RE", "RO", "RS", "RU", "RW", "SA", "SB", "SC",
        "SD", "SE", "SG", "SH", "SI", "SJ", "SK", "SL", "SM", "SN", "SO", "SR", "SS", "ST", "SV",
        "SX", "SY", "SZ", "TC", "TD", "TF", "TG", "TH", "TJ", "TK", "TL", "TM", "TN", "TO", "TR",
        "TT", "TV", "TW", "TZ", "UA", "UG", "UM", "US", "UY", "UZ", "VA", "VC", "VE", "VG", "VI",
        "VN", "VU", "WF", "WS", "YE", "YT", "ZA", "ZM", "ZW",
    ]
)

# ISO 4217 active currency codes.
ISO_CURRENCIES = frozenset(
    [
        "AED", "AFN", "ALL", "AMD", "AOA", "ARS", "AUD", "AWG", "AZN", "BAM", "BBD", "BDT", "BHD",
        "BIF", "BMD", "BND", "BOB", "BRL", "BSD", "BTN", "BWP", "BYN", "BZD", "CAD", "CDF", "CHF",
        "CLP", "CNY", "COP", "CRC", "CUP", "CVE", "CZK", "DJF", "DKK", "DOP", "DZD", "EGP", "ERN",
        "ETB", "EUR", "FJD", "FKP", "GBP", "GEL", "GHS", "GIP", "GMD", "GNF", "GTQ", "GYD", "HKD",
        "HNL", "HTG", "HUF", "IDR", "ILS", "INR", "IQD", "IRR", "ISK", "JMD", "JOD", "JPY", "KES",
        "KGS", "KHR", "KMF", "KPW", "KRW", "KWD", "KYD", "KZT", "LAK", "LBP", "LKR", "LRD", "LSL",
        "LYD", "MAD", "MDL", "MGA", "MKD", "MMK", "MNT", "MOP", "MRU", "MUR", "MVR", "MWK", "MXN",
        "MYR", "MZN", "NAD", "NGN", "NIO", "NOK", "NPR", "NZD", "OMR", "PAB", "PEN", "PGK", "PHP",
        "PKR", "PLN", "PYG", "QAR", "RON", "RSD", "RUB", "RWF", "SAR", "SBD", "SCR", "SDG", "SEK",
        "SGD", "SHP", "SLE", "SOS", "SRD", "SSP", "STN", "SVC", "SYP", "SZL", "THB", "TJS", "TMT",
        "TND", "TOP", "TRY", "TTD", "TWD", "TZS", "UAH", "UGX", "USD", "UYU", "UZS", "VES", "VND",
        "VUV", "WST", "XAF", "XCD", "XOF", "XPF", "YER", "ZAR", "ZMW", "ZWG",
    ]
)

SLUG_RE = re.compile(r"[a-z0-9-]{1,64}")
TOKEN_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:-]{0,127}")
MIN_DATE = date(1900, 1, 1)
MAX_DATE = date(2999, 12, 31)


def _upper(value: object) -> object:
    return value.strip().upper() if isinstance(value, str) else value


def _country(value: str) -> str:
    if value not in ISO_COUNTRIES:
        raise ValueError(f"{value!r} is not an ISO 3166-1 alpha-2 country code")
    return value


def _currency(value: str) -> str:
    if value not in ISO_CURRENCIES:
        raise ValueError(f"{value!r} is not an ISO 4217 currency code")
    return value


def _slug(value: str) -> str:
    if not SLUG_RE.fullmatch(value):
        raise ValueError(
            f"{value[:70]!r} is not an initiative id (1-64 of a-z, 0-9 and '-')"
        )
    return value


def _token(value: str) -> str:
    if not TOKEN_RE.fullmatch(value):
        raise ValueError(
            f"{value[:70]!r} is not a valid id (1-128 of letters, digits, '.', '_', ':', '-')"
        )
    return value


def _ledger_date(value: date) -> date:
    if not MIN_DATE <= value <= MAX_DATE:
        raise ValueError(f"date {value.isoformat()} is outside {MIN_DATE.year}-{MAX_DATE.year}")
    return value


def _iso_date_only(value: object) -> object:
    # Dates are YYYY-MM-DD on every wire; refuse datetimes, numbers and other forms.
    if isinstance(value, str):
        text = value.strip()
        if not re.fullmatch(r"[0-9]{4}-[0-9]{2}-[0-9]{2}", text):
            raise ValueError(f"{text[:40]!r} is not a date in the form YYYY-MM-DD")
        try:
            return date.fromisoformat(text)
        except ValueError as exc:
            raise ValueError(f"{text!r} is not a valid date: {exc}") from None
    if isinstance(value, date) and type(value) is date:
        return value
    raise ValueError(f"{value!r} is not a date in the form YYYY-MM-DD")


CountryCode = Annotated[str, BeforeValidator(_upper), AfterValidator(_country)]
CurrencyCode = Annotated[str, BeforeValidator(_upper), AfterValidator(_currency)]
InitiativeId = Annotated[str, AfterValidator(_slug)]
Token = Annotated[str, AfterValidator(_token)]
LedgerDate = Annotated[date, BeforeValidator(_iso_date_only), AfterValidator(_ledger_date)]
Year = Annotated[int, Field(ge=MIN_DATE.year, le=MAX_DATE.year, strict=True)]
Units = Annotated[int, Field(gt=0, le=100_000_000, strict=True)]


# Text as a person reads it. Two texts that look the same must be the same text, so
# that a rule such as "a milestone is reached once" cannot be bypassed with an invisible
# character; and every text must be storable and printable as UTF-8. New text (a
# command's) is normalised to NFC, its space characters become plain spaces, and it is
# refused if it holds a control or invisible character or a lone surrogate (what a
# non-UTF-8 byte becomes in a command-line argument or an environment variable).
# Recorded text (a stored or received fact) is read as it was recorded: only what
# cannot be encoded is escaped, so that an old fact can always be shown and projected.
RECORDED = {"recorded": True}  # the validation context of facts read back
_CONTROL_RE = re.compile(r"[\x00-\x1f\x7f]")
_NOT_TEXT = frozenset({"Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp"})
# Letters and marks that render as nothing: Hangul fillers, the combining grapheme
# joiner, the braille blank.
_INVISIBLE = frozenset("\u115f\u1160\u3164\uffa0\u034f\u2800")
_JOINERS = frozenset("\u200c\u200d")  # needed inside words of Persian, Indic scripts


def clean_text(value: str, what: str = "text") -> str:
    """New text as it is recorded: NFC, plain spaces, trimmed; ValueError (saying
    `what` it is) if it holds a control or invisible character or cannot be encoded as
    UTF-8."""
    if not value.isascii():
        value = _normalised(value, what)
    if _CONTROL_RE.search(value):
        raise ValueError(f"{what} must not contain control characters")
    return value.strip()


def escape_unencodable(value: str) -> str:
    """`value` with every character UTF-8 cannot encode (a lone surrogate) written as
    its escape (\\udcf6): how a recorded text that holds one is shown and projected."""
    if value.isascii():
        return value
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return value.encode("utf-8", "backslashreplace").decode("utf-8")
    return value


def _normalised(value: str, what: str) -> str:
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise ValueError(
            f"{what} is not valid UTF-8 (an undecodable byte at character {exc.start + 1})"
        ) from None
    value = unicodedata.normalize("NFC", value)
    chars = list(value)
    for index, char in enumerate(chars):
        if char.isascii():
            continue
        category = unicodedata.category(char)
        if category == "Zs":
            chars[index] = " "
        elif (category in _NOT_TEXT or char in _INVISIBLE or _stray_selector(chars, index)) \
                and not (char in _JOINERS and _inside_word(chars, index)):  # fmt: skip
            name = unicodedata.name(char, "")
            raise ValueError(
                f"{what} must not contain the invisible or control character "
                f"U+{ord(char):04X}{f' ({name})' if name else ''}"
            )
    return "".join(chars)


def _stray_selector(chars: list[str], index: int) -> bool:
    """A variation selector that does not follow a symbol: it changes nothing visible."""
    code = ord(chars[index])
    if not (0xFE00 <= code <= 0xFE0F or 0xE0100 <= code <= 0xE01EF):
        return False
    return index == 0 or unicodedata.category(chars[index - 1]) != "So"


def _inside_word(chars: list[str], index: int) -> bool:
    """A joiner between two non-ASCII letters or marks (where some scripts need one)."""
    if index == 0 or index == len(chars) - 1:
        return False
    return all(not c.isascii() and unicodedata.category(c)[0] in "LM"
               for c in (chars[index - 1], chars[index + 1]))  # fmt: skip


def _recorded(value: object, info: ValidationInfo) -> object:
    """Recorded text is escaped before it is parsed (pydantic refuses a lone surrogate)."""
    if type(value) is str and info.context is not None and info.context.get("recorded"):
        return escape_unencodable(value)
    return value


def _text(value: str, info: ValidationInfo) -> str:
    if info.context is not None and info.context.get("recorded"):
        if _CONTROL_RE.search(value):
            raise ValueError("text must not contain control characters")
        return value.strip()
    return clean_text(value)


def _required(value: str) -> str:
    if not value:
        raise ValueError("text must not be blank")
    return value


Text = Annotated[str, Field(max_length=500), BeforeValidator(_recorded), AfterValidator(_text),
                 AfterValidator(_required)]  # fmt: skip
OptionalText = Annotated[str, Field(max_length=2000), BeforeValidator(_recorded),
                         AfterValidator(_text)]  # fmt: skip
Basis = Literal["pro-rata", "year-end"]


_VERSION_MASK = ~(0xF000 << 64) & ~(0xC000 << 48)
_VERSION_4 = (4 << 76) | (0x8000 << 48)


def new_uuid() -> str:
    """A random (version 4) UUID as text: `str(uuid.uuid4())` without building the UUID
    object (half the cost; a command records up to three)."""
    text = "%032x" % (int.from_bytes(os.urandom(16)) & _VERSION_MASK | _VERSION_4)
    return f"{text[:8]}-{text[8:12]}-{text[12:16]}-{text[16:20]}-{text[20:]}"
