from tutorscore.cli import main

main()
