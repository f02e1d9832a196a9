import sys

from hwnas_entry import main

sys.exit(main())
