"""The usage rules: identity and the charter gate (policy), personal data (privacy), the audit log
(audit), conversations, API keys, local users, small shared stores (store), the key files of the audit
chain and the pseudonyms, kept apart from the data (keyfiles), and the set of stores the gateway opens, with
the retention purge (state).

May import kit.config, kit.errors and kit.files only; never kit.engine, kit.models, kit.gateway,
kit.cli or ui.
"""
