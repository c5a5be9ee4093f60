"""Rules: the safe expression language, loading errors, precedence, hot reload and backtest."""

from __future__ import annotations

import argparse
import logging
import os
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd  # type: ignore[import-untyped]
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cli import fraud as fraud_cli
from fraud.features import FEATURES
from fraud.rules import (
    FIELDS,
    RuleError,
    RuleInputError,
    RuleSetHolder,
    backtest,
    compile_expression,
    format_paise,
    load_rule_set,
    parse_rule_set,
    render_backtest,
)

EXAMPLE = Path(__file__).resolve().parents[3] / "fraud" / "rulesets" / "example.yaml"


def evaluate(text: str, **columns: Any) -> list[bool]:
    arrays = {
        k: np.asarray(v, dtype=object if isinstance(v[0], str) else None)
        for k, v in columns.items()
    }
    n = len(next(iter(arrays.values()))) if arrays else 1
    result: list[bool] = compile_expression(text).evaluate(arrays, n).tolist()
    return result


# --- the language ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "columns", "expected"),
    [
        ("amount > 100", {"amount": [50.0, 100.0, 150.0]}, [False, False, True]),
        ("amount >= 100", {"amount": [50.0, 100.0, 150.0]}, [False, True, True]),
        ("amount_minor == 10_000", {"amount_minor": [10_000, 10_001]}, [True, False]),
        ("amount_minor != 10_000", {"amount_minor": [10_000, 10_001]}, [False, True]),
        # * binds tighter than +, parentheses override, unary minus, division
        ("1 + 2 * 3 == 7 and (1 + 2) * 3 == 9", {}, [True]),
        ("-amount < -5", {"amount": [4.0, 6.0]}, [False, True]),
        (
            "amount / customer_avg_amount_30d > 2",
            {"amount": [5.0, 5.0], "customer_avg_amount_30d": [2.0, 3.0]},
            [True, False],
        ),
        # x / 0 is 0, as the ratio features
        (
            "amount / customer_avg_amount_30d == 0",
            {"amount": [5.0], "customer_avg_amount_30d": [0.0]},
            [True],
        ),
        # and binds tighter than or; not binds tighter than and
        (
            "is_night == 1 or is_weekend == 1 and amount > 10",
            {
                "is_night": [1.0, 0.0, 0.0],
                "is_weekend": [0.0, 1.0, 1.0],
                "amount": [1.0, 1.0, 20.0],
            },
            [True, False, True],
        ),
        (
            "not is_night == 1 and amount > 10",
            {"is_night": [1.0, 0.0], "amount": [20.0, 20.0]},
            [False, True],
        ),
        (
            "not (is_night == 1 and amount > 10)",
            {"is_night": [1.0, 0.0], "amount": [20.0, 20.0]},
            [False, True],
        ),
        ('method in ["upi", "card"]', {"method": ["upi", "wallet", "card"]}, [True, False, True]),
        ("method not in ['upi', 'card',]", {"method": ["upi", "wallet"]}, [False, True]),
        ("amount_minor in [-1, 5, 7.5]", {"amount_minor": [5, 6]}, [True, False]),
        ('card_bin == ""', {"card_bin": ["", "401200"]}, [True, False]),
        ('vpa != "x@ybl"', {"vpa": ["x@ybl", "y@ybl"]}, [False, True]),
        ("score >= 0.9 and score < 1e0", {"score": [0.5, 0.95]}, [False, True]),
        ("(((score > 0.5)))", {"score": [0.1, 0.7]}, [False, True]),
        ("score > 0.5\n  and\n  amount > 1", {"score": [0.7], "amount": [2.0]}, [True]),
    ],
)
def test_the_grammar_is_accepted_and_evaluates_elementwise(
    text: str, columns: dict[str, list[Any]], expected: list[bool]
) -> None:
    assert evaluate(text, **columns) == expected


