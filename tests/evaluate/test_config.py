from budgetlm.evaluate.config import EvalConfig


def test_even_fractions_exclude_start_and_end():
    assert EvalConfig(count=4).fractions() == [0.25, 0.5, 0.75]


def test_early_fractions_are_merged_sorted_and_deduplicated():
    config = EvalConfig(count=4, early=[0.01, 0.25, 0.05, 1.0])
    assert config.fractions() == [0.01, 0.05, 0.25, 0.5, 0.75]
