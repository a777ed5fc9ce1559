"""``python -m ecellm.train`` = ``ecellm train``; the form ``torchrun -m ecellm.train`` needs."""

import sys

from ecellm.cli import main

sys.argv = [sys.argv[0], "train", *sys.argv[1:]]
main()
