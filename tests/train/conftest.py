import os
import sys

# The tiny test models live next to the tests; make them importable as plain modules.
sys.path.insert(0, os.path.dirname(__file__))
