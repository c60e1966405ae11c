"""glibc malloc thresholds: once raised, a freed big buffer is reused without page faults."""

import subprocess
import sys

import pytest

SCRIPT = """
import ctypes, resource, sys
from budgetlm.train.host_memory import reuse_freed_memory
applied = reuse_freed_memory() if sys.argv[1] == "reuse" else False
libc = ctypes.CDLL(None)
libc.malloc.restype = ctypes.c_void_p
libc.malloc.argtypes = [ctypes.c_size_t]
libc.free.argtypes = [ctypes.c_void_p]
size = 64 << 20
def step():  # what a training step does with an activation buffer
    buffer = libc.malloc(size)
    ctypes.memset(buffer, 1, size)
    libc.free(buffer)
step()
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
step()
print(applied, resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
"""


def faults(mode):
    command = [sys.executable, "-c", SCRIPT, mode]
    out = subprocess.run(command, capture_output=True, text=True, check=True).stdout.split()
    return out[0], int(out[1])


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc only")
def test_a_freed_big_buffer_is_reused_without_page_faults():
    pages = (64 << 20) // 4096
    applied, reused = faults("reuse")
    assert applied == "True" and reused < pages // 100
    _, default = faults("default")
    assert default > pages // 2  # glibc's default maps it fresh, faulting every page in again
