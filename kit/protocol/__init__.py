"""The OpenAI API's shapes, apart from the usage rules: the request and response models (``schemas``), a whole
answer or its server-sent-event stream (``responses``), and the work every generation route shares
(``serving``: sampling parameters, queueing the n generations, reading them, the streamed response that
cleans up however it ends, the route class that announces requests to the engine). Used by the gateway's
``chat`` (which adds the rules' pipeline) and by ``kit engine``'s raw API. May import ``kit.engine``,
``kit.sse`` and ``kit.errors``."""
