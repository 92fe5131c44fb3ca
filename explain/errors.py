"""Domain errors of ``explain``.

Each subclasses a built-in (and :class:`~recsys.errors.ClearshelfError`, so the
CLI shows them as one-line user errors) and says what to do.
"""

from __future__ import annotations

from recsys.errors import ClearshelfError

ERR_TEMPLATE_FILE = "template file {path}: {problem}; fix the file (see docs/explanations.md, 'Templates')"
ERR_MODEL_MISMATCH = (
    "the ranked list was made by model {ranked} but this Explainer explains model {model}: "
    "build the Explainer from the model that ranked the list"
)
ERR_FEATURES_MISMATCH = (
    "the ranked list carries features {got}, the model's ranker was trained on {want}: "
    "retrain with `clearshelf train`"
)


class ExplainError(ClearshelfError):
    """Base class of the errors ``explain`` raises on purpose."""


class TemplateError(ExplainError, ValueError):
    """The reason template file is missing, malformed, or would produce an untrue or unsafe text."""


class ModelMismatchError(ExplainError, ValueError):
    """A ranked list is explained with a model other than the one that ranked it."""


class UntruthfulReasonError(ExplainError, ValueError):
    """A reason broke a truthfulness rule (only raised in strict mode; otherwise counted and replaced)."""
