import numpy as np
import pytest
from barcart import row_volumes_ml, volume_fractions

NULL = np.nan


def test_spec_rule_examples():
    amounts = np.array([30.0, NULL, 2.0, 3.0, 1.5, 15.0, 15.0, NULL, NULL, 0.0])
    units = ["to top", "to rinse", "Each", "EACH", "oz", None, "splash", "ml", None, "oz"]
    conv = np.array([NULL, NULL, NULL, NULL, 29.5735, NULL, NULL, 1.0, NULL, 29.5735])
    got = row_volumes_ml(amounts, units, conv)
    # to top, to rinse, each (any case) x2, amount*conversion, amount without unit,
    # amount with a unit lacking a conversion, NULL amount (with and without unit), zero amount
    expected = [90.0, 5.0, 1.0, 1.0, 1.5 * 29.5735, 15.0, 15.0, 1.0, 1.0, 0.0]
    np.testing.assert_allclose(got, expected)


def test_special_units_win_over_amount_and_conversion():
    got = row_volumes_ml(np.array([2.0, 2.0]), ["to top", "to rinse"], np.array([30.0, 30.0]))
    np.testing.assert_array_equal(got, [90.0, 5.0])


def test_length_mismatch():
    with pytest.raises(ValueError, match="length"):
        row_volumes_ml(np.array([1.0]), [None, None], np.array([NULL]))


def test_fractions_sum_duplicates_and_drop_empty_recipes():
    m = volume_fractions(
        np.array([7, 7, 7, 3, 3, 9]),
        np.array([2, 5, 2, 5, 8, 2]),
        np.array([10.0, 20.0, 10.0, 0.0, 0.0, 4.0]),
    )
    np.testing.assert_array_equal(m.recipe_ids, [7, 9])  # recipe 3 sums to 0: left out
    np.testing.assert_array_equal(m.ingredient_ids, [2, 5])  # 8 only in the dropped recipe
    np.testing.assert_allclose(m.fractions.toarray(), [[0.5, 0.5], [1.0, 0.0]])
    assert m.fractions.nnz == 3  # no explicit zeros
    assert m.fractions.has_sorted_indices


def test_zero_volume_ingredient_is_not_stored():
    m = volume_fractions(np.array([1, 1]), np.array([4, 6]), np.array([5.0, 0.0]))
    np.testing.assert_array_equal(m.ingredient_ids, [4])
    np.testing.assert_allclose(m.fractions.toarray(), [[1.0]])


def test_empty_input():
    m = volume_fractions(np.zeros(0, int), np.zeros(0, int), np.zeros(0))
    assert m.fractions.shape == (0, 0)


@pytest.mark.parametrize("bad", [-1.0, np.nan, np.inf])
def test_bad_volume_names_row(bad):
    with pytest.raises(ValueError, match="row 2"):
        volume_fractions(np.array([1, 1, 2]), np.array([1, 2, 3]), np.array([1.0, 2.0, bad]))
