from __future__ import annotations

import pytest

from tests.integration.projections.support import create_live_table
from tests.integration.projections.timeline import CartTimeline


@pytest.fixture
def timeline(database_url: str) -> CartTimeline:
    """The example projector, with its live table created as a migration would."""
    projector = CartTimeline()
    create_live_table(database_url, projector)
    return projector