@pytest.mark.parametrize(
    ("text", "column", "message"),
    [
        ("__import__('os').system('rm -rf /') == 0", 1, "names starting with '__'"),
        ("os.system('ls') == 0", 3, "attribute access"),
        ("amount.real > 0", 7, "attribute access"),
        ("abs(amount) > 1", 4, "function calls are not allowed"),
        ("eval('1') == 1", 5, "function calls are not allowed"),
        ("(amount)(1) > 0", 9, "function calls are not allowed"),
        ('device_id[0] == "a"', 10, "subscripts are not allowed"),
        ("lambda: 1", 1, "'lambda' is not part of the rule language"),
        ("(lambda x: x) > 1", 2, "'lambda' is not part of the rule language"),
        ("amount if amount else amount", 8, "'if' is not part of the rule language"),
        ("import os", 1, "'import' is not part of the rule language"),
        ("True", 1, "'True' is not part of the rule language"),
        ("amount ** 2 > 1", 8, "'**' is not allowed"),
        ("amount // 2 > 1", 8, "'//' is not allowed"),
        ("amount = 1", 8, "use '=='"),
        ("amount > 1 && score > 0.5", 12, "use 'and'"),
        ("{1: 2} == 1", 1, "'{' is not allowed"),
        ("[1, 2] == 1", 1, "expected a value"),
        ("amount in (1, 2)", 11, "'in' takes a literal list"),
        ("amount in [score]", 12, "only number or string literals"),
        ("1 < amount < 5", 12, "chained comparisons"),
        ("amount > .5", 10, "leading digit"),
        ("amount > 1 and", 15, "expected a value"),
        ("(amount > 1", 12, "expected ')'"),
        ("amount > 1)", 11, "unexpected ')'"),
        ("method > 'upi'", 8, "strings support '==', '!=' and 'in'"),
        ("method == 1", 8, "compares a string with a number"),
        ("'a' + 'b' == 'ab'", 1, "needs numbers"),
        ("amount", 1, "must be a condition"),
        ("not amount", 1, "'not' needs a condition"),
        ("amount and score > 1", 1, "'and' joins conditions"),
        ("(amount > 1) == (score > 1)", 2, "compares values, not conditions"),
        ("method in [1, 'upi']", 8, "the list must hold strings only"),
        ("amount > 'x", 10, "unterminated string"),
        ("amount > 1 $", 12, "unexpected character '$'"),
        ("", 1, "empty"),
    ],
)
def test_everything_outside_the_grammar_is_refused_with_its_column(
    text: str, column: int, message: str
) -> None:
    with pytest.raises(RuleError) as info:
        compile_expression(text)
    assert message in str(info.value)
    assert info.value.column == column, str(info.value)
    assert "^" in str(info.value)  # the caret points at the column


def test_deep_nesting_is_refused_not_a_recursion_error() -> None:
    with pytest.raises(RuleError, match="nests deeper"):
        compile_expression("(" * 500 + "score > 1" + ")" * 500)
    with pytest.raises(RuleError, match="nests deeper"):
        compile_expression("-" * 500 + "score > 1")
    with pytest.raises(RuleError, match="longer than"):
        compile_expression("score > 1 and " * 500 + "score > 1")


TOKENS = [
    "score", "amount", "method", "'upi'", "1", "0.5", "-", "+", "*", "/", "(", ")", "[", "]",
    ",", "<", ">=", "==", "!=", "and", "or", "not", "in", "lambda", "__import__", ".", "x",
]  # fmt: skip


@settings(max_examples=400, deadline=None)
@given(
    st.text(alphabet=list("ab_()[]<>=!'\".,:+-*/ 0123456789"))
    | st.text()
    | st.lists(st.sampled_from(TOKENS), max_size=12).map(" ".join)
)
def test_any_text_is_refused_at_load_or_evaluates_without_error(text: str) -> None:
    """Whatever an analyst types fails at load time with RuleError, or never fails to score."""
    try:
        expression = compile_expression(text)
    except RuleError:
        return
    columns = {
        name: (
            np.asarray(["upi", "", "card"], dtype=object)
            if FIELDS[name].kind == "string"
            else np.asarray([0.0, np.nan, 1e308])
        )
        for name in expression.fields
    }
    assert expression.evaluate(columns, 3).dtype == np.bool_


