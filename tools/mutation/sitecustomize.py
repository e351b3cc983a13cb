"""Imported at start-up by every Python process of `nox -s mutation` (tools/mutation/ is on
PYTHONPATH), so also by the processes the tests start (the doors, release processes).

Such a process imports the mutated copy too (PYTHONPATH) and inherits MUTANT_UNDER_TEST, so it
runs the mutant under test, as it should. But while mutmut collects its statistics
(MUTANT_UNDER_TEST=stats) a child cannot report to it: mutmut would look for its settings in
the child's working directory and fail the test. There the child runs the original functions.
"""

import os

if os.environ.get("MUTANT_UNDER_TEST") == "stats":
    os.environ["MUTANT_UNDER_TEST"] = ""
