import sys

from consumer.cli.parser import main

sys.exit(main())
