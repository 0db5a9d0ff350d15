"""The gateway: an OpenAI-compatible API in front of the engine, where every usage rule is enforced.

``kit.gateway.app.create_app`` wires the route groups. May import kit.engine, kit.rules, kit.config,
kit.errors; never kit.models, kit.cli or ui. The browser chat (ui/) is one client among others.
"""
