import numpy as np
import pytest

import onnxkit as ok


@pytest.fixture(autouse=True)
def _seed():
    ok.manual_seed(0)
    np.random.seed(0)
    yield
