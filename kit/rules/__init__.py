"""The usage rules: identity and the charter gate (policy), personal data (privacy) and the per-role limits
(limits).

May import kit.storage, kit.audit, kit.config, kit.errors and kit.files; never kit.engine, kit.models,
kit.gateway, kit.cli or ui.
"""
