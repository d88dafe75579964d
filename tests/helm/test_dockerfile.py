"""The Dockerfile (no Docker engine here): its key properties, read as text, agree with the chart
and the package."""

from __future__ import annotations

import json
import re
import runpy
import tomllib
from dataclasses import dataclass
from typing import Any

import pytest
import yaml

from consumer.config import AppConfig
from tests.helm.helm_render import CHART_DIR, CONFIG_PATH, ROOT

DOCKERFILE = (ROOT / "Dockerfile").read_text(encoding="utf-8")
DOCKERIGNORE = (ROOT / ".dockerignore").read_text(encoding="utf-8").split()


@dataclass(frozen=True)
class Instruction:
    keyword: str
    argument: str


def instructions(text: str) -> list[Instruction]:
    joined = re.sub(r"\\\n", " ", text)
    parsed = []
    for raw in joined.splitlines():
        line = raw.strip()
        if line and not line.startswith("#"):
            keyword, _, argument = line.partition(" ")
            parsed.append(Instruction(keyword.upper(), argument.strip()))
    return parsed


def stages() -> list[list[Instruction]]:
    result: list[list[Instruction]] = []
    for instruction in instructions(DOCKERFILE):
        if instruction.keyword == "FROM":
            result.append([])
        if result:
            result[-1].append(instruction)
    return result


def only(stage: list[Instruction], keyword: str) -> str:
    (found,) = [i.argument for i in stage if i.keyword == keyword]
    return found


def test_multi_stage_build_on_a_slim_python_311() -> None:
    builder, runtime = stages()
    base = re.search(r"ARG PYTHON_IMAGE=(\S+)", DOCKERFILE)
    assert base is not None
    assert re.fullmatch(r"python:3\.11-slim(-\w+)?", base.group(1))
    assert only(builder, "FROM") == "${PYTHON_IMAGE} AS builder"
    assert only(runtime, "FROM") == "${PYTHON_IMAGE}"
    assert any(
        "pip wheel" in i.argument and '".[fast]"' in i.argument
        for i in builder
        if i.keyword == "RUN"
    )
    installs = [i.argument for i in runtime if i.keyword == "RUN" and "pip install" in i.argument]
    assert installs == [
        i for i in installs if "--no-index" in i and '"openai-capi-consumer[fast]"' in i
    ]
    assert installs


def test_runs_as_the_charts_non_root_user() -> None:
    runtime = stages()[-1]
    user = only(runtime, "USER")
    uid, _, gid = user.partition(":")
    values = yaml.safe_load((CHART_DIR / "values.yaml").read_text(encoding="utf-8"))
    assert int(uid) == values["podSecurityContext"]["runAsUser"] != 0
    assert int(gid) == values["podSecurityContext"]["runAsGroup"] != 0
    # USER comes after every step that needs root.
    keywords = [i.keyword for i in runtime]
    assert "RUN" not in keywords[keywords.index("USER") :]


def test_entrypoint_cmd_and_port_match_the_package_and_chart() -> None:
    runtime = stages()[-1]
    assert json.loads(only(runtime, "ENTRYPOINT")) == ["capi-consumer"]
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    assert "capi-consumer" in pyproject["project"]["scripts"]
    assert json.loads(only(runtime, "CMD")) == ["run", "--config", CONFIG_PATH]
    assert only(runtime, "EXPOSE") == str(AppConfig().observability.port)


def test_build_context_leaves_out_local_state() -> None:
    assert {".git", ".venv", "tests", "helm"} <= set(DOCKERIGNORE)
    for copied in re.findall(r"^COPY (\S+)", DOCKERFILE, flags=re.MULTILINE):
        assert copied not in DOCKERIGNORE


def test_builder_requires_the_compiled_reader() -> None:
    """The image never ships without the compiled Avro reader: its builder sets the variable
    that makes setup.py's extension mandatory (`make image-test` builds from a base without
    Python's headers and checks that the build fails)."""
    builder = stages()[0]
    env = " ".join(i.argument for i in builder if i.keyword == "ENV")
    assert re.search(r"\bREQUIRE_NATIVE_AVRO_READER=1\b", env)
    assert re.search(r"\bCAPI_CONSUMER_MYPYC=1\b", env)  # transforms/ compiled, as in CI
    keywords = [i.keyword for i in builder]
    wheel = next(n for n, i in enumerate(builder) if "pip wheel" in i.argument)
    assert keywords.index("ENV") < wheel


@pytest.mark.parametrize(
    ("required", "optional"), [(None, True), ("0", True), ("", True), ("1", False)]
)
def test_setup_py_makes_the_reader_mandatory_on_request(
    monkeypatch: pytest.MonkeyPatch, required: str | None, optional: bool
) -> None:
    import setuptools

    if required is None:
        monkeypatch.delenv("REQUIRE_NATIVE_AVRO_READER", raising=False)
    else:
        monkeypatch.setenv("REQUIRE_NATIVE_AVRO_READER", required)
    given: dict[str, Any] = {}
    monkeypatch.setattr(setuptools, "setup", lambda **kwargs: given.update(kwargs))
    runpy.run_path(str(ROOT / "setup.py"))
    extensions = {extension.name: extension.optional for extension in given["ext_modules"]}
    assert extensions == {
        "consumer.avro._avro_reader": optional,
        "transforms._sha256_hex": optional,
        "consumer.cli._json_values": optional,
    }
