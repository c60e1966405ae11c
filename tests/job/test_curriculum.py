"""Tests for budgetlm/job/curriculum.py: online Skill-it in a real (tiny) run: weights move by the
update rule, are logged, survive a kill and resume bit for bit; graphs given or estimated."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from budgetlm import api
from budgetlm.data.feed.skills import skillit_update
from budgetlm.errors import UserError
from tests.conftest import kill_after_step


def records(run_dir: Path, kind: str) -> list[dict]:
    lines = (run_dir / "metrics.jsonl").read_text().splitlines()
    return [r for r in map(json.loads, lines) if r["type"] == kind]


def skillit(**overrides):
    return {"data.curriculum": "skillit", "data.curriculum_tokens": 128, **overrides}


def test_weights_follow_the_update_rule_every_few_steps_and_are_logged(tiny_config):
    config = tiny_config(
        **skillit(**{
            "data.curriculum_every": 2,
            "data.curriculum_eta": 2.0,
            "data.skill_graph": {"prose": {"code": 0.5}},
        })
    )  # fmt: skip
    result = api.pretrain(config, log=lambda _: None)
    updates = records(result.run_dir, "mixture")
    assert [r["step"] for r in updates] == [0, 2, 4, 6, 8, 10]  # none after the last step
    # skills sorted (code, prose); A[prose, code] = 0.5 and a diagonal of 1
    graph = np.array([[1.0, 0.0], [0.5, 1.0]])
    assert json.loads((result.run_dir / "skill_graph.json").read_text())["matrix"] == graph.tolist()
    previous = records(result.run_dir, "start")[0]["weights"]
    for r in updates:
        losses = np.array([r["val_loss"]["code"], r["val_loss"]["prose"]])
        expected = skillit_update(
            np.array([previous["code"], previous["prose"]]), graph, losses, 2.0
        )
        assert [r["weights"]["code"], r["weights"]["prose"]] == pytest.approx(expected, rel=1e-12)
        previous = r["weights"]
    assert previous["prose"] > records(result.run_dir, "start")[0]["weights"]["prose"]


def test_domains_that_are_not_skills_keep_their_share(tiny_config):
    config = tiny_config(
        budget="6steps",
        **skillit(**{"data.skills": ["prose"], "data.skill_graph": {}, "data.curriculum_every": 2}),
    )
    result = api.pretrain(config, log=lambda _: None)
    start = records(result.run_dir, "start")[0]["weights"]
    updates = records(result.run_dir, "mixture")
    assert [r["step"] for r in updates] == [0, 2, 4]
    for r in updates:  # one skill: the update renormalises it to its own share
        assert r["weights"] == pytest.approx(start, rel=1e-12)
        assert list(r["val_loss"]) == ["prose"]


def test_estimated_graph_is_saved_and_its_probes_are_paid_from_the_budget(tiny_config):
    config = tiny_config(budget="16steps", **skillit(**{"data.skill_probe_steps": 2}))
    result = api.pretrain(config, log=lambda _: None)
    saved = json.loads((result.run_dir / "skill_graph.json").read_text())
    assert saved["source"] == "probes" and saved["skills"] == ["code", "prose"]
    assert saved["probe_cost"]["steps"] == 4  # 2 skills x 2 steps
    matrix = np.array(saved["matrix"])
    assert matrix.shape == (2, 2) and np.abs(matrix).max() == pytest.approx(1.0)
    before, after = saved["loss_before"], saved["loss_after"]
    drop = (before["code"] - after["prose"]["code"]) / before["code"]  # A[prose, code], unscaled
    raw = np.array(
        [
            [(before[j] - after[i][j]) / before[j] for j in ("code", "prose")]
            for i in ("code", "prose")
        ]
    )
    assert matrix[1, 0] == pytest.approx(drop / np.abs(raw).max())
    assert result.steps == 12  # 16 steps of budget less the 4 probe steps
    assert records(result.run_dir, "skill_graph")[0]["probe_cost"]["steps"] == 4


def test_kill_and_resume_across_an_update_is_bitwise_exact(tiny_config, monkeypatch):
    settings = {"budget": "16steps", **skillit(**{"data.skill_probe_steps": 2,
                                                  "data.curriculum_every": 4})}  # fmt: skip
    straight = api.pretrain(tiny_config(name="straight", **settings), log=lambda _: None)
    kill_after_step(monkeypatch, 7)
    with pytest.raises(KeyboardInterrupt):
        api.pretrain(tiny_config(name="killed", **settings), log=lambda _: None)
    monkeypatch.undo()
    resumed = api.pretrain(tiny_config(name="killed", **settings), resume=True, log=lambda _: None)
    assert resumed.steps == straight.steps == 12
    a = load_file(straight.run_dir / "checkpoints/step_000012/model.safetensors")
    b = load_file(resumed.run_dir / "checkpoints/step_000012/model.safetensors")
    assert all(torch.equal(a[k], b[k]) for k in a)
    mixes = {r["step"]: r["weights"] for r in records(straight.run_dir, "mixture")}
    again = {r["step"]: r["weights"] for r in records(resumed.run_dir, "mixture")}
    assert sorted(mixes) == sorted(again) == [0, 4, 8] and mixes == again
    assert len(records(resumed.run_dir, "skill_graph")) == 1  # the probes ran once


def test_a_given_graph_file_is_used(tiny_config, tmp_path):
    path = tmp_path / "graph.json"
    path.write_text(json.dumps({"skills": ["prose", "code"], "matrix": [[1, 0], [0.25, 1]]}))
    config = tiny_config(budget="4steps", **skillit(**{"data.skill_graph": str(path)}))
    result = api.pretrain(config, log=lambda _: None)
    saved = json.loads((result.run_dir / "skill_graph.json").read_text())
    # rows/columns (prose, code) -> (code, prose): A[code, prose] = 0.25
    assert saved["matrix"] == [[1.0, 0.25], [0.0, 1.0]] and saved["source"] == str(path)
    assert "probe_cost" not in saved and result.steps == 4


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"data.skills": ["prose", "cod"]}, r"data.skills names 'cod' \(did you mean 'code'\?\)"),
        ({"data.curriculum_targets": ["web"]}, "which is not one of the skills: code, prose"),
        ({"data.skill_graph": {"prose": {"web": 1.0}}}, "names unknown skill 'web'"),
        ({"data.skill_graph": "prerequisites"}, "needs builtin:arith skills"),
        ({"data.curriculum_eta": -0.5}, "data.curriculum_eta must be >= 0"),
        ({"data.curriculum": "skill-it"}, "data.curriculum must be one of none, skillit"),
    ],
)
def test_bad_curriculum_settings_fail_before_the_run_starts(tiny_config, overrides, message):
    config = tiny_config(**skillit(**overrides))
    with pytest.raises(UserError, match=message):
        api.pretrain(config, log=lambda _: None)
    assert not (Path(config.out_dir) / config.name).exists()


def test_a_graph_that_does_not_match_the_skills_fails_early(tiny_config, tmp_path):
    path = tmp_path / "graph.json"
    path.write_text(json.dumps({"skills": ["code", "prose", "web"], "matrix": [[1, 0], [0, 1]]}))
    config = tiny_config(**skillit(**{"data.skill_graph": str(path)}))
    with pytest.raises(UserError, match="the matrix is 2 x 2 but names 3 skills"):
        api.pretrain(config, log=lambda _: None)
    path.write_text(json.dumps({"skills": ["code"], "matrix": [[1]]}))
    with pytest.raises(UserError, match=r"covers skills \['code'\].*missing: prose"):
        api.pretrain(config, log=lambda _: None)
