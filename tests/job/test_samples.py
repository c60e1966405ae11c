"""samples.txt prompts: the openings of the first held-out documents."""

import numpy as np

from budgetlm.job.samples import document_openings


def test_no_prompts_means_no_samples():
    stream = np.array([5, 6, 7, 0, 8, 9, 0, 3, 4, 0])
    assert document_openings(stream, eos_id=0, count=0, length=2) == []
    assert document_openings(stream, eos_id=0, count=2, length=2) == [[5, 6], [8, 9]]
