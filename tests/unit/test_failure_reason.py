"""The failure reason: the exception the code died of (read from real interpreters' output), and the
hints for the pitfalls of the contributor guide's sample."""

from __future__ import annotations

import subprocess
import sys

import pytest

from leadersboard.runner.failure_reason import GUIDE, MAX_LINE_CHARS, read_failure

TUPLE_HINT = "Engine.from_config returns a tuple"
KEYS_HINT = "image_AUROC and image_F1Score"
NETWORK_HINT = "jobs have no network"
GPU_HINT = "this worker has no GPU"


def output_of(code: str) -> str:
    """stdout and stderr of a real Python running `code`, as the job log holds them."""
    done = subprocess.run([sys.executable, "-u", "-c", code], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                          text=True, check=False)
    assert done.returncode != 0
    return done.stdout


def test_the_exception_not_the_last_printed_line() -> None:
    log = output_of("import atexit\n"
                    "atexit.register(print, 'Given value: {\"a\": 1, ...}')\n"
                    "print('Epoch 1: loss 0.5')\n"
                    "engine = (1, 2, 3)\n"
                    "engine.train()\n")
    assert log.rstrip().endswith("Given value: {\"a\": 1, ...}")
    failure = read_failure("[leadersboard] job x: u/padim\n" + log)
    assert failure.line == "AttributeError: 'tuple' object has no attribute 'train'"
    assert failure.hint is not None and TUPLE_HINT in failure.hint
    assert str(failure).startswith("AttributeError: 'tuple' object has no attribute 'train' (hint: ")
    assert GUIDE in str(failure)


def test_chained_exceptions_give_the_last_one_and_their_chain_gives_the_hint() -> None:
    log = output_of("import urllib.request\n"
                    "try:\n"
                    "    raise OSError('[Errno -3] Temporary failure in name resolution')\n"
                    "except OSError as exc:\n"
                    "    raise RuntimeError('could not load the backbone resnet18') from exc\n")
    failure = read_failure(log)
    assert failure.line == "RuntimeError: could not load the backbone resnet18"
    assert failure.hint is not None and NETWORK_HINT in failure.hint


def test_the_results_keys_hint() -> None:
    as_dict = read_failure(output_of("results = {'image_AUROC': 1.0}\nresults['auroc']\n"))
    assert as_dict.line == "KeyError: 'auroc'" and as_dict.hint is not None and KEYS_HINT in as_dict.hint
    as_list = read_failure(output_of("results = [{'image_AUROC': 1.0}]\nresults['auroc']\n"))
    assert as_list.line == "TypeError: list indices must be integers or slices, not str"
    assert as_list.hint is not None and KEYS_HINT in as_list.hint


@pytest.mark.parametrize("line", [
    "AssertionError: Torch not compiled with CUDA enabled",
    "RuntimeError: No CUDA GPUs are available",
    "RuntimeError: Found no NVIDIA driver on your system. Please check that you have an NVIDIA GPU",
    "lightning.fabric.utilities.exceptions.MisconfigurationException: No supported gpu backend found!",
    "lightning.fabric.utilities.exceptions.MisconfigurationException: `CUDAAccelerator` can not run on your "
    "system since the accelerator is not available.",
])
def test_a_cuda_error_on_a_cpu_worker(line: str) -> None:
    log = f"Traceback (most recent call last):\n  File \"main.py\", line 3, in <module>\n    main()\n{line}\n"
    failure = read_failure(log)
    assert failure.line == line and failure.hint is not None and GPU_HINT in failure.hint


@pytest.mark.parametrize("line", [
    "huggingface_hub.errors.LocalEntryNotFoundError: An error happened while trying to locate the file on the Hub",
    "OSError: We couldn't connect to 'https://huggingface.co' to load the files, and couldn't find them in the "
    "cached files. Check your connection or see how to run the library in offline mode.",
    "urllib.error.URLError: <urlopen error [Errno 111] Connection refused>",
])
def test_a_weight_download_without_network(line: str) -> None:
    failure = read_failure(f"Traceback (most recent call last):\n  File \"x.py\", line 1, in <module>\n{line}\n")
    assert failure.line == line and failure.hint is not None and NETWORK_HINT in failure.hint


def test_without_a_traceback() -> None:
    assert read_failure("") == read_failure("[leadersboard] running main.py\n")
    assert read_failure("").line == "it printed nothing"
    plain = read_failure("loading\nsomething went wrong, giving up\n\n")
    assert (plain.line, plain.hint) == ("something went wrong, giving up", None)
    parser = read_failure("usage: main.py [-h]\nmain.py: error: unrecognized arguments: --fast\nGiven value: {}\n")
    assert parser.line == "main.py: error: unrecognized arguments: --fast"


def test_a_traceback_cut_short_by_the_logs_tail_is_passed_over() -> None:
    log = ("Traceback (most recent call last):\n  File \"a.py\", line 1, in <module>\nValueError: first\n"
           "Traceback (most recent call last):\n  File \"a.py\", line 9, in <module>\n")
    assert read_failure(log).line == "ValueError: first"


def test_bounded_and_without_tokens() -> None:
    long = read_failure("ValueError: " + "x" * 5000 + "\n")
    assert len(long.line) == MAX_LINE_CHARS + 1 and long.line.endswith("…")
    token = read_failure(output_of("raise PermissionError('token lbt_AbCdEf0123456789xyz refused')"))
    assert token.line == "PermissionError: token lbt_… refused"


def test_an_exception_line_may_be_followed_by_notes_and_output() -> None:
    log = output_of("e = ValueError('bad category pcb9')\ne.add_note('known: pcb1')\n"
                    "import atexit\natexit.register(print, 'bye')\nraise e\n")
    assert read_failure(log).line == "ValueError: bad category pcb9"


def test_a_traceback_drawn_by_rich() -> None:
    """anomalib installs rich's traceback handler: frames in a box, a message of several lines below it
    (here, the guide's pretrained backbone without network, as jsonargparse reports it)."""
    log = output_of("import rich.traceback\n"
                    "rich.traceback.install(width=80)\n"
                    "def build():\n"
                    "    raise ValueError('Does not validate against any of the Union subtypes\\n"
                    "Errors:\\n  - An error happened while trying to locate the file on the Hub and we cannot\\n"
                    "find the requested files in the local cache.\\nGiven value: Namespace(pre_trained=True)')\n"
                    "build()\n")
    assert "╭" in log and "Traceback (most recent call last):" not in log
    failure = read_failure(log)
    assert failure.line == "ValueError: Does not validate against any of the Union subtypes"
    assert failure.hint is not None and NETWORK_HINT in failure.hint
