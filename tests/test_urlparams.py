"""URL parameters: typed round trips, and bad values refused with a message naming them."""
from __future__ import annotations

import pytest

from kdviz.urlparams import Param, encode_params, param, parse_params

SCHEMA = {
    "T": (float, 4.0, (0.5, 20.0)),
    "epochs": (int, 1, (1, 50)),
    "batch": (int, 64, [32, 64, 128]),
    "student": (str, "mlp:128", ["mlp:30", "mlp:128", "cnn:8,16"]),
    "q": (str, "", r"[a-z0-9 ]{0,20}"),
    "hard": (bool, False),
    "sel": Param(list, (), pattern=r"[a-z0-9-]{1,20}", max_items=3),
    "lr": (float, 1e-3, (1e-6, 1.0)),
}
DEFAULTS = {"T": 4.0, "epochs": 1, "batch": 64, "student": "mlp:128", "q": "", "hard": False, "sel": (), "lr": 1e-3}


def test_empty_query_gives_defaults_without_messages():
    assert parse_params(SCHEMA, {}) == (DEFAULTS, [])


@pytest.mark.parametrize("values", [
    {"T": 0.5, "epochs": 50, "batch": 128, "student": "cnn:8,16", "q": "hello 1", "hard": True, "sel": ("a", "b-2"), "lr": 0.1 + 0.2},
    {"T": 20.0, "epochs": 1, "batch": 32, "student": "mlp:30", "q": "", "hard": False, "sel": ("x",), "lr": 3.0e-6},
    {"T": 2 / 3, "lr": 1e-6},
])
def test_round_trip(values):
    query = encode_params(SCHEMA, values)
    assert all(isinstance(v, str) for v in query.values())
    parsed, messages = parse_params(SCHEMA, query)
    assert messages == [] and parsed == {**DEFAULTS, **values}
    assert type(parsed["epochs"]) is int and type(parsed["T"]) is float


def test_defaults_are_left_out_of_the_url_unless_asked():
    assert encode_params(SCHEMA, DEFAULTS) == {}
    assert encode_params(SCHEMA, {"T": 4.0, "epochs": 3}) == {"epochs": "3"}
    full = encode_params(SCHEMA, DEFAULTS, keep_defaults=True)
    assert full["T"] == "4.0" and full["hard"] == "false" and full["sel"] == "" and len(full) == len(SCHEMA)


@pytest.mark.parametrize("name, raw, allowed", [
    ("T", "0.49", "from 0.5 to 20"),
    ("T", "21", "from 0.5 to 20"),
    ("T", "abc", "finite number"),
    ("T", "nan", "finite number"),
    ("T", "inf", "finite number"),
    ("T", "-Infinity", "finite number"),
    ("T", "1e999", "finite number"),
    ("T", "", "finite number"),
    ("epochs", "1.5", "whole number from 1 to 50"),
    ("epochs", "0", "whole number from 1 to 50"),
    ("epochs", "51", "whole number from 1 to 50"),
    ("epochs", "0x10", "whole number"),
    ("epochs", "9" * 40, "whole number"),
    ("batch", "63", "one of: 32, 64, 128"),
    ("student", "mlp:9999", "one of: mlp:30, mlp:128, cnn:8,16"),
    ("student", "MLP:128", "one of"),
    ("q", "../../etc", "matching"),
    ("q", "x" * 21, "matching"),
    ("q", "a\x00b", "matching"),
    ("hard", "maybe", "true or false"),
    ("sel", "a,../b", "comma-separated"),
    ("sel", "a,b,c,d", "up to 3"),
    ("lr", "0", "from 1e-06 to 1"),
    # Python's int() and float() accept other scripts' digits and underscores: a URL must not
    ("T", "\u0663", "finite number"),  # ARABIC-INDIC DIGIT THREE: float("٣") == 3.0
    ("T", "\uff13", "finite number"),  # FULLWIDTH DIGIT THREE
    ("T", "1_0", "finite number"),
    ("T", "\u0968.5", "finite number"),  # DEVANAGARI DIGIT TWO
    ("epochs", "\u0663", "whole number"),
    ("epochs", "\u0967\u0966", "whole number"),  # DEVANAGARI ONE ZERO: int("१०") == 10
    ("epochs", "1_0", "whole number"),
])
def test_bad_values_are_refused_and_named(name, raw, allowed):
    other, good = ("batch", "128") if name != "batch" else ("epochs", "2")
    values, messages = parse_params(SCHEMA, {name: raw, other: good})
    assert values[name] == DEFAULTS[name] and str(values[other]) == good
    refused = [m for m in messages if m.startswith(f"URL parameter '{name}=")]
    assert len(refused) == 1 and allowed in refused[0] and "default" in refused[0]


def test_python_would_take_those_digits():
    """Why the ASCII rule is needed: the conversions the parser must not rely on."""
    assert float("\u0663") == 3.0 and int("\u0967\u0966") == 10 and float("1_0") == 10.0


@pytest.mark.parametrize("raw, value", [("3", 3.0), ("+3", 3.0), ("3.", 3.0), (".5", 0.5), ("5e-1", 0.5),
                                        ("2E0", 2.0), (" 7.25 ", 7.25), ("19.999999999999996", 19.999999999999996)])
def test_ascii_number_spellings_are_accepted(raw, value):
    assert parse_params(SCHEMA, {"T": raw}) == ({**DEFAULTS, "T": value}, [])


def test_good_values_survive_beside_bad_ones_and_unknown_keys_are_ignored():
    values, messages = parse_params(SCHEMA, {"T": "nan", "epochs": " 7 ", "utm_source": "x", "hard": "YES"})
    assert values == {**DEFAULTS, "epochs": 7, "hard": True}
    assert len(messages) == 1 and "'T=nan'" in messages[0]


def test_repeated_key_takes_the_last_value_and_lists_drop_duplicates():
    values, messages = parse_params(SCHEMA, {"T": ["2", "3.5"], "sel": "b,a,b,,a"})
    assert messages == [] and values["T"] == 3.5 and values["sel"] == ("b", "a")


def test_long_values_are_shortened_in_messages():
    _, messages = parse_params(SCHEMA, {"q": "z" * 5000})
    assert len(messages) == 1 and len(messages[0]) < 300


@pytest.mark.parametrize("bad", [
    {"T": float("nan")}, {"T": 30.0}, {"T": "4"}, {"epochs": 2.5}, {"epochs": True},
    {"student": "gpt"}, {"hard": 1}, {"sel": ["ok", "NOT OK"]}, {"sel": "a"},
])
def test_encoding_an_invalid_value_names_it(bad):
    name = next(iter(bad))
    with pytest.raises(ValueError, match=f"^{name}="):
        encode_params(SCHEMA, bad)


def test_schema_mistakes_are_caught_when_declared():
    with pytest.raises(ValueError, match="default"):
        param((float, 50.0, (0.5, 20.0)))
    with pytest.raises(ValueError, match="default"):
        param((str, "x", ["a", "b"]))
    with pytest.raises(ValueError, match="type"):
        param((dict, {}))
    with pytest.raises(ValueError, match="spec"):
        param((int,))
    assert param((int, 64, {128, 32, 64})).choices == (32, 64, 128)
    assert param((int, 3, (1, 5))).low == 1
