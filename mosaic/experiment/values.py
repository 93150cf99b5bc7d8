"""The value grammar of ini parameters: lists, ranges, typed items, sizes.

`1, 2, {4-10}`, `relu, tanh`, `{0.1-0.5:0.1}`, `{1e-4..1e-1:log4}`: see config/README.md. Standard library only.
"""

import decimal
import math
import re

from mosaic.errors import ConfigError

MAX_RANGE_VALUES = 1_000_000  # a typo like {0-100000000} must fail, not exhaust memory
MAX_COMBINATIONS = 1_000_000  # likewise for the product of several ranges, and for the number of runs

# Only ASCII digits make numbers: `\d` would also read Arabic-Indic or full-width digits as integers.
INT = re.compile(r"[+-]?[0-9]+")
FLOAT = re.compile(r"[+-]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")
_UNSIGNED = r"(?:[0-9]+(?:\.[0-9]+)?)"
_SIGNED = r"(?:[+-]?(?:[0-9]+(?:\.[0-9]+)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?)"
_STEP = r"(?:\s*:\s*(?P<step>\S+))?"
_DASH_RANGE = re.compile(rf"(?P<a>{_UNSIGNED})\s*-\s*(?P<b>{_UNSIGNED}){_STEP}")
_DOT_RANGE = re.compile(rf"(?P<a>{_SIGNED})\s*\.\.\s*(?P<b>{_SIGNED}){_STEP}")
_LOG_STEP = re.compile(r"log([0-9]+)")
_SIZE = re.compile(r"([0-9]+(?:\.[0-9]*)?|\.[0-9]+)\s*([KMGT]?)B?", re.IGNORECASE)
_SIZE_UNITS = {"": 1, "K": 10**3, "M": 10**6, "G": 10**9, "T": 10**12}


def parse_values(text, where):
    """Parse a parameter value into its list of typed values; errors start with `where`."""
    if not text.strip():
        raise ConfigError(where, "empty value")
    values = []
    for item, quoted in _split_items(text, where):
        if quoted:
            values.append(item)
        elif "{" in item or "}" in item:
            values.extend(_parse_range(item, where))
        else:
            values.append(_type_item(item))
    return _dedupe(values)


def _split_items(text, where):
    """Split on top-level commas; return [(item, quoted)]. A quote only opens at the start of an item."""
    items, i, size = [], 0, len(text)
    while True:
        start = i
        while start < size and text[start].isspace():
            start += 1
        if start < size and text[start] in "\"'":
            i = _quoted_item_end(text, start, where)
            items.append((text[start + 1 : i - 1], True))
            while i < size and text[i].isspace():
                i += 1
            if i < size and text[i] != ",":
                raise ConfigError(where, f"text after a closing quote in {text!r}")
        else:
            i = _plain_item_end(text, start, where)
            item = text[start:i].strip()
            if not item:
                raise ConfigError(where, f"empty item in {text!r} (write \"\" for an empty string)")
            items.append((item, False))
        if i >= size:
            return items
        i += 1  # the comma


def _quoted_item_end(text, start, where):
    end = text.find(text[start], start + 1)
    if end < 0:
        raise ConfigError(where, f"unterminated quote in {text!r}")
    return end + 1


def _plain_item_end(text, start, where):
    """Index of the comma (or end of text) closing an unquoted item; commas inside {...} do not split."""
    depth, i = 0, start
    while i < len(text) and not (text[i] == "," and depth == 0):
        if text[i] == "{":
            depth += 1
        elif text[i] == "}":
            depth -= 1
            if depth < 0:
                break
        i += 1
    if depth:
        raise ConfigError(where, f"unbalanced braces in {text!r}")
    return i


def _type_item(item):
    """Type one unquoted item: int, then float (not nan/inf), then True/False, else the string."""
    if INT.fullmatch(item):
        return int(item)
    if FLOAT.fullmatch(item):
        return float(item)
    if item in ("True", "False"):
        return item == "True"
    return item


def typed_scalar(text):
    """Type a whole value as one item; matching quotes make it a literal string."""
    text = text.strip()
    if len(text) >= 2 and text[0] == text[-1] and text[0] in "\"'":
        return text[1:-1]
    return _type_item(text)


