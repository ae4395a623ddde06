"""The test suite; its folders mirror ``vs2_plugin/`` (see ``tests/conftest.py`` for how shared code is laid out).

A package so that ``tests.support`` is importable under the pytest import mode set in
``pyproject.toml`` (``importlib``): test modules never import each other, and the same basename
may appear in two folders (``tests/gdpo/test_config.py``, ``tests/modeling/test_config.py``).
"""
