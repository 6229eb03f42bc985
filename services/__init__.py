"""Contains the three link services, each a faust application."""

import logging
import sys
import warnings
from typing import NoReturn

# The services are configured through the environment (DJ_*, LINK_*), not a
# datajoint.json, and run against MariaDB on purpose: DataJoint's warnings
# about both would repeat in every service log without telling the operator
# anything new.
warnings.filterwarnings("ignore", message="No datajoint.json found")
warnings.filterwarnings("ignore", message="MariaDB is not officially supported")
# DataJoint logs through its own handler; through faust's root handler too,
# every line of it would appear twice.
logging.getLogger("datajoint").propagate = False


CONFIGURATION_EXIT_CODE = 2
"""How a service ends when its configuration is wrong."""


def end_with_configuration_error(program: str, reason: str) -> NoReturn:
    """End the service with one line on stderr naming what is wrong."""
    print(
        f"{program}: configuration error: {' '.join(reason.split())}",
        file=sys.stderr,
    )
    raise SystemExit(CONFIGURATION_EXIT_CODE) from None


def _import_datajoint_or_exit() -> None:
    """Import DataJoint now, ending a service with one line if DJ_* is bad.

    DataJoint validates its DJ_* variables when first imported, with a pydantic
    traceback; the services name a bad variable in one line instead, as they do
    for LINK_* (services.runtime.serve).
    """
    from pydantic import ValidationError

    try:
        import datajoint  # noqa: F401
    except ValidationError as error:
        problems = "; ".join(
            f"{'.'.join(map(str, issue['loc']))}: {issue['msg']}"
            for issue in error.errors()
        )
        # The console script's name; under python -m it is not known yet.
        program = sys.argv[0].rsplit("/", 1)[-1]
        if not program.startswith("link-"):
            program = "link service"
        end_with_configuration_error(program, f"Invalid DataJoint settings: {problems}")


_import_datajoint_or_exit()
