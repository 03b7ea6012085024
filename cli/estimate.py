"""tfapprox commands: estimate."""

COMMANDS = []