def _dedupe(values):
    """Drop repeated values, keeping the first; 1, 1.0 and True stay distinct."""
    seen, kept = set(), []
    for value in values:
        marker = (type(value), value)
        if marker not in seen:
            seen.add(marker)
            kept.append(value)
    return kept


def _parse_range(item, where):
    """Expand '{a-b}', '{a-b:s}', '{a..b}', '{a..b:s}' or '{a..b:logN}'."""
    if not (item.startswith("{") and item.endswith("}") and item.count("{") == 1):
        raise ConfigError(where, f"malformed range {item!r} (a range must be a whole item, like {{2-5}})")
    body = item[1:-1].strip()
    match = _DOT_RANGE.fullmatch(body) if ".." in body else _DASH_RANGE.fullmatch(body)
    if not match:
        hint = " (use {a..b} for negative or exponent bounds)" if ".." not in body else ""
        raise ConfigError(where, f"malformed range {item!r}{hint}")
    step = match["step"]
    start, stop = _bound(match["a"]), _bound(match["b"])
    if start > stop:
        raise ConfigError(where, f"empty range {item!r} (start is above end)")
    if step is None:
        if not (_is_int(start, match["a"]) and _is_int(stop, match["b"])):
            raise ConfigError(where, f"range {item!r} has non-integer bounds; give a step, like {{0.1-0.5:0.1}}")
        return _stepped(start, stop, decimal.Decimal(1), True, item, where)
    log = _LOG_STEP.fullmatch(step)
    if log:
        return _log_spaced(float(start), float(stop), int(log[1]), item, where)
    if not FLOAT.fullmatch(step):
        raise ConfigError(where, f"malformed step {step!r} in range {item!r}")
    step_value = _bound(step)
    if step_value <= 0:
        raise ConfigError(where, f"step must be positive in range {item!r}")
    integers = all(INT.fullmatch(text) for text in (match["a"], match["b"], step))  # {1e0..1e2:20} gives floats
    return _stepped(start, stop, step_value, integers, item, where)


def _bound(text):
    """A range bound or step, exactly as written (Decimal: no binary rounding of 0.1 or of large offsets)."""
    return decimal.Decimal(text)


def _is_int(value, text):
    """An integer bound of a range without step ({a..b} is {a-b}: integers): written without a decimal
    point, with an integral value (5, -2, 1e3)."""
    return "." not in text and value == value.to_integral_value()


def _round(value):
    """Round to 12 significant digits, so that log-spaced values show as 0.001, not 0.0009999999999999998."""
    return float(f"{value:.12g}")


def _stepped(start, stop, step, integers, item, where):
    try:  # exact in Decimal: the end point is never lost to rounding, whatever the offset
        count = int((stop - start) // step) + 1
    except decimal.InvalidOperation:  # a quotient beyond Decimal's 28 digits
        count = math.inf
    if count > MAX_RANGE_VALUES:
        shown = count if count != math.inf else "too many"
        raise ConfigError(where, f"range {item!r} gives {shown} values (at most {MAX_RANGE_VALUES})")
    if integers:
        return list(range(int(start), int(stop) + 1, int(step)))
    return [float(start + i * step) for i in range(count)]


def _log_spaced(start, stop, count, item, where):
    if start <= 0:
        raise ConfigError(where, f"log range {item!r} needs positive bounds")
    if not 2 <= count <= MAX_RANGE_VALUES:
        raise ConfigError(where, f"log range {item!r} needs between 2 and {MAX_RANGE_VALUES} values")
    low, high = math.log(start), math.log(stop)
    inner = [_round(math.exp(low + (high - low) * i / (count - 1))) for i in range(1, count - 1)]
    return [float(start), *inner, float(stop)]


def parse_size(value):
    """Bytes from an int or a string: '1048576', '500K', '1M', '1.5G' (decimal units); ValueError otherwise."""
    if isinstance(value, bool):
        raise ValueError(f"not a size: {value!r}")
    if isinstance(value, int):
        size = value
    else:
        match = _SIZE.fullmatch(str(value).strip())
        if not match or (not match[2] and not INT.fullmatch(match[1])):
            raise ValueError(f"not a size like 500K, 1M, 1.5G or a number of bytes: {value!r}")
        size = round(float(match[1]) * _SIZE_UNITS[match[2].upper()])
    if size <= 0:
        raise ValueError(f"must be positive: {value!r}")
    return size
