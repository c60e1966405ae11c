"""Tests for data/skills.py: the Skill-it update on hand-made graphs, graph loading and errors."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from budgetlm.data.feed.skills import (
    check_curriculum,
    check_skills,
    load_skill_graph,
    prerequisite_graph,
    skillit_update,
)
from budgetlm.errors import UserError


def test_update_on_a_hand_made_graph_gives_powers_of_two() -> None:
    # eta = ln 2 makes exp(eta * x) = 2**x. A @ L = [1*1 + 0.5*2, 1*2, 1*1] = [2, 2, 1], so
    # w * 2**(A L) = [0.5*4, 0.25*4, 0.25*2] = [2, 1, 0.5] -> [4/7, 2/7, 1/7].
    graph = np.array([[1.0, 0.5, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]])
    losses = np.array([1.0, 2.0, 1.0])
    new = skillit_update(np.array([0.5, 0.25, 0.25]), graph, losses, math.log(2))
    np.testing.assert_allclose(new, [4 / 7, 2 / 7, 1 / 7], rtol=1e-12)


def test_update_with_target_columns_weights_helpers_of_the_target() -> None:
    # One target skill (the last): its column of A says skill 0 helps it half as much as itself.
    column = np.array([[0.5], [0.0], [1.0]])
    new = skillit_update(np.full(3, 1 / 3), column, np.array([2.0]), math.log(2))
    np.testing.assert_allclose(new, np.array([2, 1, 4]) / 7, rtol=1e-12)  # 2**1, 2**0, 2**2


def test_update_keeps_zero_weights_and_does_not_overflow() -> None:
    graph = np.eye(3)
    assert list(skillit_update(np.array([0.2, 0.3, 0.5]), graph, np.ones(3), 0.0)) == pytest.approx(
        [0.2, 0.3, 0.5]
    )
    new = skillit_update(np.array([0.0, 0.5, 0.5]), graph, np.array([1e4, 1e4, 0.0]), 1.0)
    assert new[0] == 0.0 and new[1] == pytest.approx(1.0) and np.isfinite(new).all()


def test_prerequisite_graph_follows_ancestors_of_the_chosen_skills() -> None:
    # mul_2digit builds on mul_1digit and add_multidigit, which are left out: its ancestors
    # add_1digit and add_2digit still help it.
    skills = ["add_1digit", "add_2digit", "compare", "mul_2digit", "sub_2digit"]
    graph = prerequisite_graph(skills)
    edges = {
        (skills[i], skills[j]) for i, j in zip(*np.nonzero(graph.matrix), strict=True) if i != j
    }
    assert edges == {
        ("add_1digit", "add_2digit"),
        ("add_1digit", "sub_2digit"),
        ("add_1digit", "mul_2digit"),
        ("add_2digit", "sub_2digit"),
        ("add_2digit", "mul_2digit"),
        ("compare", "sub_2digit"),
    }
    assert np.all(np.diag(graph.matrix) == 1.0)
    assert graph.matrix[0, 1] == 0.5 and graph.source == "prerequisites"
    assert load_skill_graph("prerequisites", skills).matrix.tolist() == graph.matrix.tolist()


def test_mapping_graph_defaults_diagonal_to_one_and_the_rest_to_zero() -> None:
    graph = load_skill_graph({"a": {"b": 0.5}, "c": {"c": 2.0}}, ["a", "b", "c"])
    assert graph.matrix.tolist() == [[1.0, 0.5, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 2.0]]
    assert graph.columns(["c", "a"]).tolist() == [[0.0, 1.0], [0.0, 0.0], [2.0, 0.0]]


def test_matrix_file_is_reordered_to_the_skills(tmp_path) -> None:
    path = tmp_path / "graph.json"
    path.write_text(json.dumps({"skills": ["b", "a"], "matrix": [[1, 0.25], [0.75, 1]]}))
    graph = load_skill_graph(str(path), ["a", "b"])
    # rows/columns (b, a) -> (a, b): A[a, b] was matrix[1][0] = 0.75
    assert graph.matrix.tolist() == [[1.0, 0.75], [0.25, 1.0]]
    assert graph.source == str(path)
    nested = tmp_path / "nested.json"
    nested.write_text(json.dumps({"a": {"b": 0.3}}))
    assert load_skill_graph(str(nested), ["a", "b"]).matrix.tolist() == [[1.0, 0.3], [0.0, 1.0]]


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ({"ab": {"b": 1.0}}, "unknown skill 'ab'"),
        ({"a": {"bb": 1.0}}, r"data.skill_graph.a names unknown skill 'bb' \(did you mean 'b'"),
        ({"a": {"b": float("nan")}}, "must be a finite number"),
        ({"a": 0.5}, "must be a mapping"),
        ({"skills": ["a", "b"], "matrix": [[1, 0], [0]]}, "must be square"),
        ({"skills": ["a", "b", "c"], "matrix": [[1, 0], [0, 1]]}, "is 2 x 2 but names 3 skills"),
        ({"skills": ["a"], "matrix": [[1]]}, r"covers skills \['a'\].*\(missing: b\)"),
        ({"skills": ["a", "x"], "matrix": [[1, 0], [0, 1]]}, "unknown skill 'x'"),
        ({"matrix": [[1]]}, 'no "skills" list'),
        ("missing.json", "no such file 'missing.json'"),
        ("prerequisites", "needs builtin:arith skills as the skills, but a, b are not"),
    ],
)
def test_bad_graphs_are_user_errors(spec, message) -> None:
    with pytest.raises(UserError, match=message):
        load_skill_graph(spec, ["a", "b"])


def test_bad_graph_file_is_a_user_error(tmp_path) -> None:
    path = tmp_path / "g.json"
    path.write_text("{not json")
    with pytest.raises(UserError, match="is not valid JSON"):
        load_skill_graph(str(path), ["a"])
    path.write_text("[1, 2]")
    with pytest.raises(UserError, match="must be a mapping"):
        load_skill_graph(str(path), ["a"])


def test_skills_and_curriculum_settings_are_checked() -> None:
    assert check_skills(None, ["b", "a"]) == ["a", "b"]
    assert check_skills(["b"], ["a", "b"]) == ["b"]
    with pytest.raises(UserError, match=r"data.skills names 'ad' \(did you mean 'a'\?\)"):
        check_skills(["ad"], ["a", "b"])
    with pytest.raises(UserError, match="names a domain twice"):
        check_skills(["a", "a"], ["a", "b"])
    with pytest.raises(UserError, match="is empty"):
        check_skills([], ["a"])
    with pytest.raises(UserError, match="which is not one of the skills: a, b"):
        check_skills(["c"], ["a", "b"], "data.curriculum_targets")
    check_curriculum("none", -1.0, 0, 0, 0, True)  # settings of an unused curriculum are ignored
    check_curriculum("skillit", 0.0, 1, 1, 1, False)
    with pytest.raises(UserError, match="data.curriculum_eta must be >= 0"):
        check_curriculum("skillit", -0.1, 1, 1, 1, False)
    with pytest.raises(UserError, match=r"one of none, skillit, got 'skilit' \(did you mean"):
        check_curriculum("skilit", 0.1, 1, 1, 1, False)
    with pytest.raises(UserError, match="data.curriculum_every must be a positive"):
        check_curriculum("skillit", 0.1, 0, 1, 1, False)
    with pytest.raises(UserError, match="data.skill_probe_steps must be a positive"):
        check_curriculum("skillit", 0.1, 1, 1, 0, False)
    with pytest.raises(UserError, match="data.schedule and data.curriculum"):
        check_curriculum("skillit", 0.1, 1, 1, 1, True)
