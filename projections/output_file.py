"""A document is written whole or not at all: to a temporary file beside its target,
renamed into place only when complete (and checked). A failure, or Ctrl-C, removes
the temporary file and leaves the target as it was."""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path


class OutputPathError(ValueError):
    """The output file cannot be written there."""


def check_writable(out: Path, suffixes: tuple[str, ...]) -> Path:
    """The target, refused early (nothing written) when it cannot be written."""
    if out.suffix.lower() not in suffixes:
        raise OutputPathError(f"--out: {out} must end in {' or '.join(suffixes)}")
    if out.is_dir():
        raise OutputPathError(f"--out: {out} is a directory")
    folder = out.parent if str(out.parent) else Path(".")
    if not folder.is_dir():
        raise OutputPathError(f"cannot write {out}: no such directory {folder}")
    if not os.access(folder, os.W_OK | os.X_OK) or (out.exists() and not os.access(out, os.W_OK)):
        raise OutputPathError(f"cannot write {out}: permission denied")
    return out


@contextlib.contextmanager
def replaced_on_success(out: Path) -> Iterator[Path]:
    """A temporary path beside `out`; renamed onto `out` when the block succeeds."""
    try:
        handle, name = tempfile.mkstemp(prefix=f".{out.name}.", suffix=".part",
                                        dir=out.parent if str(out.parent) else ".")  # fmt: skip
    except OSError as exc:
        raise OutputPathError(f"cannot write {out}: {exc.strerror}") from None
    os.close(handle)
    temporary = Path(name)
    try:
        yield temporary
        with open(temporary, "rb+") as written:
            os.fsync(written.fileno())
        os.chmod(temporary, 0o644)
        os.replace(temporary, out)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            temporary.unlink()
        raise
