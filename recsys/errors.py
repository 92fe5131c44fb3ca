"""Domain errors of ``recsys``.

Every exception subclasses a built-in so callers can catch it broadly, and every
message says what is wrong and what to do about it. Only ``api`` maps these to
HTTP status codes or exit codes.
"""

from __future__ import annotations

from dataclasses import dataclass

MAX_PROBLEMS_SHOWN = 50


class ClearshelfError(Exception):
    """Base class of every error clearshelf raises on purpose."""


@dataclass(frozen=True)
class Problem:
    """One thing wrong with an input file, located as precisely as we can.

    ``row`` is the 1-based data row (the header is not a row), or ``None`` when
    the problem concerns the whole file or a whole column. For CSV files ``line``
    is the line number in the file (the header is line 1).
    """

    file: str
    row: int | None
    column: str | None
    message: str
    line: int | None = None  # line in a text file, when it differs from the row

    def __str__(self) -> str:
        where = self.file
        if self.row is not None:
            where += f", row {self.row}"
            if self.line is not None:
                where += f" (line {self.line})"
        if self.column is not None:
            where += f", column '{self.column}'"
        return f"{where}: {self.message}"


class DataValidationError(ClearshelfError, ValueError):
    """Input data failed validation; nothing was written.

    ``problems`` lists every problem found, up to a cap; ``total`` is how many
    were found in all.
    """

    def __init__(self, problems: list[Problem], *, total: int | None = None) -> None:
        self.problems = problems[:MAX_PROBLEMS_SHOWN]
        self.total = total if total is not None else len(problems)
        lines = [str(p) for p in self.problems]
        more = self.total - len(self.problems)
        if more > 0:
            lines.append(f"... and {more} more problems")
        head = f"{self.total} problem{'s' if self.total != 1 else ''} found; nothing was imported"
        super().__init__(head + ":\n" + "\n".join(f"  - {line}" for line in lines))


class InputFileError(ClearshelfError, ValueError):
    """An input file cannot be read at all (missing, unknown format, not a table)."""


class StoreError(ClearshelfError, RuntimeError):
    """The store cannot be reached or is in a state we cannot work with."""


class NotFittedError(ClearshelfError, RuntimeError):
    """A component was used before ``fit``."""

    def __init__(self, component: str) -> None:
        super().__init__(f"{component} is not fitted yet: call fit(...) before using it")


class DatasetError(ClearshelfError, ValueError):
    """A real dataset directory is missing files or has an unexpected layout."""


class BundleError(ClearshelfError, ValueError):
    """A model bundle on disk is missing, incomplete or from an incompatible version."""


class ConfigError(ClearshelfError, ValueError):
    """A component's configuration is out of range or names an unknown option."""


class TrainingDataError(ClearshelfError, ValueError):
    """The training data cannot train this component (too little of it, or the wrong kind)."""


class EvaluationError(ClearshelfError, ValueError):
    """An evaluation was asked for something inconsistent (shapes, k, unknown models)."""


class UnknownItemError(ClearshelfError, ValueError):
    """Events or scores name items the model's catalog does not have.

    ``items`` holds the unknown ids (or indices) as given.
    """

    def __init__(self, items: list[object], *, n_items: int | None = None) -> None:
        self.items = items
        shown = ", ".join(repr(i) for i in items[:5]) + (f" and {len(items) - 5} more" if len(items) > 5 else "")
        where = f" (valid indices are 0..{n_items - 1})" if n_items is not None else ""
        super().__init__(
            f"{len(items)} unknown item{'s' if len(items) != 1 else ''}: {shown}{where}; "
            "import them into the catalog and retrain, or leave them out"
        )


class InvalidEventsError(ClearshelfError, ValueError):
    """Live events passed to the model are malformed (columns, types, event types)."""


class InvalidHistoryError(ClearshelfError, ValueError):
    """A counterfactual history row has the wrong shape or negative weights."""
