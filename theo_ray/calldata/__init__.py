"""Call data that lasts: each call's summary and turns as typed documents, written to a
local JSON-lines log and to Elasticsearch (index templates, ILM, write aliases, a disk
spool that loses nothing while the cluster is down).

Modules, one job each: `settings` (the `[call_data]` config section), `documents` (the
document Structs and ids), `build` (CallRecord -> documents), `redaction`, `sink` (the
sink contract, fan-out, factory), `jsonl_log`, `spool`, `es_schema` (request bodies),
`es_client`, `es_setup`, `es_sink`. Importing the package is cheap: `theo_ray.config`
imports `settings`; the Elasticsearch client is imported only where it is used.
"""
