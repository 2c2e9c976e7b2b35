"""`python -m leadersboard.cli`: what `serve` and the demo start their children with."""

from .main import main

if __name__ == "__main__":
    main()
