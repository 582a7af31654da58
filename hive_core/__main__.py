from hive_core.entry import main

main()
