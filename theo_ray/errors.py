"""Typed errors shared by the library, the actors and the deployments.

Exceptions cross Ray boundaries by pickling, so each keeps its data in plain attributes
and rebuilds from `args` (Ray re-raises them on the caller side as a subclass of the
original type, so `except InvalidRequest` works across a DeploymentHandle).
"""

from __future__ import annotations


class TheoError(Exception):
    """Base of every error Theo raises on purpose."""


class ConfigError(TheoError):
    """A configuration file or environment override is wrong; the message names the key."""

    def __init__(self, key: str, problem: str) -> None:
        super().__init__(key, problem)
        self.key = key
        self.problem = problem

    def __str__(self) -> str:
        return f"config error at '{self.key}': {self.problem}"


class InvalidRequest(TheoError):
    """A request to a deployment or actor is malformed; the replica stays healthy."""

    def __init__(self, field: str, reason: str) -> None:
        super().__init__(field, reason)
        self.field = field
        self.reason = reason

    def __str__(self) -> str:
        return f"invalid request: {self.field}: {self.reason}"


class ModelUnavailable(TheoError):
    """A model could not be loaded or assembled (missing package, bad checksum, ...)."""


class BackendError(TheoError):
    """A model backend failed while serving a valid request."""


class CallDataSetupError(TheoError):
    """The call-data cluster refused a setup step (template, ILM policy, write alias) or
    could not be reached for it; `step` names the request and `reason` the cluster's answer."""

    def __init__(self, step: str, reason: str) -> None:
        super().__init__(step, reason)
        self.step = step
        self.reason = reason

    def __str__(self) -> str:
        return f"call-data setup failed at {self.step}: {self.reason}"
