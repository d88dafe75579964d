"""The mapping checked against the Avro reader schema: a typo in each kind of path is reported
with its dotted config key; the default sources all pass."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from consumer.avro.schema_check import mapping_schema_problems
from consumer.config import AppConfig
from tests.consumer.test_config import CLI
from transforms.compiled import _FIELDS


def config(**raw: Any) -> AppConfig:
    return AppConfig.model_validate(raw)


def test_the_default_sources_are_fields_of_the_schema_but_three_pre_hashed_ones() -> None:
    missing = {
        source
        for field, spec in _FIELDS.items()
        for source, _ in spec.chain
        if mapping_schema_problems(config(field_mapping={field: source}))
    }
    # Pre-hashed identities the bundled schema does not name: only extra properties carry them.
    assert missing == {"user.id_sha256", "user.firstname_sha256", "user.lastname_sha256"}


@pytest.mark.parametrize(
    ("raw", "key", "path"),
    [
        ({"field_mapping": {"data.amount": "revenu"}}, "field_mapping.data.amount", "revenu"),
        ({"field_mapping": {"id": "context.event_idd"}}, "field_mapping.id", "context.event_idd"),
        (
            {"field_mapping": {"user.emails_sha256": "user.mail"}},
            "field_mapping.user.emails_sha256",
            "user.mail",
        ),
        (
            {"field_mapping": {"data.contents.X.amount": "items.X.product.pricee"}},
            "field_mapping.data.contents.X.amount",
            "items.X.product.pricee",
        ),
        (
            {"field_mapping": {"source_url": "context.page.url.href"}},  # past a string
            "field_mapping.source_url",
            "context.page.url.href",
        ),
        (
            {"capi": {"routes": [{"field": "contxt.page.url", "values": ["x"], "pixel_id": "p"}]}},
            "capi.routes.0.field",
            "contxt.page.url",
        ),
    ],
)
def test_a_typo_in_each_kind_of_path_is_reported(raw: dict[str, Any], key: str, path: str) -> None:
    assert mapping_schema_problems(config(**raw)) == [
        f"{key}: {path!r} is not a field of schema tracking_event; "
        "only an extra property can fill it"
    ]


def test_item_paths_follow_a_repointed_contents_array() -> None:
    repointed = {"data.contents": "context.page.url", "data.contents.X.id": "items.X.id"}
    problems = mapping_schema_problems(config(field_mapping=repointed))
    assert [problem.split(":")[0] for problem in problems] == ["field_mapping.data.contents.X.id"]


def test_config_check_warns_by_default_and_fails_with_strict(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text("field_mapping:\n  data.amount: revenu\n  data.currency: currency\n")
    check = [CLI, "config", "check", "--mapping-only", "--config", str(path)]
    result = subprocess.run(check, capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr
    assert result.stderr.splitlines() == [
        "warning: field_mapping.data.amount: 'revenu' is not a field of schema tracking_event; "
        "only an extra property can fill it"
    ]
    assert yaml.safe_load(result.stdout)["field_mapping"]["data.amount"] == "revenu"
    strict = subprocess.run([*check, "--strict"], capture_output=True, text=True, check=False)
    assert strict.returncode == 2
    assert strict.stdout == ""
    assert strict.stderr.startswith("configuration error: field_mapping.data.amount: 'revenu'")
