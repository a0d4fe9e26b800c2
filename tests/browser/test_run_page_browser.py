"""The run page's Models table on a phone: every header stays over its own column."""

import pytest

from tests.dashboard.test_run_page_inputs import log_model
from tracker import services

# The left edge of each header and of the cell below it, in order.
COLUMN_EDGES = """() => {
    const table = document.querySelector("table.models");
    const left = (cells) => [...cells].map((cell) => Math.round(cell.getBoundingClientRect().left));
    return [left(table.querySelectorAll("thead th")), left(table.querySelector("tbody tr").children)];
}"""


@pytest.fixture
def run_with_model(transactional_db):
    run = services.run_create(experiment=services.experiment_create(name="phone"), name="trained")
    log_model(run, "model")
    return run.run_id


@pytest.mark.parametrize("width", [1400, 390])
def test_the_models_headers_sit_over_their_columns(page, run_with_model, width):
    # The registry's list hid its fourth header on phones through a rule that also matched this
    # table: Role vanished and Step and Files each sat one column left of their values.
    page.set_viewport_size({"width": width, "height": 900})
    page.goto(f"/runs/{run_with_model}/")

    headers, cells = page.evaluate(COLUMN_EDGES)

    assert page.get_by_role("columnheader", name="Role").is_visible()
    assert headers == cells