def test_unknown_field_is_named_with_rule_line_and_suggestion() -> None:
    text = (
        "thresholds: {review: 0.5, block: 0.9}\n"
        "rules:\n"
        "  - name: ok\n"
        "    expression: score > 0.1\n"
        "    action: review\n"
        "  - name: velocity\n"
        "    expression: score > 0.2 and devcie_nb_tx_1h > 5\n"
        "    action: review\n"
    )
    with pytest.raises(RuleError) as info:
        parse_rule_set(text, source="rules.yaml")
    err = info.value
    assert (err.rule, err.line, err.column) == ("velocity", 6, 17)
    message = str(err)
    assert message.startswith("rules.yaml, rule 'velocity', line 6: column 17: ")
    assert "unknown field 'devcie_nb_tx_1h'; did you mean 'device_nb_tx_1h'?" in message


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ("rules: [", "not valid YAML"),
        ("- a\n- b\n", "a rule set is a YAML mapping"),
        ("treshholds: {}\n", "unknown key(s) treshholds"),
        ("version: 2\n", "version 2 is not supported"),
        ("thresholds: {review: 0.9, block: 0.5}\n", "must not exceed thresholds.block"),
        ("thresholds: {review: 1.5}\n", "thresholds.review must be in [0, 1]"),
        ("thresholds: {block: high}\n", "thresholds.block must be a number"),
        ("thresholds: {reveiw: 0.5}\n", "thresholds must be a mapping with 'review'"),
        ("rules: {a: 1}\n", "'rules' must be a list"),
        ("rules:\n  - name: a\n    action: block\n", "rule 'a', line 2: missing 'expression'"),
        (
            "rules:\n  - expression: score > 1\n    action: block\n",
            "rule '#1', line 2: missing 'name'",
        ),
        (
            "rules:\n  - {name: a, expression: score > 1, action: deny}\n",
            "action must be one of allow, review, block, found 'deny'",
        ),
        (
            "rules:\n  - {name: a, expresion: score > 1, action: block}\n",
            "unknown key(s) expresion",
        ),
        (
            "rules:\n  - {name: a, expression: score > 1, action: block, priority: high}\n",
            "priority must be an integer",
        ),
        ("rules:\n  - {name: a, expression: 5, action: block}\n", "an expression must be a string"),
        (
            "rules:\n  - {name: a, expression: score > 1, action: block}\n"
            "  - {name: a, expression: score > 2, action: review}\n",
            "rule 'a', line 3: duplicate rule name",
        ),
    ],
)
def test_bad_rule_files_are_refused_at_load_time(body: str, message: str) -> None:
    with pytest.raises(RuleError) as info:
        parse_rule_set(body, source="r.yaml")
    assert message in str(info.value)


def test_the_example_rule_set_loads_and_uses_registry_features() -> None:
    rule_set = load_rule_set(EXAMPLE)
    assert len(rule_set.rules) >= 5
    assert {r.action for r in rule_set.rules} == {"allow", "review", "block"}
    assert rule_set.thresholds.review == 0.5
    assert rule_set.thresholds.block == 0.9
    assert rule_set.features and set(rule_set.features) <= set(FEATURES)
    assert "device_nb_tx_1h" in rule_set.features
    assert set(rule_set.fields) <= set(FIELDS)
    by_name = {r.name: r for r in rule_set.rules}
    assert by_name["device_velocity_1h"].action == "review"
    assert by_name["spend_spike_on_new_device"].action == "block"


# --- precedence -------------------------------------------------------------------------------

PRECEDENCE = parse_rule_set(
    """
thresholds: {review: 0.5, block: 0.9}
rules:
  - {name: review_rule, expression: card_nb_tx_1h >= 1, action: review}
  - {name: allow_rule, expression: ip_nb_tx_1h >= 1, action: allow}
  - {name: block_low, expression: device_nb_tx_1h >= 1, action: block, priority: 1}
  - {name: block_high, expression: device_nb_tx_1h >= 2, action: block, priority: 5}
  - {name: block_high_too, expression: device_nb_tx_1h >= 2, action: block, priority: 5}
"""
)


