"""`python -m lightning_dgm.feature_svm ...` (see the package docstring)."""

from lightning_dgm.feature_svm.command import main

if __name__ == "__main__":
    try:
        main()
    except (ValueError, FileNotFoundError) as error:  # bad settings: one line, not a traceback
        raise SystemExit(f"error: {error}") from None
