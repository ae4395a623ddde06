"""video-SALMONN 2 for LLaMA-Factory.

Importing this package is cheap on purpose: it is imported by a ``.pth`` hook at every
interpreter start (see :mod:`vs2_plugin.autoload`), so heavy modules (torch,
transformers, LLaMA-Factory) are imported only by the submodules that need them.
"""

import pluggy

__version__ = "0.1.0"

#: Marker for implementations of the ``vs2_*`` hooks (see :mod:`vs2_plugin.hookspecs`).
hookimpl = pluggy.HookimplMarker("vs2")

__all__ = ["__version__", "hookimpl"]
