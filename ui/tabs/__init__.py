"""The tabs of the browser chat, one module each: `build(t, labels)` lays the tab out into a small
dataclass of its components, `wire(tab, handlers, states, ...)` binds its events to its handlers.
ui.page assembles them; their handlers live in ui.chat, ui.history, ui.admin and ui.documents."""
