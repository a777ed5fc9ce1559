from ecellm.cli import main

main()
