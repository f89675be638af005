"""``stacktune report``: read what the database says is slow and say what to do.

collect (on the database host, stdlib + DB-API) -> snapshot (JSON data) ->
analyse (pure functions) -> findings -> render (md, json, html) and overrides (YAML).
"""
