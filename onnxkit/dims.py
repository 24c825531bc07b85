"""Symbolic dimensions: named sizes that print as their name, do arithmetic with ints and other
dims, and lower to Shape/Gather nodes when a graph needs their value."""
import ast
import re
from collections import Counter

_MONOMIAL = re.compile(r"^(\d+\*)?[A-Za-z_][\w.]*(\*[A-Za-z_][\w.]*)*$")


def monomial(d):
    """(coefficient, Counter of symbol names) for an int, a dim name like '4*N*T', or None if opaque."""
    if isinstance(d, int):
        return d, Counter()
    name = str(d)
    if not _MONOMIAL.match(name):
        return None
    coef, syms = 1, Counter()
    for part in name.split("*"):
        if part.isdigit():
            coef *= int(part)
        else:
            syms[part] += 1
    return coef, syms


def from_monomial(coef, syms):
    """The canonical name of coef * (product of syms): an int, 'N' or '4*N*T'."""
    if not syms:
        return coef
    names = "*".join(sorted(syms.elements()))
    return names if coef == 1 else f"{coef}*{names}"


def dim_product(dims):
    """Product of a list of ints/dim names as an int or a canonical name; None when not representable."""
    coef, syms = 1, Counter()
    for d in dims:
        m = monomial(d)
        if m is None:
            return None
        coef *= m[0]
        syms += m[1]
    if coef == 0:
        return 0
    return from_monomial(coef, syms)


def dim_divide(total, part):
    """total / part for monomials, or None when it does not divide symbolically."""
    mt, mp = monomial(total), monomial(part)
    if mt is None or mp is None or mp[0] == 0 or mt[0] % mp[0] or any(mt[1][k] < v for k, v in mp[1].items()):
        return None
    return from_monomial(mt[0] // mp[0], mt[1] - mp[1])


def _linear(node):
    """{term: coefficient} of an expression tree of +, -, int * expr and names (term '' is the constant),
    or None for anything else (products of names, floor division)."""
    if isinstance(node, ast.Constant) and isinstance(node.value, int):
        return {"": node.value}
    if isinstance(node, (ast.Name, ast.Attribute)):
        return {ast.unparse(node): 1}
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub):
        inner = _linear(node.operand)
        return None if inner is None else {k: -v for k, v in inner.items()}
    if isinstance(node, ast.BinOp) and isinstance(node.op, (ast.Add, ast.Sub, ast.Mult)):
        a, b = _linear(node.left), _linear(node.right)
        if a is None or b is None:
            return None
        if isinstance(node.op, ast.Mult):
            if set(a) == {""}:
                a, b = b, a
            if set(b) != {""}:
                return None
            return {k: v * b[""] for k, v in a.items()}
        sign = 1 if isinstance(node.op, ast.Add) else -1
        out = dict(a)
        for k, v in b.items():
            out[k] = out.get(k, 0) + sign * v
        return out
    return None


def simplify(d):
    """A dim written as a sum of names and ints, reduced where that gives an int or a bare name:
    '(T)-((T)-(1))' -> 1, '(T+2)-(2)' -> 'T'; anything else comes back unchanged."""
    if isinstance(d, int):
        return d
    name = str(d)
    try:
        terms = _linear(ast.parse(name, mode="eval").body)
    except SyntaxError:
        return d
    if terms is None:
        return d
    terms = {k: v for k, v in terms.items() if v}
    if not set(terms) - {""}:
        return terms.get("", 0)
    if len(terms) == 1 and next(iter(terms.values())) == 1:
        return next(iter(terms))
    return d


class Dim:
    """A symbolic dimension bound to how it is computed: `tensor()` returns its value as a
    1-element int64 Tensor. Equality is by name, so the same named dim from different tensors compares equal."""
    __slots__ = ("name", "_lower")

    def __init__(self, name, lower=None):
        self.name = str(name)
        self._lower = lower

    def __repr__(self):
        return self.name

    __str__ = __repr__

    def __eq__(self, other):
        return isinstance(other, (Dim, str)) and str(other) == self.name

    def __hash__(self):
        return hash(self.name)

    def tensor(self):
        """This dim's value as an int64 scalar Tensor (Shape + Gather of the tensor it came from)."""
        if self._lower is None:
            raise ValueError(f"symbolic dim {self.name!r} is not attached to a tensor and has no value in a graph")
        return self._lower()

    def _binary(self, other, op, sym, swap=False):
        """A derived dim: its name is the expression (products kept canonical for reshape's -1),
        its value is computed from the operands' values."""
        if not isinstance(other, (int, Dim)):
            return NotImplemented
        if isinstance(other, int) and other == _IDENTITY[sym] and (sym in "+*" or not swap):  # N+0, 1*N, N//1
            return self
        a, b = (other, self) if swap else (self, other)
        name = dim_product([_key(a), _key(b)]) if sym == "*" else None
        if name is None:
            name = f"({_key(a)}){sym}({_key(b)})"
        return Dim(name, lambda: op(_as_tensor(a), _as_tensor(b)))

    def __add__(self, o): return self._binary(o, lambda x, y: x + y, "+")
    def __radd__(self, o): return self._binary(o, lambda x, y: x + y, "+", True)
    def __sub__(self, o): return self._binary(o, lambda x, y: x - y, "-")
    def __rsub__(self, o): return self._binary(o, lambda x, y: x - y, "-", True)
    def __mul__(self, o): return self._binary(o, lambda x, y: x * y, "*")
    def __rmul__(self, o): return self._binary(o, lambda x, y: x * y, "*", True)
    def __floordiv__(self, o): return self._binary(o, lambda x, y: x // y, "//")
    def __rfloordiv__(self, o): return self._binary(o, lambda x, y: x // y, "//", True)

    def __index__(self):
        raise TypeError(f"symbolic dim {self.name!r} has no concrete value at build time")


_IDENTITY = {"+": 0, "-": 0, "*": 1, "//": 1}  # the right operand that leaves a dim unchanged


def _key(d):
    return d.name if isinstance(d, Dim) else d


def _as_tensor(d):
    from .tensor import const
    return d.tensor() if isinstance(d, Dim) else const([d], "int64")


def format_shape(shape):
    """A shape for error messages, written like a Python tuple: (N, 3), (3,), ()."""
    return "(" + ", ".join(str(d) for d in shape) + ("," if len(shape) == 1 else "") + ")"
