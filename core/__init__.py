"""The foundation every other package builds on; it imports none of the project's packages.

errors.py (UserError and its kinds), registry.py (named registries, did-you-mean messages),
paths.py (the cache directory, process liveness), progress.py (progress bars), model.py (the
strict, frozen pydantic base model of every configuration schema), constants.py (values shared
across packages, such as the ignored label -100).
"""
