import pytest

from budgetlm.config import RunConfig, load_config, parse_override, save_config
from budgetlm.errors import UserError


def test_defaults_roundtrip_through_yaml(tmp_path):
    config = load_config(None, [("train.lr", 1e-3), ("model.size", "nano"), ("budget", "90s")])
    path = tmp_path / "config.yaml"
    save_config(config, path)
    again = load_config(path)
    assert again == config
    assert again.train.lr == 1e-3 and again.model.size == "nano" and again.budget == "90s"


def test_override_values_are_parsed_as_yaml_scalars():
    assert parse_override("train.lr=3e-3") == ("train.lr", 0.003)
    assert parse_override("train.compile=true") == ("train.compile", True)
    assert parse_override("data.sources=[a, b]") == ("data.sources", ["a", "b"])


def test_int_is_accepted_for_float_and_kept_as_float():
    config = load_config(None, [("train.lr", 1)])
    assert config.train.lr == 1.0 and isinstance(config.train.lr, float)


def test_unknown_key_suggests_the_closest():
    with pytest.raises(
        UserError, match=r"unknown config key 'train.lrr'.*did you mean --train.lr\?"
    ):
        load_config(None, [("train.lrr", 1e-3)])
    with pytest.raises(UserError, match=r"unknown config key 'trian'.*did you mean --train\?"):
        load_config(None, [("trian.lr", 1e-3)])


def test_wrong_type_names_the_key():
    with pytest.raises(UserError, match="train.batch_size"):
        load_config(None, [("train.batch_size", "many")])


def test_yaml_file_errors_name_the_file(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("train: [unclosed\n")
    with pytest.raises(UserError, match="bad.yaml"):
        load_config(bad)
    unknown = tmp_path / "unknown.yaml"
    unknown.write_text("train:\n  warmup: 3\n")
    with pytest.raises(UserError, match=r"unknown.yaml: unknown config key 'train.warmup'"):
        load_config(unknown)
    with pytest.raises(UserError, match="does not exist"):
        load_config(tmp_path / "missing.yaml")


def test_single_string_source_becomes_a_list():
    assert load_config(None, [("data.sources", "builtin:code")]).data.sources == ["builtin:code"]


def test_default_config_is_a_runconfig():
    assert load_config() == RunConfig()
