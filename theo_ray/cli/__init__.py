"""The `theo` command line: one module per group of subcommands."""
