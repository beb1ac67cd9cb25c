from caducee.cli import main

main()
