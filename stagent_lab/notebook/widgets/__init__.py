"""anywidget views of a workspace. Their JavaScript and CSS are plain files next to this one,
loaded as ES modules by anywidget: no bundler and no build step at install."""

from stagent_lab.notebook.widgets.inbox import Inbox
from stagent_lab.notebook.widgets.monitor import Monitor
from stagent_lab.notebook.widgets.profiles import ProfilesView
from stagent_lab.notebook.widgets.task_card import TaskCard

__all__ = ["Inbox", "Monitor", "ProfilesView", "TaskCard"]