@pytest.mark.parametrize(
    ("block", "allow", "review", "score", "action", "reason"),
    [
        # nothing hits: the score decides
        (0, 0, 0, 0.10, "allow", ""),
        (0, 0, 0, 0.50, "review", "score>=review"),  # thresholds are inclusive
        (0, 0, 0, 0.89, "review", "score>=review"),
        (0, 0, 0, 0.90, "block", "score>=block"),
        # a review rule: review, unless the score blocks
        (0, 0, 1, 0.10, "review", "review_rule"),
        (0, 0, 1, 0.95, "block", "score>=block"),
        # an allow rule whitelists against the score and review rules ...
        (0, 1, 0, 0.60, "allow", "allow_rule"),
        (0, 1, 0, 0.99, "allow", "allow_rule"),
        (0, 1, 1, 0.60, "allow", "allow_rule"),
        # ... never against a block rule
        (1, 1, 0, 0.10, "block", "block_low"),
        (1, 1, 1, 0.10, "block", "block_low"),
        (1, 0, 0, 0.10, "block", "block_low"),
        # several block rules: the highest priority, then file order, is the reason
        (2, 0, 0, 0.10, "block", "block_high"),
    ],
)
def test_precedence(
    block: int, allow: int, review: int, score: float, action: str, reason: str
) -> None:
    values = {
        "device_nb_tx_1h": float(block),
        "ip_nb_tx_1h": float(allow),
        "card_nb_tx_1h": float(review),
        "score": score,
    }
    decision = PRECEDENCE.decide_one(values)
    assert (decision.action, decision.reason) == (action, reason)
    assert decision.score == score
    # the batch path decides the same
    batch = PRECEDENCE.decide_frame(pd.DataFrame([values]))
    assert batch.action_names() == [action]
    assert batch.reason.tolist() == [reason]


def test_decide_one_lists_hits_by_priority_and_refuses_missing_fields() -> None:
    decision = PRECEDENCE.decide_one(
        {"device_nb_tx_1h": 2.0, "ip_nb_tx_1h": 1.0, "card_nb_tx_1h": 1.0, "score": 0.2}
    )
    assert decision.hits == (
        "block_high",
        "block_high_too",
        "block_low",
        "review_rule",
        "allow_rule",
    )
    with pytest.raises(RuleInputError, match="missing field"):
        PRECEDENCE.decide_one({"score": 0.2})
    with pytest.raises(RuleInputError, match="must be a number"):
        PRECEDENCE.decide_one(
            {"device_nb_tx_1h": "2", "ip_nb_tx_1h": 1.0, "card_nb_tx_1h": 1.0, "score": 0.2}
        )


def test_missing_strings_are_empty_and_nan_compares_false() -> None:
    rule_set = parse_rule_set(
        "rules:\n"
        '  - {name: no_card, expression: card_bin == "", action: review}\n'
        "  - {name: big, expression: amount > 10, action: block}\n"
    )
    frame = pd.DataFrame(
        {"card_bin": [None, "401200", np.nan], "amount": [np.nan, 20.0, 1.0], "score": 0.0}
    )
    assert rule_set.decide_frame(frame).action_names() == ["review", "block", "review"]
    with pytest.raises(RuleInputError, match="missing column"):
        rule_set.decide_frame(frame.drop(columns=["amount"]))
    with pytest.raises(RuleInputError, match="'amount' must be numeric"):
        rule_set.decide_frame(frame.assign(amount="20"))


# --- hot reload ------------------------------------------------------------------------------

GOOD = "rules:\n  - {name: velocity, expression: device_nb_tx_1h > 5, action: review}\n"
BETTER = "rules:\n  - {name: velocity, expression: device_nb_tx_1h > 3, action: block}\n"
BAD = "rules:\n  - {name: velocity, expression: devcie_nb_tx_1h > 3, action: block}\n"


def write(path: Path, text: str) -> None:
    path.write_text(text, encoding="utf-8")
    stat = path.stat()  # a different mtime too, as an editor's save would give
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000_000))


