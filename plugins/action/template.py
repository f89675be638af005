"""Action plugin: ansible.builtin.template, one remote call fewer when the file is already right.

The builtin template plugin renders on the controller and hands the result to the
copy plugin; this one hands it to stacktune.stacktune.copy instead, which skips the
`file` module call when the stat shows owner, group and mode already right (see that
plugin). Rendering, validate, --check and --diff are the builtin plugins' own code.
"""

from __future__ import annotations

from ansible.plugins.action.template import ActionModule as BuiltinTemplate

_COPY = "stacktune.stacktune.copy"


class ActionModule(BuiltinTemplate):
    """ansible.builtin.template whose copy step is stacktune.stacktune.copy."""

    def run(self, tmp=None, task_vars=None):
        actions = self._shared_loader_obj.action_loader
        builtin_get = actions.get

        def get(name, *args, **kwargs):
            return builtin_get(_COPY if name == "ansible.legacy.copy" else name, *args, **kwargs)

        # The loader belongs to this task's worker process; restored all the same.
        actions.get = get
        try:
            return super().run(tmp=tmp, task_vars=task_vars)
        finally:
            del actions.get
