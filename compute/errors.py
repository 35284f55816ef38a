"""Errors that carry a message meant for the researcher, shown as-is in the page and the CLI."""


class WorkbenchError(Exception):
    """A problem with the user's input or environment that has a clear, human message."""


class ModelNotFound(WorkbenchError):
    pass


class ModelLoadError(WorkbenchError):
    pass


class BadInput(WorkbenchError):
    pass


class StaticExportUnavailable(WorkbenchError):
    pass


class JobCancelled(Exception):
    """Raised inside a job when the user asked to cancel it."""
