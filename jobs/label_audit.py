"""spark-submit entrypoint: `spark-submit jobs/label_audit.py audit --labels ... ...`.

Takes the same arguments as `python -m labelqa`. Ship the package to the executors with
`--py-files dist/labelqa.zip` (see `make dist` and the README).
"""

import sys

from labelqa.cli import main

if __name__ == "__main__":
    sys.exit(main())
