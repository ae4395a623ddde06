"""Plain code shared by the tests, for what is needed when a test module is imported.

Test bodies take the shared paths and helpers as fixtures from ``tests/conftest.py`` (and a
folder's own ``conftest.py``); a module imports from here only what it needs at import time:
constants in ``parametrize`` or ``skipif``, module-level paths, media builders for module-scoped
fixtures, the fake OpenAI server. No test module imports a ``conftest``.

- ``paths``: the repository, the shared real data, the venv's console scripts.
- ``processes``: run a console script; SIGKILL a process at a chosen moment.
- ``media_factory``, ``bad_media``: small good and bad clips made with ffmpeg at test time.
- ``hub_layout``: a tiny Qwen2.5-VL directory in the hub's layout.
- ``fake_openai_server``: an OpenAI-compatible HTTP server on 127.0.0.1 for the judge tests.
- ``adapters``: LoRA adapters with random weights (export and inference tests).
- ``gdpo``: argument dicts and parsed LLaMA-Factory pieces for the gDPO tests.
- ``tensorboard``: read scalars back from TensorBoard event files.
"""
