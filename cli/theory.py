"""tfapprox commands: theory."""

COMMANDS = []
