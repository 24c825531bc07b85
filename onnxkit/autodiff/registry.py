"""The one table of gradient rules, keyed by (domain, ONNX op type).

A rule is `rule(node, grads) -> [grad per input]`: `grads[k]` is the gradient of output k
(None if it has none), the result holds None for inputs without a gradient (indices, shapes).
The engine un-broadcasts and accumulates; rules only do the math, with the Tensor API."""

RULES = {}
NOT_DIFFERENTIABLE = {("", op) for op in (
    "Shape", "Size", "Equal", "Less", "Greater", "LessOrEqual", "GreaterOrEqual", "And", "Or", "Xor", "Not",
    "ArgMax", "ArgMin", "IsNaN", "IsInf", "Sign", "Floor", "Ceil", "Round", "NonZero", "ConstantOfShape",
    "RandomUniform", "RandomNormal", "RandomUniformLike", "RandomNormalLike", "Bernoulli", "Multinomial",
    "OneHot", "EyeLike", "Range", "BitShift", "Mod", "Constant", "BitwiseAnd", "BitwiseOr", "BitwiseXor",
    "BitwiseNot", "StringNormalizer", "Hardmax", "Unique", "NonMaxSuppression")}


def register(op_type, domain=""):
    """Decorator: register the gradient rule for an ONNX op (use it for custom-domain ops too)."""
    def deco(fn):
        RULES[(domain, op_type)] = fn
        return fn
    return deco


def register_non_differentiable(op_type, domain=""):
    """Declare that an op's outputs carry no gradient (indices, masks, shapes)."""
    NOT_DIFFERENTIABLE.add((domain, op_type))


def lookup(node):
    """The rule for `node`, None when its outputs carry no gradient; raises when unsupported."""
    key = (node.domain or "", node.op_type)
    if key in RULES:
        return RULES[key]
    if key in NOT_DIFFERENTIABLE:
        return None
    where = f"{node.scope}/{node.op_type}" if node.scope else node.op_type
    dom = f" (domain {node.domain!r})" if node.domain else ""
    raise NotImplementedError(f"no gradient rule for ONNX op {node.op_type}{dom} at node {where!r}; "
                              "register one with onnxkit.autodiff.register(op_type)")
