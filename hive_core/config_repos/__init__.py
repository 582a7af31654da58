"""config_repos."""
