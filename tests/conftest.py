"""Suite-wide guards: no test touches the real user's data folder."""

import pytest

from fleet_ecs.transport.pypsrp_compat import make_pypsrp_thread_safe

# Tests build pypsrp clients in many threads directly, as the controller does.
make_pypsrp_thread_safe()


@pytest.fixture(autouse=True, scope="session")
def _private_data_home(tmp_path_factory):
    # scan and demo record every run in the history database under the user's data folder;
    # session-scoped, so that module-scoped fixtures (a shared demo run) are covered too.
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("XDG_DATA_HOME", str(tmp_path_factory.mktemp("xdg-data")))
        yield
