"""Contains the three link services, each a faust application."""

import logging
import warnings

# The services are configured through the environment (DJ_*, LINK_*), not a
# datajoint.json, and run against MariaDB on purpose: DataJoint's warnings
# about both would repeat in every service log without telling the operator
# anything new.
warnings.filterwarnings("ignore", message="No datajoint.json found")
warnings.filterwarnings("ignore", message="MariaDB is not officially supported")
# DataJoint logs through its own handler; through faust's root handler too,
# every line of it would appear twice.
logging.getLogger("datajoint").propagate = False
