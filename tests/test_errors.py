"""One error tree: every error meshlab raises on purpose is a MeshlabError defined in meshlab/errors.py."""

from __future__ import annotations

import importlib
import inspect
import pkgutil

import meshlab
from meshlab import errors
from meshlab.errors import MeshlabError


def _exception_classes() -> dict[str, type[BaseException]]:
    found = {}
    for info in pkgutil.walk_packages(meshlab.__path__, "meshlab."):
        if info.name.endswith("__main__"):     # runs the command when imported
            continue
        module = importlib.import_module(info.name)
        for name, obj in vars(module).items():
            if inspect.isclass(obj) and issubclass(obj, BaseException) and obj.__module__ == module.__name__:
                found[f"{module.__name__}.{name}"] = obj
    return found


def test_every_public_error_is_in_errors_py_under_meshlab_error() -> None:
    classes = _exception_classes()
    assert "meshlab.errors.EnvoyConfigRejected" in classes
    elsewhere = [name for name, cls in classes.items() if cls.__module__ != "meshlab.errors"
                 and not any(part.startswith("_") for part in name.split("."))]
    assert not elsewhere, f"errors defined outside meshlab/errors.py: {elsewhere}"
    in_errors = [cls for cls in classes.values() if cls.__module__ == "meshlab.errors"]
    assert all(issubclass(cls, MeshlabError) for cls in in_errors)
    # the tree is documented where it is defined: every class appears in the module's docstring
    assert all(cls.__name__ in (errors.__doc__ or "") for cls in in_errors)


def test_the_public_error_names_are_the_tree() -> None:
    for name in ("MeshlabError", "ManifestError", "ApplyError", "EnvoyConfigRejected"):
        assert getattr(meshlab, name) is getattr(errors, name)
    assert issubclass(meshlab.EnvoyConfigRejected, meshlab.MeshlabError)
    assert issubclass(errors.ManifestError, ValueError) and issubclass(errors.LabOptionError, ValueError)
