from kavi.cli.main import main

main()
