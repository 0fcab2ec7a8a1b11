"""Runners (one per mode), network code and the weight manifest. Imported lazily by the daemon."""
