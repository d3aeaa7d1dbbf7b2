"""Virtual environments the slow tests install tools into (Label Studio, Airflow): made once
under the test cache and reused, so only the first run pays for the download."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest


def test_cache() -> Path:
    """~/.cache/labelqa-test, or $LABELQA_TEST_CACHE."""
    return Path(os.environ.get("LABELQA_TEST_CACHE", Path.home() / ".cache" / "labelqa-test"))


def cached_venv(name: str, requirements: list[str]) -> Path:
    """A virtual environment `<cache>/<name>` with `requirements` (pip requirement lines)
    installed, reused while they are the same. The stamp is written only when the install
    finished, so an interrupted install is redone, not half-used."""
    cache = test_cache()
    venv = cache / name
    stamp = venv / "installed.txt"
    # no final newline: the venvs stamped before this helper existed (label-studio==...) stay valid
    wanted = "\n".join(requirements)
    if stamp.exists() and stamp.read_text() == wanted:
        return venv
    shutil.rmtree(venv, ignore_errors=True)
    cache.mkdir(parents=True, exist_ok=True)
    log = cache / f"{name}-install.log"
    with open(log, "w") as out:
        command = [sys.executable, "-m", "venv", str(venv)]
        if subprocess.run(command, stdout=out, stderr=subprocess.STDOUT,
                          timeout=600).returncode != 0:
            pytest.fail(f"creating {venv} failed: {log.read_text()[-3000:]}")
        (venv / "requirements.txt").write_text(wanted + "\n")
        command = [str(venv / "bin" / "python"), "-m", "pip", "install", "--quiet",
                   "--disable-pip-version-check", "-r", str(venv / "requirements.txt")]
        if subprocess.run(command, stdout=out, stderr=subprocess.STDOUT,
                          timeout=3600).returncode != 0:
            pytest.fail(f"installing {name} failed: {log.read_text()[-3000:]}")
    stamp.write_text(wanted)
    return venv
