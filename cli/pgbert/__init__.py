"""The `pgbert` command: local cluster, model export, migrations, demo."""
