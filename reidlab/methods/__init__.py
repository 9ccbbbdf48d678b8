"""The lab's methods, one file each: preset dataclass, ``smoke`` / ``full`` presets, build, stages, test distance.

>>> from reidlab.methods import run, get_preset, list_methods
>>> run("bot", profile="smoke")

Adding a method: write ``reidlab/methods/<name>.py`` (its preset, presets, ``build`` and, where needed,
stages, step functions and test distance, ending in ``register_method(Method(...))``), put its modules in
``reidlab/models/`` (registered with ``@register_model``, official checkpoints with ``@register_official``),
import it below, and add a notebook and tests.
"""

from reidlab.methods import (  # noqa: F401  (every method module, imported explicitly)
    bot,
    clip_prompts,
    clip_reid,
    dmf,
    dpm,
    ivreid,
    mudeep_v2,
    transreid,
)
from reidlab.methods.registry import Method, check_preset, get_method, get_preset, list_methods, register_method
from reidlab.methods.run import (
    MethodRun,
    build_model,
    evaluate_method,
    load_method_dataset,
    load_run,
    metrics_record,
    recorded_preset,
    run,
)

__all__ = [
    "Method",
    "MethodRun",
    "build_model",
    "check_preset",
    "evaluate_method",
    "get_method",
    "get_preset",
    "list_methods",
    "load_method_dataset",
    "load_run",
    "metrics_record",
    "recorded_preset",
    "register_method",
    "run",
]
