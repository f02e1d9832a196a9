"""Built-in target definitions: one YAML file per target (``<name>.yaml``)."""
