"""Tests of the packaged-data locator and the HTML environment built on it."""

from __future__ import annotations

import pytest

from fleet_ecs import resources
from fleet_ecs.report.html import href, html_environment


def test_locates_source_checkout_folders() -> None:
    assert (resources.templates_dir() / "report.html.j2").is_file()
    assert resources.inventories_dir().is_dir()
    assert "<!DOCTYPE html>" in resources.template_text("report.html.j2")


@pytest.mark.parametrize("bad", ["", "../pyproject.toml", "/etc/passwd", "probe/../../x"])
def test_rejects_paths_outside_templates(bad: str) -> None:
    with pytest.raises(ValueError):
        resources.template_text(bad)


def test_missing_template_is_a_clear_error() -> None:
    with pytest.raises(FileNotFoundError, match="no-such.j2"):
        resources.template_text("no-such.j2")


def test_html_environment_autoescapes() -> None:
    env = html_environment()
    assert env.from_string("{{ v }}").render(v="<b>&") == "&lt;b&gt;&amp;"


def test_href_quotes_each_segment() -> None:
    assert href("hosts/a b/report.txt") == "hosts/a%20b/report.txt"
    assert href('hosts/x"/<y>&') == "hosts/x%22/%3Cy%3E%26"
