"""`hookline local` refuses a secrets file the receiver could only answer 503 with."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest
from hookline.errors import ConfigurationError
from hookline.local.console import Console
from hookline.local.resources import secret_document
from hookline.local.stack import LocalOptions, LocalStack

from tests.support.stack import ROOT

EXAMPLE = ROOT / "config" / "local-secrets.example.json"
UNREACHABLE_DATABASE = "postgresql://hookline@127.0.0.1:1/none"


def written(tmp_path: Path, **entries: object) -> Path:
    path = tmp_path / "secrets.json"
    path.write_text(json.dumps({**json.loads(EXAMPLE.read_text()), **entries}))
    return path


def test_the_example_file_is_accepted() -> None:
    assert json.loads(secret_document(EXAMPLE)) == json.loads(EXAMPLE.read_text())


@pytest.mark.parametrize(
    ("provider", "entry"),
    [
        ("stripe", "whsec_a_string_not_a_list"),
        ("stripe", [" "]),
        ("github", [""]),
        ("svix", ["whsec_"]),
        ("standard", ["whsec_not base64!"]),
        ("square", []),
    ],
    ids=["string", "blank", "empty", "whsec-no-key", "whsec-not-base64", "empty-list"],
)
def test_an_unusable_entry_is_refused_naming_the_provider_and_the_file(
    tmp_path: Path, provider: str, entry: object
) -> None:
    path = written(tmp_path, **{provider: entry})
    with pytest.raises(ConfigurationError) as caught:
        secret_document(path)
    message = str(caught.value)
    assert str(path) in message
    assert f"{provider}:" in message
    assert "a_string_not_a_list" not in message


def test_a_file_that_is_not_json_is_refused_naming_the_file(tmp_path: Path) -> None:
    path = tmp_path / "secrets.json"
    path.write_text('{"stripe": ["whsec_x"],')
    with pytest.raises(ConfigurationError, match=str(path)):
        secret_document(path)


def test_the_stack_refuses_to_start_before_starting_anything(tmp_path: Path) -> None:
    path = written(tmp_path, svix=["whsec_"])
    options = LocalOptions(
        project=ROOT,
        secrets_file=path,
        data_dir=tmp_path / "data",
        port=0,
        code="source",
        # Never reached: the secrets are checked before PostgreSQL or moto start.
        database_url=UNREACHABLE_DATABASE,
    )
    output = io.StringIO()
    with pytest.raises(ConfigurationError) as caught:
        LocalStack(options, Console(output)).start()
    assert str(path) in str(caught.value)
    assert "svix:" in str(caught.value)
    assert "migrations" not in output.getvalue()
    assert not (tmp_path / "data").exists()
