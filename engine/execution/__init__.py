"""Order gateway logic: signed REST, rate limits, idempotent client order ids, execution
reports, reconciliation, cancel-on-disconnect, circuit breaker."""
