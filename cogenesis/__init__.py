"""The `cogenesis` command-line dispatcher and demo."""
