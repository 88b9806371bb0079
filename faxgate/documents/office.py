"""Office documents (DOCX, ODT, XLSX, ...) to PDF through LibreOffice in headless mode."""

from __future__ import annotations

import contextlib
import os
import resource
import signal
import subprocess
from pathlib import Path

from faxgate.errors import DocumentError

from .detect import OFFICE_UNAVAILABLE_MESSAGE


def convert_to_pdf(source: Path, work_dir: Path, command: str | None, timeout_s: float) -> Path:
    """Convert `source` to PDF in `work_dir` with LibreOffice and return the PDF's path.

    Each conversion uses its own LibreOffice profile directory, so conversions
    can run in parallel. LibreOffice runs in the worker's process group, so
    killing a timed-out worker kills LibreOffice too.

    NOTE: only a stand-in for soffice has run in the tests; no real LibreOffice
    was installed. LibreOffice runs without the worker's memory limit, because
    it reserves far more address space than it uses; its time limit still applies.
    """
    if command is None:
        raise DocumentError(OFFICE_UNAVAILABLE_MESSAGE, code="office_unavailable")
    out_dir = work_dir / f"office-{source.stem}"
    profile = work_dir / f"office-profile-{source.stem}"
    out_dir.mkdir(parents=True, exist_ok=True)
    arguments = [
        command,
        "--headless",
        "--norestore",
        "--nologo",
        "--nolockcheck",
        f"-env:UserInstallation={profile.resolve().as_uri()}",
        "--convert-to",
        "pdf",
        "--outdir",
        str(out_dir),
        str(source),
    ]
    process = subprocess.Popen(
        arguments,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        env={**os.environ, "HOME": str(work_dir)},
        preexec_fn=_lift_memory_limit,
    )
    try:
        output, _ = process.communicate(timeout=timeout_s)
    except subprocess.TimeoutExpired as exc:
        _kill(process)
        raise DocumentError(
            f"LibreOffice did not convert the document within {timeout_s:g} s",
            code="timeout",
        ) from exc

    produced = out_dir / f"{source.stem}.pdf"
    if process.returncode != 0 or not produced.is_file():
        detail = output.decode("utf-8", "replace").strip()[-300:]
        raise DocumentError(
            "LibreOffice could not convert the document", code="render_failed", detail=detail
        )
    return produced


def _lift_memory_limit() -> None:
    _, hard = resource.getrlimit(resource.RLIMIT_AS)
    resource.setrlimit(resource.RLIMIT_AS, (hard, hard))


def _kill(process: subprocess.Popen[bytes]) -> None:
    # LibreOffice's launcher starts soffice.bin as its child: find the whole
    # tree before killing, because a killed parent's children are re-parented.
    for pid in [*_descendants(process.pid), process.pid]:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    process.wait()


def _descendants(pid: int) -> list[int]:
    children_file = Path(f"/proc/{pid}/task/{pid}/children")
    try:
        children = [int(value) for value in children_file.read_text().split()]
    except OSError:
        return []
    found = []
    for child in children:
        found.extend(_descendants(child))
        found.append(child)
    return found
