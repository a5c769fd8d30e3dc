"""Every user error is one InventoryError naming the file, the line or host, and the problem.

Each file under data/errors/ starts with ``# expect: <text>``: the message must be
``<path>, <text>...`` (or ``<path>: <text>`` when the problem has no line).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from fleet_ecs.errors import EXIT_CANNOT_RUN, InventoryError
from fleet_ecs.inventory import load_inventory

DATA = Path(__file__).parent / "data"
ERROR_FILES = sorted((DATA / "errors").iterdir())
SECRET = "Hunter2-secret"


def _expected(path: Path) -> str:
    first = path.read_text(encoding="utf-8").splitlines()[0]
    assert first.startswith("# expect: "), path
    return first[len("# expect: ") :]


@pytest.mark.parametrize("path", ERROR_FILES, ids=[p.name for p in ERROR_FILES])
def test_error_file(path: Path) -> None:
    with pytest.raises(InventoryError) as caught:
        load_inventory(path)
    message = str(caught.value)
    expected = _expected(path)
    separator = ", " if expected.startswith("line ") else ": "
    assert message.startswith(f"{path}{separator}{expected}"), message
    assert caught.value.path == str(path)
    assert caught.value.exit_code == EXIT_CANNOT_RUN
    assert SECRET not in message
    assert "\n" not in message


def test_error_files_cover_every_format() -> None:
    suffixes = {p.suffix for p in ERROR_FILES}
    assert {".yaml", ".ini", ".csv", ".txt"} <= suffixes


def test_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "nope.yaml"
    with pytest.raises(InventoryError, match=r"nope\.yaml: inventory file not found$"):
        load_inventory(path)


def test_directory(tmp_path: Path) -> None:
    with pytest.raises(InventoryError, match="is a directory"):
        load_inventory(tmp_path)


def test_not_utf8(tmp_path: Path) -> None:
    path = tmp_path / "latin1.txt"
    path.write_bytes(b"web\xe901\n")
    with pytest.raises(InventoryError, match="not UTF-8 text"):
        load_inventory(path)


def test_where_field_is_structured() -> None:
    with pytest.raises(InventoryError) as caught:
        load_inventory(DATA / "errors" / "bad_auth.yaml")
    assert caught.value.where == "line 4 (host web01)"
    assert caught.value.problem.startswith("unknown auth method 'kerbros'")


def test_refusal_says_what_to_use_instead() -> None:
    with pytest.raises(InventoryError) as caught:
        load_inventory(DATA / "errors" / "ini_password.ini")
    message = str(caught.value)
    assert "fleet_ecs_credential=env:NAME" in message
    assert "FLEET_ECS_CREDENTIAL" in message
    assert "prompt" in message
