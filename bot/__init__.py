"""The maintainer bot: a GitHub App that automates a model repository's pull-request chores."""

__version__ = "0.1.0"
