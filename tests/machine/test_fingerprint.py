"""The machine fingerprint that measurements are cached under."""

import torch

from budgetlm.machine import fingerprint


def test_the_fingerprint_names_the_cpu_its_speed_flags_threads_and_torch(monkeypatch):
    monkeypatch.setattr(
        fingerprint,
        "_cpuinfo",
        lambda: {"model name": "AMD EPYC", "flags": "fpu sse avx2 fma avx512f avx512_bf16"},
    )
    f = fingerprint.machine_fingerprint(torch.device("cpu"))
    assert f["hardware"] == "AMD EPYC" and f["features"] == "avx2 fma avx512f avx512_bf16"
    assert f["threads"] == torch.get_num_threads() and f["torch"] == torch.__version__
    line = fingerprint.describe_machine(torch.device("cpu"))
    assert line.startswith("AMD EPYC (avx2 fma avx512f avx512_bf16), ")


def test_keys_differ_by_setting_and_by_machine(monkeypatch):
    cpu = torch.device("cpu")
    a = fingerprint.settings_key({"precision": "fp32"}, cpu)
    assert a == fingerprint.settings_key({"precision": "fp32"}, cpu)
    assert a != fingerprint.settings_key({"precision": "bf16"}, cpu)
    monkeypatch.setattr(fingerprint, "_cpuinfo", lambda: {"model name": "X", "flags": "amx_bf16"})
    assert a != fingerprint.settings_key({"precision": "fp32"}, cpu)
