import torch

from budgetlm.evaluate.exact_match import exact_match, tokenize_items


class CopyLast(torch.nn.Module):
    """Predicts 'previous token + 1' with certainty: a model whose answers are known."""

    def forward(self, idx):
        return torch.nn.functional.one_hot((idx + 1) % 10, 10).float()


def test_exact_match_counts_whole_answers_only():
    items = [
        ([1, 2], [3, 4]),  # right: 2 -> 3 -> 4
        ([5], [6]),  # right
        ([5], [7]),  # wrong
        ([1, 2], [3, 5]),  # first token right, second wrong: not an exact match
    ]
    assert exact_match(CopyLast(), items, torch.device("cpu")) == 0.5


def test_tokenize_items_splits_at_the_prompt():
    def encode(text):
        return [ord(c) for c in text]

    assert tokenize_items([("1+1=", "2")], encode) == [([49, 43, 49, 61], [50, 10])]
