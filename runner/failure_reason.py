"""Why a job's code failed, in one line: the exception it died of, not whatever it printed last.

Read from the end of the job log: the last `Traceback (most recent call last):` block's exception
line (`AttributeError: 'tuple' object has no attribute 'train'`), whatever was printed after it;
else argparse's `error:` line; else the last line printed. Known pitfalls of anomalib submissions
get a short hint pointing to the participants' guide (docs/submitting.md, "When a job fails").
The reason is the participant's own output: bounded, tokens masked, escaped where it is shown.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

TRACEBACK = "Traceback (most recent call last):"
RICH_BOX = "╭│╰"  # rich's traceback: its frames in a box, the exception line below it
CHAINED = ("During handling of the above exception, another exception occurred:",
           "The above exception was the direct cause of the following exception:")
PLATFORM_PREFIX = "[leadersboard]"  # the worker's own lines in the job log
MAX_LINE_CHARS = 400
EXCEPTION_LINE = re.compile(r"[A-Za-z_][\w.]*(: .*)?")  # `KeyError: 'auroc'`, `torch.OutOfMemoryError: ...`
ARGPARSE_ERROR = re.compile(r"\S+: error: .+")
TOKEN = re.compile(r"\b(lb[a-z]?_)[A-Za-z0-9_-]{8,}")  # the platform's tokens (lbt_...), should one be printed
GUIDE = "see docs/submitting.md, 'When a job fails'"


@dataclass(frozen=True)
class Hint:
    """A known pitfall: what gives it away (in the exception line, or anywhere in its traceback) and what to do."""

    name: str
    in_line: tuple[re.Pattern[str], ...]
    in_traceback: tuple[re.Pattern[str], ...]
    advice: str

    def matches(self, line: str, traceback: str) -> bool:
        return any(p.search(line) for p in self.in_line) or any(p.search(traceback) for p in self.in_traceback)


def _any(*patterns: str) -> tuple[re.Pattern[str], ...]:
    return tuple(re.compile(p, re.I) for p in patterns)


HINTS = (
    Hint("engine-tuple", _any(r"^AttributeError: 'tuple' object has no attribute"), (),
         "Engine.from_config returns a tuple: engine, model, datamodule = Engine.from_config(...), then "
         "engine.fit(model=model, datamodule=datamodule)"),
    Hint("result-keys", _any(r"^KeyError: '(auroc|f1_score)'", r"^TypeError: list indices must be integers"), (),
         "engine.test() returns a list of dicts keyed image_AUROC and image_F1Score: "
         "results = engine.test(...)[0]; mlflow.log_metric('auroc', results['image_AUROC'])"),
    Hint("cuda-on-cpu",
         _any(r"Torch not compiled with CUDA", r"No CUDA GPUs are available", r"Found no NVIDIA driver",
              r"CUDA is not available", r"MisconfigurationException.*\b(gpu|cuda)\b",
              r"\b(GPU|CUDA)Accelerator\b.*not available"), (),
         "this worker has no GPU: set trainer.accelerator to auto (or cpu) in the config"),
    Hint("no-network",
         _any(r"LocalEntryNotFoundError", r"offline mode", r"HF_HUB_OFFLINE"),
         _any(r"Temporary failure in name resolution", r"Name or service not known", r"Connection refused",
              r"Network is unreachable", r"urlopen error", r"Failed to establish a new connection",
              r"MaxRetryError", r"LocalEntryNotFoundError", r"huggingface_hub\.errors", r"requests\.exceptions\."
              r"ConnectionError", r"Cannot reach https?://", r"locate the file on the Hub",
              r"check your (internet )?connection"),
         "jobs have no network, so weights cannot be downloaded: use pre_trained: false, or weights the "
         "operators provide"),
)


@dataclass(frozen=True)
class Failure:
    """What the log says the code died of."""

    line: str  # the exception line (or the best line there is)
    hint: str | None = None

    def __str__(self) -> str:
        return f"{self.line} (hint: {self.hint}; {GUIDE})" if self.hint else self.line


def read_failure(text: str) -> Failure:
    """The failure the end of a job log shows (`text`: its tail)."""
    lines = [line for line in text.splitlines() if not line.startswith(PLATFORM_PREFIX)]
    found = _exception(lines)
    if found is not None:
        line, chain = found
        return Failure(_clean(line), _hint(line, "\n".join(chain)))
    printed = [line for line in lines if line.strip()]
    for line in reversed(printed):
        if ARGPARSE_ERROR.fullmatch(line.strip()):
            return Failure(_clean(line.strip()), _hint(line.strip(), ""))
    if not printed:
        return Failure("it printed nothing")
    return Failure(_clean(printed[-1].strip()), _hint(printed[-1].strip(), ""))


def _exception(lines: list[str]) -> tuple[str, list[str]] | None:
    """The last traceback's exception line, and the lines of its whole chain of exceptions."""
    headers = [i for i, line in enumerate(lines) if _is_header(line)]
    for start in reversed(headers):
        line = _exception_line(lines[start + 1:])
        if line is None:
            continue  # cut short (the log's tail began inside it), or not a real traceback
        first = start
        while (previous := _previous_header(lines, headers, first)) is not None:
            first = previous
        return line, lines[first:]
    return None


def _is_header(line: str) -> bool:
    """Python's traceback header, or the top of the box that `rich` (installed by anomalib) draws instead."""
    text = line.strip()
    return text == TRACEBACK or (text.startswith(RICH_BOX[0]) and TRACEBACK.rstrip(":") in text)


def _exception_line(after_header: Iterable[str]) -> str | None:
    """The first line not indented (nor inside rich's box) after a traceback's frames: the exception."""
    for line in after_header:
        if not line.strip() or line[:1].isspace() or line[:1] in RICH_BOX:
            continue
        return line.strip() if EXCEPTION_LINE.fullmatch(line.strip()) else None
    return None


def _previous_header(lines: list[str], headers: list[int], start: int) -> int | None:
    """The traceback this one was chained to (the line before it is a chaining sentence), if any."""
    before = [line.strip() for line in lines[:start] if line.strip()]
    if not before or before[-1] not in CHAINED:
        return None
    earlier = [i for i in headers if i < start]
    return earlier[-1] if earlier else None


def _hint(line: str, traceback: str) -> str | None:
    return next((hint.advice for hint in HINTS if hint.matches(line, traceback)), None)


def _clean(line: str) -> str:
    line = TOKEN.sub(r"\1…", line)
    return line if len(line) <= MAX_LINE_CHARS else line[:MAX_LINE_CHARS] + "…"
