"""The simulated Windows fleet: WinRM/PSRP endpoints on loopback for tests and the demo.

Real, unmodified pypsrp talks to it over HTTP with Basic (``encryption="never"``) or NTLM with
WinRM message encryption, and over HTTPS with certificates from a run-time test CA. Public
entry points live in ``fleet_ecs.sim.fleet`` (``SimulatedFleet``, ``build_hosts``,
``demo_specs``, ``scenario_spec``, ``find_free_block``, ``shared_ca_bundle``),
``fleet_ecs.sim.scenarios`` (``SCENARIOS``, ``DEMO_ORDER``), ``fleet_ecs.sim.auth``
(``AuthMethod``, ``register_method``) and ``fleet_ecs.sim.credentials`` (the simulator-only
demo login). Nothing is
imported here so that importing the package stays cheap.
"""
