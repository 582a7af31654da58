"""The agent side: runs beside an agent (in its container); imports hive_wire only."""
