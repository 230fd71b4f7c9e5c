"""Makes each test's outcome visible to fixtures (request.node.rep_call), to print the box's state
when a system test fails."""
import pytest


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item, call):
    rep = yield
    setattr(item, f"rep_{rep.when}", rep)
    return rep
