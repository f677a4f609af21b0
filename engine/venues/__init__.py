"""Exchange protocols, instrument rules, the simulated exchange, recorder and replay."""
