"""The one documented credential of the simulated fleet.

These values only ever unlock the loopback simulator (``fleet_ecs.sim``): no real Windows host
accepts them, and the simulator binds nothing but 127.0.0.0/8. They are public on purpose, so
that ``fleet-ecs demo`` and the tests can log in without anyone handling a secret. The
controller resolves the inventory credential reference ``simulator`` to them.
"""

from __future__ import annotations

DEMO_USERNAME = "fleet-ecs-demo"
DEMO_PASSWORD = "simulator-only-not-secret"
