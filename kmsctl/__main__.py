from kmsctl.cli import main

main()
