"""``python -m shapecheck.child``: the child process (:mod:`shapecheck.script.child`)."""

from shapecheck.script.child import main

if __name__ == "__main__":
    main()
