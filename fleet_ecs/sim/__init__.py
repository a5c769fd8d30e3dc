"""The simulated Windows fleet: WinRM/PSRP endpoints on loopback for tests and the demo.

Real, unmodified pypsrp talks to it over HTTP (``auth="basic", encryption="never"``). Public
entry points live in ``fleet_ecs.sim.fleet`` (``SimulatedFleet``, ``build_hosts``,
``demo_specs``, ``find_free_block``), ``fleet_ecs.sim.scenarios`` (``SCENARIOS``,
``DEMO_ORDER``) and ``fleet_ecs.sim.credentials`` (the simulator-only demo login). Nothing is
imported here so that importing the package stays cheap.
"""