def test_hot_reload_keeps_the_old_set_on_a_bad_edit_and_takes_a_good_one(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "rules.yaml"
    write(path, GOOD)
    holder = RuleSetHolder(path, min_interval_s=0)
    first = holder.get()
    assert first.rules[0].action == "review"

    caplog.set_level(logging.WARNING, logger="fraud.rules")
    write(path, BAD)
    assert holder.get() is first  # the bad edit does not take scoring down
    assert holder.refresh() is False
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1  # logged once per bad content, not on every check
    assert "devcie_nb_tx_1h" in warnings[0].getMessage()
    assert "keeping rule set" in warnings[0].getMessage()
    assert holder.last_error is not None and "rule 'velocity'" in holder.last_error

    write(path, BETTER)
    second = holder.get()
    assert second is not first
    assert second.rules[0].action == "block"
    assert holder.last_error is None

    path.unlink()  # a vanished file keeps the current set too
    assert holder.get() is second
    assert holder.last_error is not None and "cannot read" in holder.last_error


def test_hot_reload_checks_at_most_every_interval(tmp_path: Path) -> None:
    now = [0.0]
    path = tmp_path / "rules.yaml"
    write(path, GOOD)
    holder = RuleSetHolder(path, min_interval_s=5.0, clock=lambda: now[0])
    first = holder.get()
    write(path, BETTER)
    now[0] = 4.9
    assert holder.get() is first
    now[0] = 5.0
    assert holder.get().rules[0].action == "block"


def test_a_bad_file_at_start_raises(tmp_path: Path) -> None:
    path = tmp_path / "rules.yaml"
    write(path, BAD)
    with pytest.raises(RuleError, match="devcie_nb_tx_1h"):
        RuleSetHolder(path)
    with pytest.raises(RuleError, match="cannot read"):
        RuleSetHolder(tmp_path / "missing.yaml")


# --- backtest --------------------------------------------------------------------------------

BACKTEST_RULES = parse_rule_set(
    """
thresholds: {review: 0.5, block: 0.9}
rules:
  - {name: velocity, expression: device_nb_tx_1h > 5, action: review}
  - {name: big_upi, expression: method == "upi" and amount_minor > 1_000_000, action: block}
  - {name: trusted, expression: customer_nb_tx_30d >= 20 and score < 0.95, action: allow}
""",
    source="bt.yaml",
)

# score, device_nb_tx_1h, method, amount_minor (paise), customer_nb_tx_30d, is_fraud
ROWS = [
    (0.10, 1, "card", 10_000, 1, 0),  # allow
    (0.95, 1, "card", 250_000, 1, 1),  # block by score: fraud caught
    (0.20, 7, "upi", 50_000, 1, 1),  # review by velocity
    (0.10, 1, "upi", 2_000_000, 1, 0),  # block by big_upi: false positive
    (0.60, 1, "card", 30_000, 25, 0),  # allow by trusted (whitelists the review score)
    (0.92, 1, "card", 40_000, 25, 1),  # allow by trusted (whitelists the block score): missed
    (0.97, 1, "netbanking", 70_000, 25, 1),  # trusted does not hit (score >= 0.95): block
    (0.55, 1, "wallet", 5_000, 1, 0),  # review by score
    (0.30, 6, "upi", 1_500_000, 1, 1),  # velocity and big_upi: block wins
    (0.05, 1, "card", 12_345, 1, 1),  # allow: missed
]


def backtest_frame() -> pd.DataFrame:
    columns = ["score", "device_nb_tx_1h", "method", "amount_minor", "customer_nb_tx_30d"]
    frame = pd.DataFrame(ROWS, columns=[*columns, "is_fraud"])
    frame["device_nb_tx_1h"] = frame["device_nb_tx_1h"].astype(float)
    frame["customer_nb_tx_30d"] = frame["customer_nb_tx_30d"].astype(float)
    return frame


def test_backtest_numbers_equal_hand_computed_values() -> None:
    report = backtest(BACKTEST_RULES, backtest_frame())
    assert (report.payments, report.frauds, report.fraud_amount_minor) == (10, 6, 1_922_345)
    blocked, reviewed, allowed = (
        report.with_rules.blocked,
        report.with_rules.reviewed,
        report.with_rules.allowed,
    )
    # blocked: rows 1, 3, 6, 8
    assert (blocked.payments, blocked.frauds, blocked.legitimate) == (4, 3, 1)
    assert blocked.fraud_amount_minor == 250_000 + 70_000 + 1_500_000
    assert blocked.legitimate_amount_minor == 2_000_000
    # reviewed: rows 2, 7
    assert (reviewed.payments, reviewed.frauds) == (2, 1)
    assert (reviewed.fraud_amount_minor, reviewed.legitimate_amount_minor) == (50_000, 5_000)
    # allowed: rows 0, 4, 5, 9
    assert (allowed.payments, allowed.frauds) == (4, 2)
    assert (allowed.fraud_amount_minor, allowed.legitimate_amount_minor) == (52_345, 40_000)
    assert (report.blocked, report.reviewed) == (4, 2)
    assert (report.frauds_caught, report.false_positives) == (3, 1)
    assert report.money_saved_minor == 1_820_000
    assert report.money_wrongly_blocked_minor == 2_000_000
    assert all(
        isinstance(v, int) for v in (report.money_saved_minor, report.money_wrongly_blocked_minor)
    )
    assert (report.by_score_block, report.by_score_review) == (2, 1)

    # thresholds only: block rows 1, 5, 6; review rows 4, 7; the rest allowed
    base = report.baseline
    assert (base.blocked.payments, base.blocked.frauds) == (3, 3)
    assert base.blocked.fraud_amount_minor == 360_000
    assert (base.reviewed.payments, base.reviewed.frauds) == (2, 0)
    assert base.reviewed.legitimate_amount_minor == 35_000
    assert (base.allowed.frauds, base.allowed.fraud_amount_minor) == (3, 1_562_345)

    stats = {s.name: s for s in report.rules}
    assert [s.name for s in report.rules] == ["velocity", "big_upi", "trusted"]
    assert (stats["velocity"].hits, stats["velocity"].frauds, stats["velocity"].decided) == (
        2,
        2,
        1,
    )
    assert stats["velocity"].fraud_amount_minor == 1_550_000
    assert (stats["big_upi"].hits, stats["big_upi"].frauds, stats["big_upi"].decided) == (2, 1, 2)
    assert stats["big_upi"].precision == 0.5
    assert (stats["trusted"].hits, stats["trusted"].frauds, stats["trusted"].decided) == (2, 1, 2)

    markdown = render_backtest(report)
    assert "| money saved (fraud blocked) | ₹18,200.00 | ₹3,600.00 |" in markdown
    assert "| money wrongly blocked | ₹20,000.00 | ₹0.00 |" in markdown
    assert "| `big_upi` | block | 0 | 2 | 1 | 0.500 | ₹15,000.00 | 2 |" in markdown


def test_backtest_refuses_float_money_and_missing_columns() -> None:
    frame = backtest_frame()
    with pytest.raises(RuleInputError, match="integer paise"):
        backtest(BACKTEST_RULES, frame.assign(amount_minor=frame["amount_minor"] / 100))
    with pytest.raises(RuleInputError, match="'is_fraud'"):
        backtest(BACKTEST_RULES, frame.drop(columns=["is_fraud"]))
    with pytest.raises(RuleInputError, match="device_nb_tx_1h"):
        backtest(BACKTEST_RULES, frame.drop(columns=["device_nb_tx_1h"]))


def test_format_paise_uses_integers() -> None:
    assert format_paise(0) == "₹0.00"
    assert format_paise(12_345) == "₹123.45"
    assert format_paise(123_456_789_012_345_678) == "₹1,234,567,890,123,456.78"
    assert format_paise(-5) == "-₹0.05"


# --- CLI -------------------------------------------------------------------------------------


def run(*argv: str | Path) -> int:
    parser = argparse.ArgumentParser(prog="rizzpay")
    fraud_cli.register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args([str(a) for a in argv])
    code: int = args.handler(args)
    return code


def test_cli_backtest_with_a_score_column(
    small_frame: pd.DataFrame, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = tmp_path / "scored.parquet"
    labels = small_frame["is_fraud"].to_numpy()
    small_frame.assign(score=np.where(labels == 1, 0.8, 0.2)).to_parquet(data)
    out = tmp_path / "report.md"
    code = run(
        "fraud", "backtest", "--rules", EXAMPLE, "--data", data, "--out", out,
        "--since", "2018-05-01",
    )  # fmt: skip
    assert code == 0
    printed = capsys.readouterr().out
    assert "frauds caught (blocked)" in printed
    assert "device_velocity_1h" in printed
    report = out.read_text()
    assert "| Measure | Rules + thresholds | Thresholds only |" in report
    assert "Scores: the file's 'score' column (scored.parquet)." in report
    assert "Payments from 2018-05-01 to" in report


def test_cli_rejects_bad_rules_and_writes_nothing(
    small_frame: pd.DataFrame, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rules = tmp_path / "bad.yaml"
    rules.write_text(BAD)
    assert run("fraud", "rules", "check", rules) == 2
    assert "unknown field 'devcie_nb_tx_1h'" in capsys.readouterr().err
    data = tmp_path / "tx.parquet"
    small_frame.head(100).assign(score=0.1).to_parquet(data)
    out = tmp_path / "report.md"
    assert run("fraud", "backtest", "--rules", rules, "--data", data, "--out", out) == 2
    assert "rule 'velocity', line 2" in capsys.readouterr().err
    assert not out.exists()
    assert run("fraud", "rules", "check", EXAMPLE) == 0
    assert "rules (3 block" in capsys.readouterr().out
    assert run("fraud", "rules", "fields") == 0
    assert "device_nb_tx_1h" in capsys.readouterr().out
