"""Money and dates as people write them: ``$1,299.00``, ``1.299,00 €``, ``¥1,500``, ``03/05/2024``.

The ``cents`` transform (``cents:XXX`` for a known currency) and ``date:FORMAT``: pure converters
in the manner of ``values.py`` (one value in, the value as sent, or a :class:`ValueProblem`).
"""

from __future__ import annotations

import datetime as dt
import decimal
import re
import typing as t

from target_segmetrics.mapping.paths import MappingConfigError
from target_segmetrics.mapping.values import (
    Converter,
    ValueProblem,
    _short,
    parse_decimal,
    to_segmetrics_date,
    to_segmetrics_datetime,
    to_text,
)

THOUSANDS = re.compile(r"^-?\d{1,3}(,\d{3})+(\.\d+)?$")

MINOR_UNITS = {
    **dict.fromkeys(
        [
            "BIF",
            "CLP",
            "DJF",
            "GNF",
            "ISK",
            "JPY",
            "KMF",
            "KRW",
            "PYG",
            "RWF",
            "UGX",
            "UYI",
            "VND",
            "VUV",
            "XAF",
            "XOF",
            "XPF",
        ],
        0,
    ),
    **dict.fromkeys(["BHD", "IQD", "JOD", "KWD", "LYD", "OMR", "TND"], 3),
    **dict.fromkeys(["CLF", "UYW"], 4),
}
"""ISO 4217 minor units that are not 2 (JPY 0, KWD 3...): every other currency has 2."""

SYMBOLS: dict[str, tuple[str, ...]] = {
    "$": (),  # a dollar (or peso): the entry's currency, else USD
    "€": ("EUR",),
    "£": ("GBP",),
    "¥": ("JPY", "CNY"),  # yen unless the entry's currency says yuan
    "₹": ("INR",),
    "₩": ("KRW",),
    "₽": ("RUB",),
    "₺": ("TRY",),
    "₪": ("ILS",),
    "₫": ("VND",),
    "₱": ("PHP",),
    "฿": ("THB",),
    "₦": ("NGN",),
}
"""Currency symbols written with an amount, and the ISO codes each may stand for (the first by default)."""

_MARK = r"[A-Za-z]{3}|[$€£¥₹₩₽₺₪₫₱฿₦]"
_MONEY = re.compile(
    rf"^(?P<s1>[-+]?)\s*(?P<pre>{_MARK})?\s*(?P<s2>[-+]?)\s*(?P<num>\d[\d.,'\s]*?)\s*(?P<post>{_MARK})?$"
)
_GROUPED = re.compile(r"^\d{1,3}([.,'\s]\d{3})*$")


def minor_unit(currency: str | None) -> int:
    """Digits after the decimal point in ``currency`` (ISO 4217); 2 when not known."""
    return MINOR_UNITS.get(currency.upper(), 2) if currency else 2


def currency_code(text: t.Any) -> str:
    """A currency option (``"JPY"``, ``"usd"``) as its ISO code; ValueError if it is not three letters."""
    if not (isinstance(text, str) and len(text.strip()) == 3 and text.strip().isalpha()):
        raise ValueError(f'must be a currency code such as "USD", got {text!r}')
    return text.strip().upper()


def units_to_cents(value: t.Any, currency: str | None = None) -> int:
    """An amount in currency units (a number, or text as people write money) in the currency's minor
    unit (cents; yen as they are; fils in thousandths), half-up, exactly.

    Text may carry a currency symbol or ISO code before or after the number (``$1,299.00``,
    ``1.299,00 €``, ``USD 12.00``, ``¥1,500``); the minor unit is ``currency``'s (the entry's option),
    else the one the value names, else 2. A value in another currency than ``currency`` is refused
    (never sent as if converted), and so is a number whose separators could be read two ways.
    """
    text = None
    if isinstance(value, str):
        codes, text = _money_text(value)
        if codes is not None and currency and codes and currency not in codes:
            raise ValueProblem(f"{value!r} is in {codes[0]}, not in {currency} (the entry's currency): not converted")
        if codes is not None and not currency:
            currency = codes[0] if codes else "USD"
    amount = parse_decimal(value, "an amount", text=text, shown=repr)
    scale = decimal.Decimal(10) ** minor_unit(currency)
    return int((amount * scale).quantize(decimal.Decimal(1), rounding=decimal.ROUND_HALF_UP))


def _money_text(value: str) -> tuple[tuple[str, ...] | None, str]:
    """The currencies a money text names (None: none written; ``()``: a ``$``, any dollar) and its
    number as plain digits (``1299.00``)."""
    text = value.strip()
    found = _MONEY.match(text)
    if found is None or (found["s1"] and found["s2"]) or (found["pre"] and found["post"]):
        if "," in text and not THOUSANDS.match(text):
            raise ValueProblem(f"{value!r} is not an amount (a comma only separates thousands: 1,500.00)")
        return None, text.replace(",", "")  # not money text: read as a number, or refused as one
    mark = found["pre"] or found["post"]
    codes = None if not mark else () if mark == "$" else SYMBOLS.get(mark, (mark.upper(),))
    number = _plain_number(value, found["num"].strip(), after=bool(found["post"]))
    return codes, ("-" if "-" in (found["s1"], found["s2"]) else "") + number


