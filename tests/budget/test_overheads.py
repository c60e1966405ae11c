"""Evaluation sized to its share of a time budget."""

from budgetlm.budget.overheads import checkpoint_count, evaluation_count, fit_eval_tokens


def test_evaluation_tokens_shrink_to_the_share_and_never_grow():
    # 11 evaluations x 2 domains at 10,000 tokens/s in 10% of 60 s: 2,727 tokens per domain
    fitted = fit_eval_tokens(32768, 2, 11, 60.0, 10_000.0, 0.10, 256)
    assert fitted == 2560  # whole sequences
    assert 11 * 2 * fitted / 10_000.0 <= 6.0
    assert fit_eval_tokens(1024, 2, 11, 3600.0, 10_000.0, 0.10, 256) == 1024  # fits as asked
    assert fit_eval_tokens(32768, 2, 11, 1.0, 10.0, 0.10, 256) == 256  # at least one sequence


def test_counts_of_evaluations_and_checkpoints():
    assert evaluation_count(9) == 11  # the start, 9 shares, the end
    assert checkpoint_count(0.25, True) == 6 and checkpoint_count(0, False) == 1
