"""Bad input never crashes the system, never leaks a secret, never starts it half-way (issue #9)."""
