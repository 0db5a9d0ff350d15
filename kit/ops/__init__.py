"""Operations: `kit doctor`'s installation and security checks, and the support pack for the DPO and
CISO (`kit report`).

May import kit.models, kit.rules, kit.engine, kit.config, kit.errors; never kit.gateway, kit.cli or ui.
"""
