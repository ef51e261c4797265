"""Typed errors of the AMI side. Like theo_ray.errors, each keeps its data in plain
attributes and rebuilds from `args`, so it survives pickling across Ray actor calls."""

from __future__ import annotations

from theo_ray.errors import TheoError


class AmiError(TheoError):
    """Base of every AMI failure."""


class AmiNotConnected(AmiError):
    """No logged-in AMI session right now (PBX down, reconnecting, or bad credentials)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason

    def __str__(self) -> str:
        return f"AMI not connected: {self.reason}"


class AmiAuthenticationFailed(AmiError):
    """The PBX refused the AMI username/secret."""

    def __init__(self, username: str, message: str) -> None:
        super().__init__(username, message)
        self.username = username
        self.message = message

    def __str__(self) -> str:
        return f"AMI login as '{self.username}' refused: {self.message}"


class AmiConnectionLost(AmiError):
    """The AMI connection dropped while an action was waiting for its response."""

    def __init__(self, action: str) -> None:
        super().__init__(action)
        self.action = action

    def __str__(self) -> str:
        return f"AMI connection lost while waiting for {self.action}"


class AmiTimeout(AmiError):
    """The PBX did not answer an action in time."""

    def __init__(self, action: str, timeout_s: float) -> None:
        super().__init__(action, timeout_s)
        self.action = action
        self.timeout_s = timeout_s

    def __str__(self) -> str:
        return f"AMI {self.action} not answered within {self.timeout_s:g} s"


class AmiActionFailed(AmiError):
    """The PBX answered `Response: Error` for a reason other than a missing channel."""

    def __init__(self, action: str, message: str) -> None:
        super().__init__(action, message)
        self.action = action
        self.message = message

    def __str__(self) -> str:
        return f"AMI {self.action} failed: {self.message}"


class ChannelGone(AmiError):
    """The caller's channel of this session no longer exists (caller hung up, call ended)."""

    def __init__(self, session_id: str, detail: str) -> None:
        super().__init__(session_id, detail)
        self.session_id = session_id
        self.detail = detail

    def __str__(self) -> str:
        return f"channel of session {self.session_id} is gone: {self.detail}"


class SessionAlreadyEnded(AmiError):
    """A different final action already ran for this session (e.g. hang-up after a transfer)."""

    def __init__(self, session_id: str, earlier_action: str) -> None:
        super().__init__(session_id, earlier_action)
        self.session_id = session_id
        self.earlier_action = earlier_action

    def __str__(self) -> str:
        return f"session {self.session_id} already ended by {self.earlier_action}"
