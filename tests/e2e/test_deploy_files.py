"""The Dockerfile and compose.yaml cannot be run here (no container engine on the build
machine): these checks hold them to the repository instead. Every file the image copies
exists, every build step is a script of this repository, and the binary's build step is
scripts/build-release.sh, which scripts/test.sh runs on every suite run (with the debug
profile, so a broken build step fails the suite without a release build). compose.yaml
parses, and every agentd variable it sets is one agentd reads.

Not covered: the base images, apt package names and the release profile itself.
"""

from __future__ import annotations

import os
import re
import shlex
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]


def dockerfile_instructions() -> list[tuple[str, str]]:
    """(instruction, arguments) pairs, continuation lines joined, comments dropped."""
    text = (ROOT / "Dockerfile").read_text()
    logical, current = [], ""
    for line in text.splitlines():
        if line.lstrip().startswith("#") or not line.strip():
            continue
        current += line.rstrip()
        if current.endswith("\\"):
            current = current[:-1] + " "
            continue
        logical.append(current.strip())
        current = ""
    return [tuple(line.split(None, 1)) for line in logical]  # type: ignore[misc]


def test_every_file_the_image_copies_from_the_repository_exists() -> None:
    copies = [args for op, args in dockerfile_instructions() if op == "COPY" and "--from=" not in args]
    assert copies
    for args in copies:
        *sources, _destination = shlex.split(args)
        for source in sources:
            assert (ROOT / source).exists(), f"Dockerfile copies {source}, which is not in the repository"


def test_every_build_step_is_a_script_of_the_repository() -> None:
    runs = [args for op, args in dockerfile_instructions() if op == "RUN"]
    scripts = [word for args in runs for word in shlex.split(args) if word.startswith("scripts/")]
    assert "scripts/build-release.sh" in scripts
    for script in scripts:
        path = ROOT / script
        assert path.is_file() and os.access(path, os.X_OK), f"{script} is not an executable script"


def test_the_suite_runs_the_build_step_of_the_image() -> None:
    test_sh = (ROOT / "scripts" / "test.sh").read_text()
    assert re.search(r"^\./scripts/build-release\.sh --profile dev ", test_sh, re.M), (
        "scripts/test.sh must run scripts/build-release.sh, the Dockerfile's build step"
    )


def test_what_the_final_stage_copies_is_made_by_the_build_stage() -> None:
    instructions = dockerfile_instructions()
    runs = " ".join(args for op, args in instructions if op == "RUN")
    for op, args in instructions:
        if op == "COPY" and "--from=build" in args:
            source = shlex.split(args)[1]
            out_dir = "/" + source.strip("/").split("/")[0]
            assert out_dir in runs, f"no build step writes under {out_dir} ({source})"


def agentd_variables() -> set[str]:
    names = set()
    for path in (ROOT / "crates" / "agentd" / "src").rglob("*.rs"):
        names.update(re.findall(r'env\s*=\s*"([A-Z0-9_]+)"', path.read_text()))
        names.update(re.findall(r'env::var\("([A-Z0-9_]+)"\)', path.read_text()))
    return names


def test_compose_sets_only_variables_agentd_reads() -> None:
    compose = yaml.safe_load((ROOT / "compose.yaml").read_text())
    services = compose["services"]
    assert services["serve"]["command"] == ["serve"]
    assert services["worker"]["command"] == ["worker"]
    known = agentd_variables()
    for name in ("serve", "worker"):
        env = services[name]["environment"]
        assert env["DATABASE_URL"].startswith("postgres://")
        unknown = [var for var in env if var.startswith("AGENTD_") and var not in known]
        assert not unknown, f"compose.yaml sets variables agentd does not read: {unknown}"