def _plain_number(value: str, number: str, *, after: bool) -> str:
    """``1,299.00``, ``1.299,00``, ``1 299,00``, ``1'299.00`` as ``1299.00``. Which separator is the
    decimal one must be clear: the last of two kinds; else a lone dot; else a lone comma with the
    currency after the number (``12,50 €``). A lone separator before three digits with the currency
    after (``1.299 €``, ``1,299 €``) could be either, and is refused; ``1,500`` is fifteen hundred."""
    ambiguous = (
        f"{value!r} is not an amount: the separator in {number!r} may be a decimal point or thousands "
        "(write 1299.00 or 1.299,00)"
    )
    marks = [c for c in number if not c.isdigit()]
    kinds = {c for c in marks if c in ".,"}
    point = -1
    if len(kinds) == 2:
        point = max(number.rfind("."), number.rfind(","))
    elif kinds:
        mark = kinds.pop()
        decimals = len(number) - number.rfind(mark) - 1
        if number.count(mark) > 1 or (mark == "," and not after and decimals == 3 and len(marks) == 1):
            point = -1  # groups: 1,299,000 / 1.299.000 / 1,500
        elif after and decimals == 3 and len(marks) == 1:
            raise ValueProblem(ambiguous)
        elif mark == "," and not after:
            raise ValueProblem(f"{value!r} is not an amount (a comma only separates thousands: 1,500.00)")
        else:
            point = number.rfind(mark)
    whole, fraction = (number[:point], number[point + 1 :]) if point >= 0 else (number, "")
    groups = {c for c in whole if not c.isdigit()}
    if len(groups) > 1 or (groups and not _GROUPED.match(whole)) or (fraction and not fraction.isdigit()):
        raise ValueProblem(
            ambiguous if len(groups) > 1 else f"{value!r} is not an amount (thousands go by three: 1,299,000.00)"
        )
    digits = "".join(c for c in whole if c.isdigit())
    return f"{digits}.{fraction}" if fraction else digits


def cents_in(currency: str) -> Converter:
    """The ``cents:XXX`` transform: amounts in currency ``XXX`` (ValueError for a bad code)."""
    code = currency_code(currency)
    return lambda value: units_to_cents(value, code)


_TIME_DIRECTIVES = re.compile(r"%[HIMSpfzXcs]")


def date_in(fmt: str) -> Converter:
    """The ``date:FORMAT`` transform: text in a known format (strptime directives: ``%m/%d/%Y``,
    ``%d %B %Y``) as SegMetrics' date, with its time when the format has one (ValueError for a
    format that cannot read back a date it writes)."""
    if "%" not in fmt:
        raise ValueError(f"{fmt!r} has no strptime directive (such as %Y, %m, %d)")
    sample = dt.datetime(2024, 11, 23, 13, 45, 56)
    try:
        dt.datetime.strptime(sample.strftime(fmt), fmt)
    except ValueError as exc:
        raise ValueError(f"{fmt!r} is not a date format strptime reads ({exc})") from None
    with_time = bool(_TIME_DIRECTIVES.search(fmt))

    def read(value: t.Any) -> str:
        if isinstance(value, (dt.date, dt.datetime)):
            moment = value
        else:
            text = to_text(value).strip()
            try:
                moment = dt.datetime.strptime(text, fmt)
            except ValueError:
                raise ValueProblem(f"{_short(value)} is not a date in the format {fmt!r}") from None
        return to_segmetrics_datetime(moment) if with_time else to_segmetrics_date(moment)

    return read


def _check_options(options: dict[str, t.Any], where: str) -> None:
    if options.get("currency") is not None:
        try:
            options["currency"] = currency_code(options["currency"])
        except ValueError as exc:
            raise MappingConfigError(f"{where}.currency: {exc}") from None


def with_currency(entry: dict[str, t.Any], where: str) -> dict[str, t.Any]:
    """An entry's ``currency`` option: every plain ``cents`` transform in it reads amounts in that
    currency (``cents:XXX``: its minor unit, and a value naming another currency is refused)."""
    if entry.get("currency") is None:
        return entry
    options = {"currency": entry["currency"]}
    _check_options(options, where)

    def walk(node: t.Any) -> t.Any:
        if isinstance(node, list):
            return [walk(item) for item in node]
        if not isinstance(node, dict):
            return node
        out = {key: walk(value) for key, value in node.items()}
        names = out.get("transform")
        if isinstance(names, (str, list)):
            named = [
                f"cents:{options['currency']}" if n == "cents" else n
                for n in ([names] if isinstance(names, str) else names)
            ]
            out["transform"] = named if isinstance(names, list) else named[0]
        return out

    return {key: walk(value) if key != "currency" else value for key, value in entry.items()}
