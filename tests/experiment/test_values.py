"""The value grammar of an ini (mosaic/experiment/values.py): lists, ranges, typing, quoting, errors."""

import pytest

from mosaic.errors import MosaicError
from mosaic.experiment.values import parse_values


def parse(text):
    return parse_values(text, "f.ini: [s] k")


@pytest.mark.parametrize(
    "text, expected",
    [
        ("relu, tanh", ["relu", "tanh"]),
        ("relu,tanh", ["relu", "tanh"]),
        ("  relu  ,   tanh  ", ["relu", "tanh"]),
        ("hello world", ["hello world"]),
        ("{2-5}", [2, 3, 4, 5]),
        ("{ 2 - 5 }", [2, 3, 4, 5]),
        ("{3-3}", [3]),
        ("1, 2, {4-10}", [1, 2, 4, 5, 6, 7, 8, 9, 10]),
        ("{4-5}, 7", [4, 5, 7]),
        ("{0-10:5}", [0, 5, 10]),
        ("{0-9:5}", [0, 5]),
        ("{0.1-0.5:0.1}", [0.1, 0.2, 0.3, 0.4, 0.5]),
        ("{0-1:0.25}", [0.0, 0.25, 0.5, 0.75, 1.0]),
        ("{1-2:0.5}", [1.0, 1.5, 2.0]),
        ("{-2..2}", [-2, -1, 0, 1, 2]),
        ("{-1..1:0.5}", [-1.0, -0.5, 0.0, 0.5, 1.0]),
        ("{0..0.3:0.1}", [0.0, 0.1, 0.2, 0.3]),
        ("{1e-3..1e-1:log3}", [0.001, 0.01, 0.1]),
        ("{1..1000:log4}", [1.0, 10.0, 100.0, 1000.0]),
        ("{1e0..1e2:20}", [1.0, 21.0, 41.0, 61.0, 81.0]),
        ("1, 2, 1, {1-3}", [1, 2, 3]),
        ("'a, b', c", ["a, b", "c"]),
        ('"x", \'y\'', ["x", "y"]),
        ('"42"', ["42"]),
        ('""', [""]),
        ('"{5-2}"', ["{5-2}"]),
    ],
)
def test_parse_values_forms(text, expected):
    values = parse(text)
    assert values == expected
    assert [type(v) for v in values] == [type(v) for v in expected]


@pytest.mark.parametrize(
    "text, expected",
    [
        ("-3", -3),
        ("42", 42),
        ("0.8", 0.8),
        ("1e-2", 0.01),
        (".5", 0.5),
        ("-2.5E3", -2500.0),
        ("True", True),
        ("False", False),
        ("true", "true"),
        ("nan", "nan"),
        ("inf", "inf"),
        ("-inf", "-inf"),
        ("1_000", "1_000"),
        ("relu", "relu"),
        ("./a/b.py", "./a/b.py"),
    ],
)
def test_item_typing(text, expected):
    (value,) = parse(text)
    assert value == expected
    assert type(value) is type(expected)


def test_duplicates_keep_distinct_types():
    assert parse("1, 1.0, True, '1', 1") == [1, 1.0, True, "1"]
    assert [type(v) for v in parse("1, 1.0, True, '1'")] == [int, float, bool, str]


def test_float_ranges_are_rounded():
    values = parse("{0.1-0.9:0.1}")
    assert values == [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9]
    assert str(values[2]) == "0.3"
    assert parse("{1e-4..1:log5}") == [0.0001, 0.001, 0.01, 0.1, 1.0]


@pytest.mark.parametrize(
    "text, fragment",
    [
        ("{5-2}", "empty range"),
        ("{2..-2}", "empty range"),
        ("{2-5}abc", "malformed range"),
        ("abc{2-5}", "malformed range"),
        ("{a-b}", "malformed range"),
        ("{1-}", "malformed range"),
        ("{-1-3}", "malformed range"),
        ("{1,2}", "malformed range"),
        ("{{1-2}}", "malformed range"),
        ("{0.1-0.5}", "non-integer bounds"),
        ("{1-5:0}", "step must be positive"),
        ("{1..5:-1}", "step must be positive"),
        ("{1-5:x}", "malformed step"),
        ("{0..10:log3}", "positive bounds"),
        ("{-1..10:log3}", "positive bounds"),
        ("{1..10:log1}", "between 2"),
        ("{1-5", "unbalanced braces"),
        ("1-5}", "unbalanced braces"),
        ("a, {1-2, b", "unbalanced braces"),
        ("a,, b", "empty item"),
        ("a,", "empty item"),
        ("", "empty value"),
        ("'abc", "unterminated quote"),
        ("'a'b", "text after a closing quote"),
        ("{0-100000000}", "at most"),
    ],
)
def test_parse_values_errors(text, fragment):
    with pytest.raises(MosaicError) as caught:
        parse(text)
    message = str(caught.value)
    assert message.startswith("f.ini: [s] k: ")
    assert fragment in message
    assert "\n" not in message
