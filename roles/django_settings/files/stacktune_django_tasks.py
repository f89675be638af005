"""Django's steps of a deploy in one Django start, run by `manage.py shell -c` as the app user.

STACKTUNE_DJANGO_TASKS lists what to do, in this order:
  plan      list the migrations migrate would apply (for --check; applies nothing)
  migrate   list them and apply them
  check     `check --deploy --fail-level WARNING`
  recorder  whether the settings put STACKTUNE_MIDDLEWARE in MIDDLEWARE
  data      `manage.py $STACKTUNE_DJANGO_DATA_COMMAND` (after migrate), e.g. the demo's
            load_demo_data
The last line printed is JSON: {"pending": [app.migration, ...], "migrated": bool,
"check_failed": bool, "check": its output, "recorder_loaded": bool or null,
"data": the data command's output or null}. A failing
migration ends with its traceback and a non-zero status, as `manage.py migrate` does.
Each step is `manage.py COMMAND` in effect; one process saves a Python and Django start
(about 0.5 s of CPU) per step.
"""

import json
import os
from io import StringIO

from django.conf import settings
from django.core.management import call_command
from django.core.management.base import SystemCheckError
from django.db import DEFAULT_DB_ALIAS, connections
from django.db.migrations.executor import MigrationExecutor

tasks = os.environ.get("STACKTUNE_DJANGO_TASKS", "").split(",")
result = {"pending": [], "migrated": False, "check_failed": False, "check": "",
          "recorder_loaded": None, "data": None}

if "plan" in tasks or "migrate" in tasks:
    executor = MigrationExecutor(connections[DEFAULT_DB_ALIAS])
    plan = executor.migration_plan(executor.loader.graph.leaf_nodes())
    result["pending"] = [f"{migration.app_label}.{migration.name}" for migration, _ in plan]
    if "migrate" in tasks and plan:
        call_command("migrate", interactive=False, stdout=StringIO())
        result["migrated"] = True

if "data" in tasks:
    output = StringIO()
    call_command(os.environ["STACKTUNE_DJANGO_DATA_COMMAND"], stdout=output)
    result["data"] = output.getvalue().strip()

if "check" in tasks:
    output = StringIO()
    try:
        call_command("check", deploy=True, fail_level="WARNING", stdout=output, stderr=output)
    except SystemCheckError as error:
        result["check_failed"] = True
        result["check"] = str(error)
    else:
        result["check"] = output.getvalue().strip()

if "recorder" in tasks:
    result["recorder_loaded"] = all(name in settings.MIDDLEWARE
                                    for name in settings.STACKTUNE_MIDDLEWARE)

print(json.dumps(result))
