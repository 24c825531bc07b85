"""Parity rows for the core layers (issue: Module system, linear/conv/pooling)."""
import pytest

from parity import Row, check_row, ids

ROWS = [
    Row("Linear", "Linear", (5, 3), shapes=[(4, 5)]),
    Row("Linear-nobias", "Linear", (5, 3), {"bias": False}, shapes=[(4, 5)]),
    Row("Linear-3d", "Linear", (5, 3), shapes=[(2, 7, 5)]),
    Row("Identity", "Identity", shapes=[(2, 3)], grad=True),
    Row("Flatten", "Flatten", shapes=[(2, 3, 4, 5)]),
]


@pytest.mark.parametrize("row", ROWS, ids=ids(ROWS))
def test_parity(row):
    check_row(row)
