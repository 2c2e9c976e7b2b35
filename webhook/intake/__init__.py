"""Push handling: what a push or an upload submits, checked against the rules, admitted under the
limits, and handed over as jobs. Only the service uses it."""

from .intake import HookReply, Intake, JobRefused

__all__ = ["HookReply", "Intake", "JobRefused"]
