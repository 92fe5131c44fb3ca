"""Explanations: from a ranked item to a true, checked reason and the ranker's SHAP attribution.

Data flow (one module per stage)::

    attributions (TreeSHAP of the ranker, additivity checked) -> evidence
    (which history items, intervals, trends back each feature group) ->
    reasons (strongest positive group with evidence, rules enforced) ->
    templates (texts from one data file) ; faithfulness (counterfactual
    check) ; summary (global mean |SHAP| per feature, saved with a bundle)

``Explainer(model).explain(ranked)`` is the entry point.
"""

from explain.attributions import Attribution, Contribution
from explain.errors import ExplainError, ModelMismatchError, TemplateError, UntruthfulReasonError
from explain.evidence import Evidence, EvidenceConfig, EvidenceItem
from explain.explainer import Explainer, ExplainerConfig, ItemExplanation
from explain.reasons import Reason
from explain.templates import Templates

__all__ = [
    "Attribution",
    "Contribution",
    "Evidence",
    "EvidenceConfig",
    "EvidenceItem",
    "ExplainError",
    "Explainer",
    "ExplainerConfig",
    "ItemExplanation",
    "ModelMismatchError",
    "Reason",
    "TemplateError",
    "Templates",
    "UntruthfulReasonError",
]
