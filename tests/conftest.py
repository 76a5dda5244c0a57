import sys
from pathlib import Path

# tests/ is not a package: make its helper modules (strategies_devices) importable.
sys.path.insert(0, str(Path(__file__).parent))
