import json

import pytest

from budgetlm.data.feed.mixture_file import mixture_weights, write_mixture_file
from budgetlm.errors import UserError


def test_written_mixture_reads_back(tmp_path):
    path = tmp_path / "mix.json"
    write_mixture_file(path, {"weights": {"code": 0.25, "prose": 0.75}, "predicted_loss": 3.0})
    assert json.loads(path.read_text())["format"] == 1
    assert mixture_weights(path) == {"code": 0.25, "prose": 0.75}


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ('{"weights": {"code": 0.5, "prose": 0.4}}', "sum to 0.9, not 1"),
        ('{"weights": {"code": 1.5, "prose": -0.5}}', "'prose' must be a non-negative number"),
        ('{"weights": {"code": "half", "prose": 0.5}}', "'code' must be a non-negative number"),
        ('{"mixture": {"code": 1.0}}', 'no "weights" mapping'),
        ("[1, 2]", 'no "weights" mapping'),
        ("{not json", "not valid JSON"),
    ],
)
def test_bad_mixture_files_name_the_problem(tmp_path, content, message):
    path = tmp_path / "mix.json"
    path.write_text(content)
    with pytest.raises(UserError, match=message) as error:
        mixture_weights(path)
    assert str(path) in str(error.value)


def test_missing_mixture_file(tmp_path):
    with pytest.raises(UserError, match="does not exist.*mix search"):
        mixture_weights(tmp_path / "nope.json")
