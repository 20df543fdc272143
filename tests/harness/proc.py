"""Running commands: the ONE ``run()`` and the ONE ``kubectl()`` of the harness.

Every part of the harness (the local cluster, the real node, the bench, the proofs Molecule runs, the
integration tier's fixtures) runs its tools through these two functions, so a command that fails or hangs
always reports itself the same way: the command line, its exit status and its output, in one message.

Each caller keeps its own kind of failure: ``error`` is the exception type raised (called with the
message), e.g. the local cluster's ``ClusterError`` (printed without a traceback), a proof's ``ProofFailed``
(recorded as ``PROOF <name> FAILED: ...``) or ``AssertionError`` in a test.
"""

from __future__ import annotations

import os
import shlex
import subprocess
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

# How much of a failed command's stdout and stderr (each, the end of it) the error message carries.
OUTPUT_TAIL = 4000


class HarnessError(RuntimeError):
    """A failure whose message is meant for a person: the harness's commands print it without a traceback."""


class CommandFailed(HarnessError):
    """A command exited non-zero or timed out (the default ``error`` of ``run()``)."""


def describe(cmd: Sequence[str]) -> str:
    """The command line as a shell would read it (shortened: a kubeconfig or a manifest can be long)."""
    text = shlex.join(str(part) for part in cmd)
    return text if len(text) <= 300 else text[:297] + "..."


def run(
    cmd: Sequence[str | os.PathLike[str]],
    *,
    env: Mapping[str, str] | None = None,
    cwd: Path | str | None = None,
    stdin: str | None = None,
    timeout: float = 300,
    check: bool = True,
    error: Callable[[str], BaseException] = CommandFailed,
) -> subprocess.CompletedProcess[str]:
    """Run ``cmd`` with its output captured as text and return the finished process.

    ``env`` replaces the environment when given (``{**os.environ, ...}`` to extend it). With ``check`` a
    non-zero exit raises ``error``; a timeout raises it whatever ``check`` says, because a command that did
    not finish has no result to inspect. Either message names the command and ends with its output.
    """
    argv = [str(part) for part in cmd]
    try:
        proc = subprocess.run(
            argv,
            env=None if env is None else dict(env),
            cwd=cwd,
            input=stdin,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
    except subprocess.TimeoutExpired as exc:
        output = _text(exc.stdout)[-OUTPUT_TAIL:] + _text(exc.stderr)[-OUTPUT_TAIL:]
        raise error(f"{describe(argv)} timed out after {timeout:.0f} s:\n{output}".rstrip()) from exc
    if check and proc.returncode != 0:
        output = proc.stdout[-OUTPUT_TAIL:] + proc.stderr[-OUTPUT_TAIL:]
        raise error(f"{describe(argv)} exited {proc.returncode}:\n{output}".rstrip())
    return proc


def kubectl(
    *args: str,
    kubeconfig: Path | str | None = None,
    request_timeout: str | None = "20s",
    timeout: float = 60,
    check: bool = True,
    stdin: str | None = None,
    env: Mapping[str, str] | None = None,
    error: Callable[[str], BaseException] = CommandFailed,
) -> subprocess.CompletedProcess[str]:
    """``kubectl [--kubeconfig=K] [--request-timeout=T] ARGS`` through ``run()``.

    Without ``kubeconfig`` kubectl reads ``$KUBECONFIG`` (how the proofs Molecule runs are configured);
    ``request_timeout=None`` leaves kubectl's own (unlimited) request timeout.
    """
    cmd = ["kubectl"]
    if kubeconfig is not None:
        cmd.append(f"--kubeconfig={kubeconfig}")
    if request_timeout is not None:
        cmd.append(f"--request-timeout={request_timeout}")
    return run([*cmd, *args], env=env, stdin=stdin, timeout=timeout, check=check, error=error)


def _text(data: bytes | str | None) -> str:
    if data is None:
        return ""
    return data.decode(errors="replace") if isinstance(data, bytes) else data
