"""hive_wire: the wire shapes, codec and clients of hive-core. Imports nothing from hive_core."""

from .errors import WireError

__all__ = ["WireError"]
