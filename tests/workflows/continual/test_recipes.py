import pytest

from budgetlm.config import load_config
from budgetlm.errors import UserError
from budgetlm.train.schedules import build_schedule
from budgetlm.workflows.continual.recipes import RECIPES, Recipe, get_recipe

NAMES = ["naive", "rewarm", "replay", "hq-subset", "infinite", "infinite-replay", "default"]


def lr_factors(recipe, total=100):
    schedule = build_schedule(recipe.schedule, recipe.warmup_fraction, recipe.decay_fraction, 0.0)
    return [schedule.lr_factor(step, total) for step in range(total)]


@pytest.mark.parametrize("name", NAMES)
def test_every_named_recipe_resolves(name):
    recipe = get_recipe(name)
    assert isinstance(recipe, Recipe)
    assert recipe is RECIPES[name]


def test_the_documented_recipes_are_all_there():
    assert set(RECIPES) == set(NAMES)


def test_each_recipe_is_named_by_its_own_name_except_default():
    for name, recipe in RECIPES.items():
        if name != "default":
            assert recipe.name == name


def test_default_is_the_replay_recipe():
    assert get_recipe("default") is get_recipe("replay")
    assert load_config(None, []).continual.recipe == "default"


@pytest.mark.parametrize("recipe", list(RECIPES.values()), ids=list(RECIPES))
def test_recipe_fields_are_in_range_and_build_a_schedule(recipe):
    assert recipe.checkpoint in ("final", "pre_decay")
    assert 0 <= recipe.replay_ratio < 1
    assert 0 <= recipe.warmup_fraction < 1
    assert 0 < recipe.decay_fraction <= 1
    assert 0 < recipe.subset_fraction <= 1
    assert recipe.description.strip()
    factors = lr_factors(recipe)
    assert all(0 <= f <= 1 for f in factors) and max(factors) == pytest.approx(1.0)
    assert factors[-1] == pytest.approx(0.0)  # every recipe ends fully re-decayed


def test_unknown_recipe_is_a_user_error_with_a_hint_and_the_choices():
    with pytest.raises(
        UserError, match=r"unknown recipe 'replya' \(did you mean 'replay'\?\)"
    ) as e:
        get_recipe("replya")
    for name in NAMES:
        assert name in str(e.value)


def test_far_off_recipe_name_gets_no_hint():
    with pytest.raises(UserError, match="unknown recipe 'zzzzzz'; choose one of") as e:
        get_recipe("zzzzzz")
    assert "did you mean" not in str(e.value)


def test_only_the_infinite_recipes_start_from_the_pre_decay_checkpoint():
    pre_decay = {n for n, r in RECIPES.items() if r.checkpoint == "pre_decay"}
    assert pre_decay == {"infinite", "infinite-replay"}


def test_replay_ratios():
    ratios = {n: r.replay_ratio for n, r in RECIPES.items()}
    assert ratios == {
        "naive": 0.0,
        "rewarm": 0.0,
        "replay": 0.25,
        "hq-subset": 0.25,
        "infinite": 0.0,
        "infinite-replay": 0.25,
        "default": 0.25,
    }


def test_only_hq_subset_trains_on_a_quarter_of_the_new_documents():
    assert get_recipe("hq-subset").subset_fraction == 0.25
    assert {n for n, r in RECIPES.items() if r.subset_fraction < 1} == {"hq-subset"}


def test_naive_jumps_to_the_peak_lr_and_rewarm_climbs_to_it():
    naive, rewarm = lr_factors(get_recipe("naive")), lr_factors(get_recipe("rewarm"))
    assert naive[0] == pytest.approx(1.0)
    assert rewarm[0] == pytest.approx(0.5) and rewarm[1] == pytest.approx(1.0)  # 2% of 100
    # both cosine-decay over everything after the warmup
    assert naive[50] < 1 and rewarm[50] < 1
    assert naive[50] == pytest.approx(rewarm[50], abs=0.02)


def test_infinite_keeps_the_constant_lr_and_decays_only_the_last_fifth():
    for name in ("infinite", "infinite-replay"):
        factors = lr_factors(get_recipe(name))
        assert factors[:80] == [1.0] * 80  # no re-warm, a plateau at the peak
        assert factors[80] < 1 and factors[-1] == 0.0


def test_replay_recipes_schedule_like_rewarm():
    for name in ("replay", "hq-subset"):
        assert lr_factors(get_recipe(name)) == lr_factors(get_recipe("rewarm"))
