"""tfapprox commands: train."""

COMMANDS = []
