import argparse

import pytest

from budgetlm.cli import COMMANDS, build_parser
from budgetlm.cli.flags import (
    add_data,
    add_run_flags,
    comma_list,
    data_flags,
    out_flags,
    parse_dotted_overrides,
    resume_settings,
)
from budgetlm.errors import UserError


def parse(*argv):
    p = argparse.ArgumentParser()
    add_data(p)
    add_run_flags(p)
    p.add_argument("--resume", action="store_true")
    return p.parse_args(list(argv))


def test_no_data_flags_set_nothing():
    assert data_flags(parse()) == []


def test_data_sets_the_sources():
    args = parse("--data", "a.txt", "code=src/")
    assert data_flags(args) == [("data.sources", ["a.txt", "code=src/"])]


def test_prepared_replaces_the_sources():
    args = parse("--prepared", "prep")
    assert data_flags(args) == [("data.prepared", "prep"), ("data.sources", [])]


def test_data_and_prepared_together():
    args = parse("--data", "a.txt", "--prepared", "prep")
    assert data_flags(args) == [
        ("data.sources", ["a.txt"]),
        ("data.prepared", "prep"),
        ("data.sources", []),
    ]
    with pytest.raises(UserError, match="pass --data SOURCE... or --prepared DIR, not both"):
        data_flags(args, both_allowed=False)
    one = parse("--data", "a.txt")
    assert data_flags(one, both_allowed=False) == [("data.sources", ["a.txt"])]


@pytest.mark.parametrize(("out", "out_dir", "name"), [
    ("runs/tiny", "runs", "tiny"),
    ("/tmp/x/y/run", "/tmp/x/y", "run"),
    ("here", ".", "here"),
])  # fmt: skip
def test_out_splits_into_out_dir_and_name(out, out_dir, name):
    assert out_flags(out) == [("out_dir", out_dir), ("name", name)]


def test_run_flags_parse_budget_and_out():
    args = parse("--budget", "5m", "--out", "runs/a")
    assert args.budget == "5m" and args.out == "runs/a"


def test_resume_settings_keep_only_resume_keys_and_only_with_resume():
    overrides = [("train.micro_batch_size", 2), ("train.lr", 1e-3), ("train.device", "cpu")]
    assert resume_settings(parse("--resume"), overrides) == [
        ("train.micro_batch_size", 2),
        ("train.device", "cpu"),
    ]
    assert resume_settings(parse(), overrides) == []


def test_dotted_overrides_in_both_forms():
    extra = ["--train.lr", "3e-3", "--train.batch_size=16", "--data.sources", "a,b"]
    overrides = parse_dotted_overrides(extra, allow=True)
    assert overrides == [("train.lr", 3e-3), ("train.batch_size", 16), ("data.sources", "a,b")]
    assert isinstance(overrides[0][1], float) and isinstance(overrides[1][1], int)


def test_dotted_override_values_are_yaml_scalars():
    extra = ["--train.compile", "false", "--eval.early=[1, 2]", "--model.vocab_size", "null"]
    assert parse_dotted_overrides(extra, True) == [
        ("train.compile", False),
        ("eval.early", [1, 2]),
        ("model.vocab_size", None),
    ]


def test_an_equals_form_value_may_hold_equals_and_be_empty():
    assert parse_dotted_overrides(["--data.x=a=b", "--data.y="], True) == [
        ("data.x", "a=b"),
        ("data.y", ""),
    ]


def test_no_overrides():
    assert parse_dotted_overrides([], allow=False) == []
    assert parse_dotted_overrides([], allow=True) == []


def test_overrides_refused_by_a_command_that_takes_none():
    with pytest.raises(UserError, match=r"unrecognized argument '--train.lr'; see `budgetlm"):
        parse_dotted_overrides(["--train.lr", "1"], allow=False)


@pytest.mark.parametrize("arg", ["--lr", "train.lr=1", "-t.x", "--lr=1.5", "--name=a.b"])
def test_a_flag_that_is_not_a_dotted_key_is_refused(arg):
    with pytest.raises(UserError, match=f"unrecognized argument '{arg}'"):
        parse_dotted_overrides([arg, "1"], allow=True)


def test_a_dotted_key_without_a_value_is_refused():
    with pytest.raises(
        UserError, match=r"override --train.lr needs a value, e.g. --train.lr VALUE"
    ):
        parse_dotted_overrides(["--train.seed", "1", "--train.lr"], allow=True)


@pytest.mark.parametrize(("text", "items"), [
    ("a, b,c", ["a", "b", "c"]),
    ("prose", ["prose"]),
    (" a ,, b , ", ["a", "b"]),
    ("", []),
    (" , ", []),
])  # fmt: skip
def test_comma_list(text, items):
    assert comma_list(text) == items


def test_help_lists_every_command_with_its_purpose():
    text = " ".join(build_parser().format_help().split())  # argparse wraps long lines
    assert len(COMMANDS) == len({c.name for c in COMMANDS})
    for command in COMMANDS:
        assert f"{command.name} {command.purpose}" in text, command.name


def test_a_flag_is_never_taken_as_the_value_of_the_override_before_it():
    with pytest.raises(UserError, match=r"override --train.lr needs a value"):
        parse_dotted_overrides(["--train.lr", "--model.size", "nano"], allow=True)
