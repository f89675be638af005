#!/usr/bin/python
"""Documentation of the stacktune_plan action plugin (plugins/action/stacktune_plan.py).

The plan is computed on the controller by the action plugin; this file only documents
it, for ansible-doc and ansible-lint. It is never sent to a host.
"""

from __future__ import annotations

DOCUMENTATION = r"""
module: stacktune_plan
short_description: Compute one stacktune plan for the whole stack, on the controller
description:
  - Runs the stacktune plan engine (shipped in this collection) on the controller, once,
    for every host the inventory places a service on, whatever C(--limit) says.
  - Placement comes from inventory groups (O(groups)); each placed host needs the
    C(stacktune_host_profile) fact of M(stacktune.stacktune.host_profile), and may pin
    C(stacktune_memory), C(stacktune_cpus) and C(stacktune_storage) in its host variables.
  - An impossible plan, a bad input or an unsafe inventory string fails the task with a
    message that names the variable to change, before any host changes.
  - Used by the C(stacktune.stacktune.stacktune) role; run that role rather than this action.
options:
  groups:
    description:
      - Inventory group of each service, as C(stacktune_groups); unset services keep
        their default groups.
    type: dict
    default: {postgresql: postgresql, pgbouncer: pgbouncer, redis: redis, gunicorn: app}
  workload:
    description: What the database serves.
    type: str
    choices: [web, oltp, dw, mixed]
    default: web
  pg_version:
    description:
      - PostgreSQL major version (13 to 18). Without it, the version O(distro_pg_versions)
        gives for the database host's OS release.
    type: raw
  distro_pg_versions:
    description: 'PostgreSQL major version per Debian major release, e.g. C({"12": 15}).'
    type: dict
  connections:
    description: Expected client connections to the database; without it, the app tier's.
    type: raw
  overrides:
    description:
      - "Settings to use instead of the planned ones, C({service: {setting: value}});
        checked by the engine like planned values."
    type: dict
    default: {}
  django_version:
    description: Django version of the app.
    type: str
    default: "5.2"
  worker_rss:
    description: Estimated resident memory of one Gunicorn worker.
    type: str
    default: 160MiB
attributes:
  check_mode:
    support: full
    description: Computes the plan; changes nothing.
  action:
    support: full
    description: Runs on the controller as an action plugin.
author: stacktune
"""

EXAMPLES = r"""
- name: Plan the whole stack once, on the controller
  stacktune.stacktune.stacktune_plan:
    workload: web
    pg_version: 15
    overrides: {postgresql: {work_mem: 16MB}}
  run_once: true
  register: stacktune_plan_result
"""

RETURN = r"""
plan:
  description: >-
    The whole plan, C({service: {setting: value}}) with C(reasons) and C(warnings); values
    written as each service's config file writes them.
  returned: success
  type: dict
views:
  description: Each placed host's part of the plan, by inventory host name.
  returned: success
  type: dict
pg_version:
  description: The PostgreSQL major version the plan is for.
  returned: success
  type: int
header:
  description: The managed-file header the templates print.
  returned: success
  type: str
warnings:
  description: The engine's warnings about the plan.
  returned: success
  type: list
  elements: str
"""
