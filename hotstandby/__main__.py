from hotstandby.cli.main import main

main()
