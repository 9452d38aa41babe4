"""``python -m pipeline.cli``: the ``llmpipe`` command."""

from pipeline.cli import console

if __name__ == "__main__":
    console()
