"""Reverse-mode autodiff over the ONNX graph with standard-op gradient rules."""
from .engine import grad, backward, unbroadcast  # noqa: F401
from .registry import register, register_non_differentiable, RULES, NOT_DIFFERENTIABLE  # noqa: F401
from . import rules, rules_nn  # noqa: F401  registers the built-in rules
from . import rules_rnn  # noqa: F401  recurrent ops (LSTM, GRU, RNN)
from . import rules_control  # noqa: F401  If, Loop, Scan
from .function import Function  # noqa: F401
