"""Configuration as code: one YAML file for userstores, claims, roles, seed users, identity
providers and applications.

``files.validate_file`` reports every problem of a file at its line and column;
``files.apply_file`` makes a deployment match it, all or nothing, and says what changed;
``export.export_config`` writes a deployment back as such a file (secrets as references,
never values). The layout of the file is documented in the sample deployment,
``core/sample/mware-iam.yaml`` (``sample_config/mware-iam.yaml`` in the repository).

This package's ``__init__`` imports nothing: its modules import each other, and an
``__init__`` that imported them back would make every one of them load all the others.

Modules: :mod:`.files` (validate, apply, seed), :mod:`.loader` (YAML with positions),
:mod:`.model` (the schema),
:mod:`.checks` (names and cross references), :mod:`.plan` (each section: secrets,
property schemas, the desired objects), :mod:`.apply`,
:mod:`.export`, :mod:`.refs` (secret references), :mod:`.deployment` (what the file may
refer to outside itself), :mod:`.errors`.
"""
