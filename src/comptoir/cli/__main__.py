"""python -m comptoir.cli"""

from comptoir.cli.app import main

main()
