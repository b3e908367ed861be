"""`python -m collector.simulator`: the simulator without the rest of the CLI."""

from collector.simulator.cli import main

main()
