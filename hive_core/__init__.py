"""hive-core: the host daemon of an agent swarm (broker, approvals, lifecycle) on trio."""

__version__ = "0.1.0"
