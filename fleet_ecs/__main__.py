from fleet_ecs.cli import main

main()
