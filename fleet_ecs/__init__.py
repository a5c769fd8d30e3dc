"""fleet-ecs: check, across a Windows fleet, whether Microsoft Defender can reach ECS."""

__version__ = "0.1.0"
