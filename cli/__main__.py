from tfapprox_cli.main import main

main(prog_name="tfapprox")
