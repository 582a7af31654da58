from hive_core.surfaces.cli.main import main

main()
