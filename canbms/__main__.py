import sys

from canbms.cli import main

sys.exit(main())
