"""Entry script of the bundled ``worklens-collector`` (same as the console script)."""

import multiprocessing

from worklens.collector.cli import main

if __name__ == "__main__":
    # the store's writer process is started with multiprocessing's spawn: in a bundle
    # the child is this executable again, and freeze_support() runs its job instead
    multiprocessing.freeze_support()
    main()
