"""stacktune benchmark harness.

`scripts/bench [--quick] [--out DIR]` (or `python -m bench`) measures the same
PostgreSQL 15 server, in one resource-limited container, under three
configurations (PostgreSQL's packaged defaults, PGTune's formulas, the
stacktune plan) with pgbench, interleaved over rounds, and writes
`results.json`, `results.md` and `results.png`.

Modules:
    pgbench   build pgbench command lines, parse their output, write conf.d files
    django_mix  a Django-shaped pgbench workload: the demo's tables and its pages' queries
    wrk       run wrk against a URL and parse its report (HTTP hook)
    kit       time Ansible runs (first/second converge, --check, facts-only floor)
    stats     median, spread, ratios
    schedule  the interleaved order of runs
    docker    the benchmark container
    report    results.json / results.md / results.png
    progress  "[3/27] ... about 21 min left" lines
    run       the command line and the PostgreSQL phase
"""
