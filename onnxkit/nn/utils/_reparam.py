"""What weight_norm and spectral_norm share: one forward pre-hook per (kind, parameter) that
recomputes module.<name> from other parameters and buffers before every call."""


def _find_hook(module, kind, name):
    return next((h for h in module._forward_pre_hooks.values() if isinstance(h, kind) and h.name == name), None)


def parameter_to_reparametrize(module, kind, name, what):
    """module's parameter `name`, checked to exist and to have no `kind` hook yet (`what`: the
    function's name, for the errors)."""
    if _find_hook(module, kind, name) is not None:
        raise RuntimeError(f"Cannot register two {what} hooks on the same parameter {name}")
    weight = module._parameters.get(name)
    if weight is None:
        raise ValueError(f"{type(module).__name__} has no parameter {name!r} to normalize")
    return weight


def remove_reparametrization(module, kind, name, what):
    """Fold module.<name>'s `kind` hook back into one parameter (the hook's `remove`); returns the module."""
    hook = _find_hook(module, kind, name)
    if hook is None:
        raise ValueError(f"{what} of '{name}' not found in {type(module).__name__}")
    hook.remove(module)
    return module
