"""What the gateway keeps: the installation's database (db, tables, the import of older files in legacy),
conversations, API keys, local users, small shared stores (store: acknowledgements, feedback, switches),
the one rule for user and group names (names), the key files of the audit chain and the pseudonyms, kept
apart from the data (keyfiles), and the set of stores the gateway opens, with the retention purge (state).

May import kit.audit, kit.config, kit.errors and kit.files; never the rules, the engine, the gateway or ui.
"""
