"""The docs held to the code: docs/configuration.md to the settings the worker reads, docs/job-kinds.md to the kinds
table, and the README to its length and its map of docs/."""

import re
from pathlib import Path

from application.settings import Settings
from domain.kinds import KINDS

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs"
NOT_THE_WORKERS = {"SSL_CERT_FILE", "HTTPS_PROXY", "HTTP_PROXY", "NO_PROXY"}  # read by its libraries, documented


def table_rows(page: Path) -> list[list[str]]:
    """Each row of the page's tables, as its cells; header and rule rows left out."""
    rows = [line.strip().strip("|").split(" | ") for line in page.read_text().splitlines() if line.startswith("| ")]
    return [
        cells for cells in rows if not set(cells[0]) <= {"-", " "} and not cells[0].startswith(("variable", "kind"))
    ]


def test_every_variable_the_worker_reads_is_documented_and_no_other() -> None:
    documented = {
        name for cells in table_rows(DOCS / "configuration.md") for name in re.findall(r"`([A-Z][A-Z0-9_]+)`", cells[0])
    }
    read = set(Settings.model_fields)
    assert read - documented == set(), "read by the worker, missing from docs/configuration.md"
    assert documented - read - NOT_THE_WORKERS == set(), "in docs/configuration.md, read by nothing"


def test_every_kind_is_documented_with_its_route_and_result_field_and_no_other() -> None:
    rows = table_rows(DOCS / "job-kinds.md")
    for kind in KINDS:
        row = next((cells for cells in rows if f"`{kind.task}`" in cells[0]), None)
        assert row is not None, f"{kind.task} has no row in docs/job-kinds.md"
        assert f"`{kind.route}`" in row[1], (kind.task, row)
        assert f"`{kind.result_field}`" in row[3] or kind.result_fields is not None, (kind.task, row)
    named = {name for cells in rows for name in re.findall(r"`([a-z]+/[a-z-]+)`", cells[0])}
    assert named <= {kind.task for kind in KINDS}, "docs/job-kinds.md names a kind the table lacks"


def test_the_readme_is_a_front_door_whose_map_points_at_every_page() -> None:
    readme = (ROOT / "README.md").read_text()
    assert len(readme.splitlines()) <= 200
    linked = set(re.findall(r"\]\(docs/([a-z-]+\.md)\)", readme))
    assert linked == {page.name for page in DOCS.glob("*.md")}
    for page in DOCS.glob("*.md"):
        for target in re.findall(r"\]\(([a-z-]+\.md)(?:#[a-z-]+)?\)", page.read_text()):
            assert (DOCS / target).exists(), f"{page.name} links to {target}, which does not exist"
