"""One module per process; each only wires engine components to rings and regions."""
