"""One chaos network (real processes) for the whole module: starting it takes a while."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.chaos.harness import Network, running_network


@pytest.fixture(scope="module")
def chaos_network(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Network]:
    with running_network(tmp_path_factory.mktemp("chaos")) as network:
        yield network
