"""Threads shared out between the processes on the machine."""

import torch

from budgetlm.machine import threads


def test_each_process_gets_its_share_of_the_cores():
    assert threads.threads_per_process(16, 1) == 16
    assert threads.threads_per_process(16, 4) == 4
    assert threads.threads_per_process(2, 4) == 1  # never zero


def test_torchrun_and_pools_count_as_sharers(monkeypatch):
    monkeypatch.delenv("LOCAL_WORLD_SIZE", raising=False)
    monkeypatch.delenv(threads.PROCESSES_ENV, raising=False)
    assert threads.processes_sharing() == 1
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "2")
    monkeypatch.setenv(threads.PROCESSES_ENV, "3")
    assert threads.processes_sharing() == 6
    monkeypatch.setenv(threads.PROCESSES_ENV, "nonsense")
    assert threads.processes_sharing() == 2


def test_fit_threads_sets_torch_and_says_why(monkeypatch):
    before = torch.get_num_threads()
    monkeypatch.setattr(threads, "usable_cores", lambda: 8)
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "4")
    monkeypatch.delenv(threads.PROCESSES_ENV, raising=False)
    try:
        count, line = threads.fit_threads()
        assert count == 2 and torch.get_num_threads() == 2
        assert line == "2 threads: 8 cores shared by 4 processes"
    finally:
        torch.set_num_threads(before)
