"""The edge agent: one per terminal; publishes presence, health and usage, obeys the downlink."""
