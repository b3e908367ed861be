from collector.cli.commands import main

main()
