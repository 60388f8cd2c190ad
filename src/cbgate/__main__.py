from cbgate.cli import main

main()
