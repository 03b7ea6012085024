"""Budget: validation, defaults, round trips and the parameter-count formula."""

import dataclasses

import pytest
import sympy as sp

from tfapprox.budget import Budget, count_parameters, feedforward_parameter_count


def test_budget_m_v_defaults_to_n():
    assert Budget(n=12, m_h=3, m_ff=20).m_v == 12


@pytest.mark.parametrize("field", ["n", "m_h", "m_ff", "m_v", "ff_depth"])
@pytest.mark.parametrize("value", [0, -3])
def test_budget_rejects_non_positive_values_naming_the_field(field, value):
    kwargs = dict(n=4, m_h=2, m_ff=8)
    kwargs[field] = value
    with pytest.raises(
        ValueError, match=f"`{field}` must be a positive int. Received: {field}={value}"
    ):
        Budget(**kwargs)


@pytest.mark.parametrize("value", [2.0, "2", True, None])
def test_budget_rejects_non_integers_naming_the_field(value):
    with pytest.raises(TypeError, match="`m_h` must be a positive int"):
        Budget(n=4, m_h=value, m_ff=8)


def test_budget_is_frozen_and_keyword_only():
    budget = Budget(n=4, m_h=2, m_ff=8)
    with pytest.raises(dataclasses.FrozenInstanceError):
        budget.m_h = 3
    with pytest.raises(TypeError):
        Budget(4, 2, 8)


def test_budget_dict_round_trip():
    budget = Budget(n=5, m_h=2, m_v=7, m_ff=9, ff_depth=2)
    assert Budget.from_dict(budget.to_dict()) == budget
    assert budget.to_dict() == {"n": 5, "m_h": 2, "m_v": 7, "m_ff": 9, "ff_depth": 2}


def test_budget_from_dict_rejects_unknown_fields():
    with pytest.raises(ValueError, match="Unknown budget fields \\['heads'\\]"):
        Budget.from_dict({"n": 4, "m_h": 2, "m_ff": 8, "heads": 2})


def test_feedforward_count_matches_layer_by_layer_sum():
    # depth 3, 2 -> 5 -> 5 -> 5 -> 3: (2·5+5) + 2·(5·5+5) + (5·3+3)
    assert feedforward_parameter_count(2, 5, 3, 3) == 15 + 60 + 18


def test_count_parameters_is_polynomial_in_sympy_symbols():
    m_h, m_ff = sp.symbols("m_h m_FF", positive=True)
    expression = count_parameters(
        n=32, m_h=m_h, m_v=32, m_ff=m_ff, ff_depth=3, sequence_length=16, input_dim=1
    )
    numeric = Budget(n=32, m_h=4, m_ff=128).parameter_count(16, 1)
    assert expression.subs({m_h: 4, m_ff: 128}) == numeric
    assert sp.degree(sp.expand(expression), m_ff) == 2


def test_parameter_count_rejects_unknown_position_encoding():
    with pytest.raises(ValueError, match="`position_encoding` must be one of"):
        Budget(n=4, m_h=2, m_ff=8).parameter_count(4, 1, position_encoding="rotary")


def test_budget_with_heads_and_layers_round_trips_and_hides_defaults():
    budget = Budget(n=5, m_h=2, m_ff=9, num_heads=4, num_layers=2)
    assert Budget.from_dict(budget.to_dict()) == budget
    assert budget.to_dict()["num_heads"] == 4 and budget.to_dict()["num_layers"] == 2
    one = Budget(n=5, m_h=2, m_ff=9, num_heads=1)
    assert "num_heads" not in one.to_dict() and "num_layers" not in one.to_dict()
    assert Budget.from_dict(one.to_dict()) == one


@pytest.mark.parametrize("field", ["num_heads", "num_layers"])
def test_budget_rejects_zero_heads_or_layers(field):
    with pytest.raises(ValueError, match=f"{field}=0"):
        Budget(n=4, m_h=2, m_ff=8, **{field: 0})


def test_paper_b_count_reduces_to_paper_a_and_is_linear_in_layers_and_heads():
    base = dict(n=8, m_h=2, m_v=8, m_ff=16, ff_depth=1, sequence_length=6, input_dim=1)
    assert count_parameters(**base) == count_parameters(
        **base, num_heads=1, num_layers=1, residual=False, rpe="none"
    )
    options = dict(residual=True, rpe="linear", embedding="linear")
    one = count_parameters(**base, num_layers=1, **options)
    two = count_parameters(**base, num_layers=2, **options)
    three = count_parameters(**base, num_layers=3, **options)
    # Each extra layer adds one attention and one FFN (n → m_FF → n).
    attention = (2 * 2 + 8) * 8 + 8 * 8 + 1
    assert two - one == three - two == attention + (8 + 1) * 16 + (16 + 1) * 8
    dp_free = count_parameters(**base, use_dot_product=False, num_heads=3, rpe="t5", num_buckets=4)
    with_dp = count_parameters(**base, num_heads=3, rpe="t5", num_buckets=4)
    assert with_dp - dp_free == 3 * 2 * 2 * 8  # W_Q, W_K of 3 heads


def test_readout_width_defaults_to_m_ff_and_keeps_the_old_dict():
    old = Budget(n=5, m_h=2, m_v=7, m_ff=9, ff_depth=2)
    same = Budget(n=5, m_h=2, m_v=7, m_ff=9, ff_depth=2, m_readout=9)
    assert old == same and old.m_readout is None and old.readout_width == 9
    # Paper A's budgets keep the dict (and so the results-file run keys) they had.
    assert same.to_dict() == {"n": 5, "m_h": 2, "m_v": 7, "m_ff": 9, "ff_depth": 2}
    # Changing m_ff of a budget without its own readout width moves the readout too.
    assert dataclasses.replace(old, m_ff=4).readout_width == 4


def test_budget_with_readout_width_round_trips_and_counts_the_readout_alone():
    budget = Budget(n=5, m_h=2, m_ff=9, ff_depth=1, num_layers=2, m_readout=3)
    assert budget.to_dict()["m_readout"] == 3
    assert Budget.from_dict(budget.to_dict()) == budget
    shared = Budget(n=5, m_h=2, m_ff=9, ff_depth=1, num_layers=2)
    options = dict(position_encoding="none", residual=True, embedding="linear")
    # Only the readout's hidden layer changes: (a + 1) m_r + (m_r + 1) d_out, a = n = 5, d_out = 1.
    difference = shared.parameter_count(6, 1, **options) - budget.parameter_count(6, 1, **options)
    assert difference == (5 + 1) * (9 - 3) + (9 - 3) * 1


def test_budget_rejects_a_zero_readout_width():
    with pytest.raises(ValueError, match="m_readout=0"):
        Budget(n=4, m_h=2, m_ff=8, m_readout=0)
