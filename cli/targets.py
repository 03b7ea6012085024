"""tfapprox commands: targets."""

COMMANDS = []
