DROP TABLE ops.circuit_breaker;
