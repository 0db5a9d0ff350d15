"""Evaluators' benchmarks: serving load, model quality, quantizations, and the report that shows them.

Owns ``kit bench``'s library: the machine description every result embeds (``machine``), the load
client against any OpenAI-compatible server (``serving``) and the reference servers it can start
(``servers``), energy counters (``energy``), perplexity, KL divergence and a question-answer set
(``quality``, ``qa``), the quantization table (``quantizations``) and the self-contained HTML report
with its Markdown summary (``report``, ``plots``).

May import kit.config, kit.errors, kit.files, kit.models.* and kit.engine.*. Library code never prints
or exits: functions return dataclasses (``results.to_jsonable`` turns them into JSON) and take a
progress callback; the CLI (kit.cli.bench) prints. Heavy imports (llama_cpp, matplotlib,
sentence_transformers, numpy) are made inside the functions that need them.
"""
