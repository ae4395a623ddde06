"""Every extension point of vs2_plugin, as pluggy hook specifications.

Third-party packages implement these hooks in a module or class decorated with
:data:`vs2_plugin.hookimpl` and expose it through the ``vs2`` entry-point group::

    [project.entry-points.vs2]
    my_judge = "my_package.judge"

Built-in behaviour (the offline judge, the Appendix-F pair selection) is implemented as
default plugins on these same hooks, so there is one code path for ours and theirs.
Hooks that must give a single answer are ``firstresult``; the first non-``None`` result
wins and later implementations are not called (plugins registered later run first).
"""

from __future__ import annotations

import pluggy

hookspec = pluggy.HookspecMarker("vs2")


@hookspec
def vs2_register_judges(register):
    """Declare caption judges (like ``llm``'s ``register_models``).

    :param register: call ``register(judge)`` once per judge this plugin implements, with a
        :class:`vs2_plugin.judge.registry.Judge`: its ``name``, ``description``, ``options``
        dataclass (validated in ``__post_init__``) and functions ``judge_captions(items,
        options, config)`` (paper App. E) and optionally ``extract_events(references,
        options, config)`` (paper sec. 3.3). The host calls the functions of the judge that
        ``JudgeConfig.judge`` names, with ``JudgeConfig.options`` parsed into that judge's
        dataclass. Names must be unique across plugins; ``vs2 eval --judge NAME`` and the
        ``judge`` key of ``mrdpo.yaml`` accept exactly the registered names.
    :returns: nothing.
    """


@hookspec(firstresult=True)
def vs2_select_pairs(samples, thresholds, round_index):
    """Choose DPO preference pairs from judged samples (paper App. F, Table 3).

    :param samples: list of :class:`vs2_plugin.judge.types.ScoredSample` (several per video
        and task, each with its metrics; never a blank caption, which cannot be trained on).
    :param thresholds: :class:`vs2_plugin.judge.pairs.RoundThresholds` for this round.
    :param round_index: 1-based mrDPO round.
    :returns: list of :class:`vs2_plugin.judge.types.PreferencePair`, or ``None`` to defer to
        the next implementation (the built-in one always answers).
    """


@hookspec
def vs2_after_round(round_index, run_dir, metrics):
    """Notification after an mrDPO round has been trained and evaluated.

    :param round_index: 1-based round that just finished.
    :param run_dir: ``pathlib.Path`` of the run directory.
    :param metrics: the round's held-out metrics per task, ``{"global": {...}, "local": {...}}``
        (a task without held-out captions is absent), each with ``n``, ``failed`` and the rates
        ``rep``, ``miss``, ``hall``, ``total``, ``unnatural`` as fractions (``None`` where the
        judge did not measure one): the round's row of ``metrics.json``.
    :returns: nothing; return values are ignored. An exception stops the run; the hook is
        called again for that round when the run is resumed.
    """


@hookspec(firstresult=True)
def vs2_reload_sampling_server(base_url, model, adapters):
    """Make the OpenAI-compatible sampling server serve ``model`` + ``adapters``.

    Called by ``sampling.backend: openai`` before each sampling or evaluation step (the mrDPO
    driver, rebirth labelling), with the model that step must sample from: round t samples
    from the adapters trained up to round t-1, so a server started once would serve a stale
    model from round 2 on. The mrDPO driver therefore refuses the ``openai`` backend when no
    plugin implements this hook. A typical implementation restarts ``llamafactory-cli api``
    with ``model_name_or_path: model`` and ``adapter_name_or_path: ",".join(adapters)`` (or
    merges them first) and waits until it answers.

    :param base_url: ``sampling.base_url`` of the config.
    :param model: base model path (str).
    :param adapters: list of LoRA adapter paths (str), in the order they are merged.
    :returns: the base URL to send this step's requests to (str; it may differ from
        ``base_url``), or ``None`` when this plugin does not manage that server.
    """
