"""`python -m rlrec STAGE ...`, which is what `accelerate launch -m rlrec STAGE ...` runs."""

from rlrec.cli import main

if __name__ == "__main__":
    main()
